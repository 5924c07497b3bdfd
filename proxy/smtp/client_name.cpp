#include "proxy/smtp/client_name.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/text.h"
#include "proxy/smtp/attribute_command.h"

namespace certrelay::smtp {
namespace {

constexpr std::string_view kTempUnavailable = "[TEMPUNAVAIL]";
// gai_strerror()'s words, which Postfix's own warnings carry.
constexpr std::string_view kNotKnown = "Name or service not known";
constexpr std::string_view kTemporary = "Temporary failure in name resolution";

// The address in network byte order; 4 or 16 bytes used, 0 when `text` is no address.
struct Binary {
  std::array<unsigned char, 16> bytes{};
  std::size_t size = 0;
};

Binary parse(std::string_view text) {
  Binary out;
  if (text.empty() || text.size() > INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos) {
    return out;
  }
  const std::string copy(text);
  if (inet_pton(AF_INET, copy.c_str(), out.bytes.data()) == 1) {
    out.size = 4;
  } else if (inet_pton(AF_INET6, copy.c_str(), out.bytes.data()) == 1) {
    out.size = 16;
  }
  return out;
}

bool sameAddress(const Binary& a, std::string_view text) {
  const Binary b = parse(text);
  return a.size != 0 && a.size == b.size &&
         std::memcmp(a.bytes.data(), b.bytes.data(), a.size) == 0;
}

std::string reason(DnsAnswer answer, std::string_view detail) {
  std::string text(answer == DnsAnswer::TempFail ? kTemporary : kNotKnown);
  if (!detail.empty()) {
    text.append(" (").append(detail).append(")");
  }
  return text;
}

ClientName unconfirmed(std::string_view ptrName, NameStatus status, LookupResult result,
                       std::string detail) {
  ClientName name;
  name.status = status;
  name.reverseStatus = NameStatus::Ok;
  name.reverseName = std::string(ptrName);
  name.result = result;
  name.detail = std::move(detail);
  name.warning = true;
  return name;
}

// An XCLIENT NAME= or REVERSE_NAME= value: the name when found, else what kept it from being.
std::string xclientValue(NameStatus status, const std::string& found) {
  switch (status) {
    case NameStatus::Ok:
      return detail::xtextOrUnavailable(found);
    case NameStatus::TempFail:
      return std::string(kTempUnavailable);
    case NameStatus::PermFail:
    case NameStatus::Forged:
      break;
  }
  return std::string(detail::kUnavailable);
}

}  // namespace

std::string_view lookupResultKeyword(LookupResult result) {
  switch (result) {
    case LookupResult::Confirmed:
      return "confirmed";
    case LookupResult::Unconfirmed:
      return "unconfirmed";
    case LookupResult::TempFail:
      return "tempfail";
    case LookupResult::Timeout:
      return "timeout";
    case LookupResult::NoName:
      break;
  }
  return "no_name";
}

std::string reverseQueryName(std::string_view addr) {
  const Binary binary = parse(addr);
  std::string name;
  if (binary.size == 4) {
    for (std::size_t i = 4; i-- > 0;) {
      name += std::to_string(binary.bytes[i]) + ".";
    }
    return name + "in-addr.arpa";
  }
  if (binary.size == 16) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::size_t i = 16; i-- > 0;) {
      name += kHex[binary.bytes[i] & 0xfU];
      name += '.';
      name += kHex[binary.bytes[i] >> 4U];
      name += '.';
    }
    return name + "ip6.arpa";
  }
  return name;
}

bool usablePtrName(std::string_view name) {
  // checkDomain() already refuses names whose labels are all digits (an IPv4 address); a
  // hexadecimal IPv6 look-alike cannot pass it (no ':').
  return text::isDomainName(name);
}

std::optional<ClientName> afterReverse(std::string_view addr, DnsAnswer answer,
                                       std::string_view ptrName, std::string_view detail) {
  ClientName name;
  const std::string subject = "cannot find the name of " + std::string(addr) + ": ";
  switch (answer) {
    case DnsAnswer::TempFail:
      name.status = NameStatus::TempFail;
      name.reverseStatus = NameStatus::TempFail;
      name.result = LookupResult::TempFail;
      name.detail = subject + reason(answer, detail);
      name.warning = true;
      return name;
    case DnsAnswer::NotFound:
      name.detail = subject + reason(answer, detail);
      return name;
    case DnsAnswer::Found:
      break;
  }
  if (!usablePtrName(ptrName)) {
    // Postfix (sockaddr_to_hostname) treats a malformed or numeric name as no name at all.
    name.detail = subject + "malformed name in its PTR record: " +
                  text::sanitizeToken(ptrName, text::kMaxDomain);
    name.warning = true;
    return name;
  }
  return std::nullopt;
}

ClientName afterForward(std::string_view addr, std::string_view ptrName, DnsAnswer answer,
                        const std::vector<std::string>& addresses, std::string_view detail) {
  const std::string subject =
      "hostname " + std::string(ptrName) + " does not resolve to address " + std::string(addr);
  if (answer == DnsAnswer::TempFail) {
    return unconfirmed(ptrName, NameStatus::TempFail, LookupResult::TempFail,
                       subject + ": " + reason(answer, detail));
  }
  if (answer == DnsAnswer::NotFound) {
    return unconfirmed(ptrName, NameStatus::Forged, LookupResult::Unconfirmed,
                       subject + ": " + reason(answer, detail));
  }
  const Binary client = parse(addr);
  const bool listed = std::any_of(addresses.begin(), addresses.end(),
                                  [&](const std::string& a) { return sameAddress(client, a); });
  if (!listed) {
    return unconfirmed(ptrName, NameStatus::Forged, LookupResult::Unconfirmed, subject);
  }
  ClientName name;
  name.status = NameStatus::Ok;
  name.name = std::string(ptrName);
  name.reverseStatus = NameStatus::Ok;
  name.reverseName = std::string(ptrName);
  name.result = LookupResult::Confirmed;
  return name;
}

ClientName timedOut(std::string_view addr, std::string_view ptrName,
                    std::chrono::milliseconds timeout) {
  const std::string why = "no answer within dns.timeout " + std::to_string(timeout.count()) + "ms";
  if (ptrName.empty()) {
    ClientName name;
    name.status = NameStatus::TempFail;
    name.reverseStatus = NameStatus::TempFail;
    name.result = LookupResult::Timeout;
    name.detail =
        "cannot find the name of " + std::string(addr) + ": " + reason(DnsAnswer::TempFail, why);
    name.warning = true;
    return name;
  }
  return unconfirmed(ptrName, NameStatus::TempFail, LookupResult::Timeout,
                     "hostname " + std::string(ptrName) + " does not resolve to address " +
                         std::string(addr) + ": " + reason(DnsAnswer::TempFail, why));
}

ClientName noLookup() {
  return ClientName{};
}

std::string xclientName(const ClientName& name) {
  return xclientValue(name.status, name.name);
}

std::optional<std::string> xclientReverseName(const ClientName& name) {
  if (name.status == NameStatus::Ok) {
    return std::nullopt;
  }
  return xclientValue(name.reverseStatus, name.reverseName);
}

std::string xforwardName(const ClientName& name) {
  return name.verified() ? detail::xtextOrUnavailable(name.name)
                         : std::string(detail::kUnavailable);
}

std::string_view logName(const ClientName& name) {
  return name.verified() ? std::string_view(name.name) : std::string_view("unknown");
}

}  // namespace certrelay::smtp
