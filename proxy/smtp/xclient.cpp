#include "proxy/smtp/xclient.h"

#include <utility>

#include "proxy/smtp/xtext.h"

namespace certrelay::smtp {
namespace {

constexpr std::size_t kMaxLine = 512 - 2;  // RFC 5321 command line limit, CR LF excluded
constexpr std::size_t kMaxValue = 255;     // Postfix: "attribute value too long" above this
const std::string kUnavailable = "[UNAVAILABLE]";

std::string addressValue(const std::string& addr) {
  if (addr.empty()) {
    return kUnavailable;
  }
  // XCLIENT writes IPv6 with an "IPV6:" prefix and no brackets.
  return addr.find(':') != std::string::npos ? "IPV6:" + addr : addr;
}

std::string encodedOrUnavailable(const std::string& raw) {
  if (raw.empty()) {
    return kUnavailable;
  }
  std::string encoded = xtextEncode(raw);
  return encoded.size() <= kMaxValue ? encoded : kUnavailable;
}

}  // namespace

std::vector<std::string> buildXclientCommands(const ClientIdentity& identity,
                                              const std::set<std::string>& offered) {
  // Attributes that may go in any command, then the ones that must come last (NAME, ADDR).
  std::vector<std::pair<std::string, std::string>> early;
  std::vector<std::pair<std::string, std::string>> last;
  auto add = [&offered](auto& list, const char* name, std::string value) {
    if (offered.count(name) != 0) {
      list.emplace_back(name, std::move(value));
    }
  };
  add(early, "PORT", identity.port != 0 ? std::to_string(identity.port) : kUnavailable);
  add(early, "PROTO", identity.esmtp ? "ESMTP" : "SMTP");
  add(early, "HELO", encodedOrUnavailable(identity.helo));
  if (!identity.login.empty()) {
    add(early, "LOGIN", encodedOrUnavailable(identity.login));
  }
  add(early, "DESTADDR", addressValue(identity.destAddr));
  add(early, "DESTPORT", identity.destPort != 0 ? std::to_string(identity.destPort) : kUnavailable);
  // The proxy does no reverse DNS lookups: the name is unknown, not made up.
  add(last, "NAME", kUnavailable);
  add(last, "ADDR", addressValue(identity.addr));

  std::vector<std::string> commands;
  std::string current = "XCLIENT";
  auto append = [&](const std::pair<std::string, std::string>& attr) {
    std::string item = " " + attr.first + "=" + attr.second;
    if (current.size() + item.size() > kMaxLine && current != "XCLIENT") {
      commands.push_back(std::move(current));
      current = "XCLIENT";
    }
    current += item;
  };
  for (const auto& attr : early) {
    append(attr);
  }
  // NAME and ADDR must travel together in the final command.
  std::string tail;
  for (const auto& attr : last) {
    tail += " " + attr.first + "=" + attr.second;
  }
  if (!tail.empty() && current != "XCLIENT" && current.size() + tail.size() > kMaxLine) {
    commands.push_back(std::move(current));
    current = "XCLIENT";
  }
  current += tail;
  if (current != "XCLIENT") {
    commands.push_back(std::move(current));
  }
  return commands;
}

}  // namespace certrelay::smtp
