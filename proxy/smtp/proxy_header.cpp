#include "proxy/smtp/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace certrelay::smtp {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t kV2Preamble = 16;

bool isPrefixOf(std::string_view part, std::string_view whole) {
  return part.size() <= whole.size() && whole.substr(0, part.size()) == part;
}

// An IPv4 address as text, or an IPv6 one in canonical form; an IPv4-mapped IPv6 address as the
// IPv4 address it carries (as the session shows a dual-stack socket's IPv4 client).
std::string ipv6Text(const in6_addr& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (IN6_IS_ADDR_V4MAPPED(&address)) {
    in_addr v4{};
    std::memcpy(&v4, &address.s6_addr[12], sizeof v4);
    inet_ntop(AF_INET, &v4, text, sizeof text);
  } else {
    inet_ntop(AF_INET6, &address, text, sizeof text);
  }
  return text;
}

std::string ipv4Text(const in_addr& address) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &address, text, sizeof text);
  return text;
}

// v1 addresses: IPv4 exactly as inet_ntop writes it (no leading zeros), IPv6 anything inet_pton
// takes (stored canonical).
bool v1Address(std::string_view token, bool ipv6, std::string& out) {
  const std::string text(token);
  if (ipv6) {
    in6_addr address{};
    if (inet_pton(AF_INET6, text.c_str(), &address) != 1) {
      return false;
    }
    out = ipv6Text(address);
    return true;
  }
  in_addr address{};
  if (inet_pton(AF_INET, text.c_str(), &address) != 1) {
    return false;
  }
  out = ipv4Text(address);
  return out == text;
}

