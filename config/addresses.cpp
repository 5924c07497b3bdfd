// Syntax of the address values in the configuration: "host:port" endpoints and CIDR networks.
// Shared by the loader (validation with file:line) and the policy (relay_networks matching).

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>
#include <thread>

#include "config/config.h"

namespace certrelay::config {

std::string Endpoint::toString() const {
  // A ':' in the host can only be an IPv6 address; it needs brackets to keep the port apart.
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

Endpoint parseEndpoint(const std::string& text) {
  Endpoint endpoint;
  std::string_view portText;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos) {
      throw std::invalid_argument("unbalanced brackets");
    }
    endpoint.host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      throw std::invalid_argument("missing port");
    }
    portText = std::string_view(text).substr(close + 2);
    if (endpoint.host.find_first_of("[]") != std::string::npos) {
      throw std::invalid_argument("unbalanced brackets");
    }
    // toString() brackets exactly the hosts that hold a ':'; anything else would not round-trip.
    if (!endpoint.host.empty() && endpoint.host.find(':') == std::string::npos) {
      throw std::invalid_argument("brackets are only for IPv6 addresses");
    }
  } else {
    if (text.find_first_of("[]") != std::string::npos) {
      throw std::invalid_argument("unbalanced brackets");
    }
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      throw std::invalid_argument("missing port");
    }
    endpoint.host = text.substr(0, colon);
    if (endpoint.host.find(':') != std::string::npos) {
      throw std::invalid_argument("an IPv6 address needs brackets: [addr]:port");
    }
    portText = std::string_view(text).substr(colon + 1);
  }
  if (endpoint.host.empty()) {
    throw std::invalid_argument("empty host");
  }
  if (portText.empty()) {
    throw std::invalid_argument("missing port");
  }
  // Digits only (no sign, no spaces); more than 5 digits cannot be a port and could overflow.
  if (portText.size() > 5 ||
      !std::all_of(portText.begin(), portText.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw std::invalid_argument("port must be a number from 0 to 65535");
  }
  unsigned long port = std::stoul(std::string(portText));
  if (port > 65535) {
    throw std::invalid_argument("port must be a number from 0 to 65535");
  }
  endpoint.port = static_cast<uint16_t>(port);
  return endpoint;
}

bool isNumericHost(const Endpoint& endpoint) {
  in6_addr scratch{};
  const int family = endpoint.host.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  return endpoint.host.find('\0') == std::string::npos &&
         inet_pton(family, endpoint.host.c_str(), &scratch) == 1;
}

std::string Cidr::toString() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, address.data(), text, sizeof(text)) == nullptr) {
    return {};
  }
  return std::string(text) + "/" + std::to_string(prefix);
}

Cidr parseCidr(std::string_view text) {
  if (text.empty()) {
    throw std::invalid_argument("empty");
  }
  std::string_view addressText = text;
  std::string_view prefixText;
  const auto slash = text.find('/');
  if (slash != std::string_view::npos) {
    addressText = text.substr(0, slash);
    prefixText = text.substr(slash + 1);
  }
  bool bracketed = false;
  if (!addressText.empty() && addressText.front() == '[') {
    if (addressText.size() < 2 || addressText.back() != ']') {
      throw std::invalid_argument("unbalanced brackets");
    }
    addressText = addressText.substr(1, addressText.size() - 2);
    bracketed = true;
  }
  if (addressText.find_first_of("[]") != std::string_view::npos) {
    throw std::invalid_argument("unbalanced brackets");
  }
  if (addressText.empty()) {
    throw std::invalid_argument("missing address");
  }
  Cidr cidr;
  cidr.v6 = addressText.find(':') != std::string_view::npos;
  if (bracketed && !cidr.v6) {
    throw std::invalid_argument("brackets are only for IPv6 addresses");
  }
  // inet_pton is strict: dotted-quad decimal only for IPv4 (no "10.1", no octal), and no zone
  // id ("fe80::1%eth0") or white space anywhere.
  const std::string address(addressText);
  if (address.find('\0') != std::string::npos ||
      inet_pton(cidr.v6 ? AF_INET6 : AF_INET, address.c_str(), cidr.address.data()) != 1) {
    throw std::invalid_argument("not an IPv4 or IPv6 address");
  }
  const unsigned maxPrefix = cidr.v6 ? 128 : 32;
  cidr.prefix = maxPrefix;
  if (slash != std::string_view::npos) {
    const std::string range =
        "prefix length must be a number from 0 to " + std::to_string(maxPrefix);
    // Digits only, no sign, no leading zero: "/024" is more likely a typo than a /24.
    if (prefixText.empty() || prefixText.size() > 3 ||
        !std::all_of(prefixText.begin(), prefixText.end(),
                     [](char c) { return c >= '0' && c <= '9'; }) ||
        (prefixText.size() > 1 && prefixText.front() == '0')) {
      throw std::invalid_argument(range);
    }
    const unsigned long prefix = std::stoul(std::string(prefixText));
    if (prefix > maxPrefix) {
      throw std::invalid_argument(range);
    }
    cidr.prefix = static_cast<unsigned>(prefix);
  }
  Cidr network = cidr;
  for (unsigned bit = cidr.prefix; bit < maxPrefix; ++bit) {
    network.address[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
  }
  if (network.address != cidr.address) {
    throw std::invalid_argument("host bits set beyond /" + std::to_string(cidr.prefix) + " (use '" +
                                network.toString() + "')");
  }
  // ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n: client addresses in that form are
  // compared as IPv4, so the network must be IPv4 too to ever match them.
  static constexpr unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (cidr.v6 && cidr.prefix >= 96 &&
      std::equal(std::begin(kMappedPrefix), std::end(kMappedPrefix), cidr.address.begin())) {
    Cidr v4;
    std::copy(cidr.address.begin() + 12, cidr.address.end(), v4.address.begin());
    v4.prefix = cidr.prefix - 96;
    return v4;
  }
  return cidr;
}

}  // namespace certrelay::config