bool v1Port(std::string_view token, std::uint16_t& port) {
  if (token.empty() || token.size() > 5 || (token.size() > 1 && token.front() == '0')) {
    return false;
  }
  std::uint32_t value = 0;
  for (const char c : token) {
    if (c < '0' || c > '9') {
      return false;
    }
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (value > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

std::vector<std::string_view> splitSpaces(std::string_view line) {
  std::vector<std::string_view> tokens;
  std::size_t start = 0;
  while (true) {
    const std::size_t space = line.find(' ', start);
    tokens.push_back(line.substr(start, space - start));
    if (space == std::string_view::npos) {
      return tokens;
    }
    start = space + 1;
  }
}

ProxyParse parseV1(std::string_view buffered, ProxyHeader& header, std::size_t& length,
                   std::string& error) {
  // The line ends at the first LF, which must follow a CR; no other CR in it. Decided by the
  // first LF alone, so more bytes never change the answer.
  const std::size_t newline = buffered.substr(0, kMaxV1Length).find('\n');
  if (newline == std::string_view::npos) {
    if (buffered.size() < kMaxV1Length) {
      return ProxyParse::NeedMore;
    }
    error = "v1 header without CR LF within 107 bytes";
    return ProxyParse::Invalid;
  }
  const std::size_t end = newline - 1;  // newline > 0: the line starts with "PROXY "
  if (buffered[end] != '\r' || buffered.substr(0, end).find('\r') != std::string_view::npos) {
    error = "v1 header with a bare CR or LF";
    return ProxyParse::Invalid;
  }
  const std::vector<std::string_view> tokens = splitSpaces(buffered.substr(0, end));
  if (tokens.size() >= 2 && tokens[1] == "UNKNOWN") {
    header = ProxyHeader{};
    header.version = 1;
    length = end + 2;
    return ProxyParse::Done;
  }
  const bool ipv6 = tokens.size() > 1 && tokens[1] == "TCP6";
  if (tokens.size() != 6 || (tokens[1] != "TCP4" && !ipv6)) {
    error = "v1 header is not PROXY TCP4|TCP6 <src> <dst> <sport> <dport>";
    return ProxyParse::Invalid;
  }
  ProxyHeader parsed;
  parsed.hasAddresses = true;
  parsed.version = 1;
  if (!v1Address(tokens[2], ipv6, parsed.source.addr) ||
      !v1Address(tokens[3], ipv6, parsed.destination.addr)) {
    error = "v1 header with a bad address";
    return ProxyParse::Invalid;
  }
  if (!v1Port(tokens[4], parsed.source.port) || !v1Port(tokens[5], parsed.destination.port)) {
    error = "v1 header with a bad port";
    return ProxyParse::Invalid;
  }
  header = parsed;
  length = end + 2;
  return ProxyParse::Done;
}

std::uint16_t bigEndian16(const unsigned char* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

// The address block of a v2 PROXY command over TCP (family 0x11 or 0x21).
bool v2Addresses(const unsigned char* block, std::size_t size, bool ipv6, ProxyHeader& header,
                 std::string& error) {
  const std::size_t address = ipv6 ? 16 : 4;
  if (size < 2 * address + 4) {
    error = "v2 header with a truncated address block";
    return false;
  }
  if (ipv6) {
    in6_addr source{};
    in6_addr destination{};
    std::memcpy(&source, block, address);
    std::memcpy(&destination, block + address, address);
    header.source.addr = ipv6Text(source);
    header.destination.addr = ipv6Text(destination);
  } else {
    in_addr source{};
    in_addr destination{};
    std::memcpy(&source, block, address);
    std::memcpy(&destination, block + address, address);
    header.source.addr = ipv4Text(source);
    header.destination.addr = ipv4Text(destination);
  }
  header.source.port = bigEndian16(block + 2 * address);
  header.destination.port = bigEndian16(block + 2 * address + 2);
  header.hasAddresses = true;
  return true;
}

ProxyParse parseV2(std::string_view buffered, ProxyHeader& header, std::size_t& length,
                   std::string& error) {
  if (buffered.size() < kV2Preamble) {
    return ProxyParse::NeedMore;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(buffered.data());
  const unsigned version = p[12] >> 4;
  const unsigned command = p[12] & 0x0fU;
  const unsigned family = p[13];
  const std::size_t total = kV2Preamble + bigEndian16(p + 14);
  if (version != 2 || command > 1) {
    error =
        "v2 header with version " + std::to_string(version) + " command " + std::to_string(command);
    return ProxyParse::Invalid;
  }
  if (total > kMaxV2Length) {
    error = "v2 header of " + std::to_string(total) + " bytes (at most " +
            std::to_string(kMaxV2Length) + ")";
    return ProxyParse::Invalid;
  }
  if (buffered.size() < total) {
    return ProxyParse::NeedMore;
  }
  ProxyHeader parsed;
  parsed.version = 2;
  // LOCAL: the balancer's own connection (a health check), whatever the family says.
  if (command == 1 && family != 0x00) {
    if (family != 0x11 && family != 0x21) {
      error = "v2 header for family/protocol 0x" + std::string(1, "0123456789abcdef"[family >> 4]) +
              std::string(1, "0123456789abcdef"[family & 0x0fU]) + " (only TCP over IPv4/IPv6)";
      return ProxyParse::Invalid;
    }
    if (!v2Addresses(p + kV2Preamble, total - kV2Preamble, family == 0x21, parsed, error)) {
      return ProxyParse::Invalid;
    }
  }
  header = parsed;
  length = total;
  return ProxyParse::Done;
}

}  // namespace

ProxyParse parseProxyHeader(std::string_view buffered, ProxyHeader& header, std::size_t& length,
                            std::string& error) {
  if (isPrefixOf(kV2Signature, buffered)) {
    return parseV2(buffered, header, length, error);
  }
  if (isPrefixOf(kV1Prefix, buffered)) {
    return parseV1(buffered, header, length, error);
  }
  const std::string_view start = buffered.substr(0, kV2Signature.size());
  if (isPrefixOf(start, kV2Signature) ||
      isPrefixOf(buffered.substr(0, kV1Prefix.size()), kV1Prefix)) {
    return ProxyParse::NeedMore;
  }
  error = "not a PROXY protocol header";
  return ProxyParse::Invalid;
}

}  // namespace certrelay::smtp
