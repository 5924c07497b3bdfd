// Fuzz target: policy::parsePath and the relay decision policy::decideRecipient (the open-relay
// boundary), for an untrusted and a trusted client, with a small fixed Policy.
//
// Input: byte 0 = flags (bit 0: SMTPUTF8 given; bit 1: the rest is a RCPT argument "TO:<...>
// params" taken through smtp::parsePathArgument first, else it is the path itself), then the
// bytes.
//
// Oracles (derived from the raw path here, not from the parser's output where possible):
//  * an untrusted client gets Accept only when the mailbox written after any source route has
//    exactly one '@' and no '%' or '!' anywhere (no percent hack, bang path, quoted or escaped
//    '@', second '@'), and the text after that '@' is a local domain by a matcher written here;
//    or when it is the bare postmaster;
//  * whatever is accepted is forwarded as "<" + that mailbox (trailing dot cut) + ">", at most
//    256 bytes, no control byte, no 8-bit byte without SMTPUTF8;
//  * trust only widens: untrusted Accept implies trusted Accept of the same address; syntax
//    errors do not depend on trust; a refusal carries a one-line reply;
//  * parsePath: "<>" is the null path and nothing else is; a mailbox without routing has no '@',
//    '%' or '!' in its local part; the limits of 64 / 255 bytes hold; an ASCII path parses the
//    same with and without SMTPUTF8.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/address.h"
#include "policy/relay_policy.h"
#include "proxy/smtp/command.h"
#include "tests/fuzz/fuzz_support.h"

namespace certrelay::policy {
namespace {

// Local: local.example, every subdomain of sub.local.example, mixed.example (configured with
// upper case and a trailing dot) and the address literal [192.0.2.1].
const Policy& fixedPolicy() {
  static const Policy policy = [] {
    Policy p;
    p.localDomains =
        LocalDomains({"local.example", ".sub.local.example", "Mixed.Example.", "[192.0.2.1]"});
    return p;
  }();
  return policy;
}

bool isLocalDomain(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') {
    domain.remove_suffix(1);
  }
  const std::string name = fuzz::toLowerAscii(domain);
  if (name == "local.example" || name == "mixed.example" || name == "[192.0.2.1]") {
    return true;
  }
  const std::string_view suffix = ".sub.local.example";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The mailbox part of a raw path: outer brackets removed, a leading source route
// ("@a,@[b]:") skipped. nullopt-like empty result when there is no such shape.
std::string_view rawMailbox(std::string_view path) {
  std::string_view inner = path;
  if (inner.size() >= 2 && inner.front() == '<' && inner.back() == '>') {
    inner = inner.substr(1, inner.size() - 2);
  }
  if (inner.empty() || inner.front() != '@') {
    return inner;
  }
  std::size_t i = 0;
  while (i < inner.size() && inner[i] == '@') {
    ++i;
    while (i < inner.size() && inner[i] != ',' && inner[i] != ':') {
      if (inner[i] == '[') {
        const std::size_t close = inner.find(']', i);
        if (close == std::string_view::npos) {
          return {};
        }
        i = close;
      }
      ++i;
    }
    if (i < inner.size() && inner[i] == ':') {
      return inner.substr(i + 1);
    }
    if (i < inner.size()) {
      ++i;  // ','
    }
  }
  return {};
}

std::size_t count(std::string_view text, char c) {
  std::size_t n = 0;
  for (char x : text) {
    n += x == c ? 1 : 0;
  }
  return n;
}

bool hasEightBit(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      return true;
    }
  }
  return false;
}

void checkParsePath(std::string_view path, bool utf8) {
  const ParsedAddress parsed = parsePath(path, utf8);
  FUZZ_CHECK(parsed.null == (parsed.error == AddressError::None && path == "<>"));
  if (!hasEightBit(path)) {
    const ParsedAddress other = parsePath(path, !utf8);
    FUZZ_CHECK(other.error == parsed.error);
    FUZZ_CHECK(other.null == parsed.null);
    FUZZ_CHECK(other.mailbox.canonical() == parsed.mailbox.canonical());
    FUZZ_CHECK(other.mailbox.routing == parsed.mailbox.routing);
  }
  if (parsed.error != AddressError::None || parsed.null) {
    return;
  }
  const Mailbox& m = parsed.mailbox;
  FUZZ_CHECK(!m.localPart.empty());
  FUZZ_CHECK(m.localPart.size() <= 64);
  FUZZ_CHECK(m.domain.size() <= 255);
  FUZZ_CHECK(m.domain.find('@') == std::string::npos);
  FUZZ_CHECK(m.domain.empty() || m.domain.back() != '.');
  FUZZ_CHECK(m.ipLiteral == (!m.domain.empty() && m.domain.front() == '['));
  if (!m.routing) {
    FUZZ_CHECK(m.localPart.find_first_of("@%!") == std::string::npos);
  }
  if (m.domain.empty()) {
    FUZZ_CHECK(fuzz::equalsIgnoreCase(m.localPart, "postmaster"));
  }
  const std::string canonical = m.canonical();
  FUZZ_CHECK(canonical.size() <= 256);
  FUZZ_CHECK(!fuzz::hasControl(canonical) && canonical.find('\t') == std::string::npos);
  FUZZ_CHECK(utf8 || !hasEightBit(canonical));
}

void checkRefusal(const Decision& d) {
  FUZZ_CHECK(d.reply.size() >= 4 && d.reply[3] == ' ');
  FUZZ_CHECK(!fuzz::hasControl(d.reply));
  if (d.verdict == Verdict::RelayDenied) {
    FUZZ_CHECK(d.reply.rfind("454 4.7.1 <", 0) == 0);
  } else {
    FUZZ_CHECK(d.reply.rfind("501 ", 0) == 0 || d.reply.rfind("553 ", 0) == 0);
  }
}

// What an accepted path must be forwarded as, from the raw text.
std::string expectedCanonical(std::string_view mailbox) {
  if (count(mailbox, '@') == 0) {
    return "<postmaster>";
  }
  if (!mailbox.empty() && mailbox.back() == '.') {
    mailbox.remove_suffix(1);
  }
  return "<" + std::string(mailbox) + ">";
}

void checkDecision(std::string_view path, bool utf8) {
  const Policy& policy = fixedPolicy();
  const Decision untrusted = decideRecipient(policy, false, path, utf8);
  const Decision trusted = decideRecipient(policy, true, path, utf8);
  const std::string_view mailbox = rawMailbox(path);

  if (untrusted.verdict == Verdict::Accept) {
    FUZZ_CHECK(untrusted.reply.empty());
    // No routing of any kind, quoted or not: one '@' (or none, for the bare postmaster).
    FUZZ_CHECK(mailbox.find_first_of("%!") == std::string_view::npos);
    const std::size_t ats = count(mailbox, '@');
    FUZZ_CHECK(ats <= 1);
    if (ats == 0) {
      FUZZ_CHECK(fuzz::equalsIgnoreCase(mailbox, "postmaster"));
    } else {
      FUZZ_CHECK(isLocalDomain(mailbox.substr(mailbox.find('@') + 1)));
    }
    FUZZ_CHECK(untrusted.canonical == expectedCanonical(mailbox));
    FUZZ_CHECK(trusted.verdict == Verdict::Accept);
    FUZZ_CHECK(trusted.canonical == untrusted.canonical);
  } else {
    checkRefusal(untrusted);
  }

  if (trusted.verdict == Verdict::Accept) {
    FUZZ_CHECK(trusted.reply.empty());
    FUZZ_CHECK(trusted.canonical == expectedCanonical(mailbox));
    FUZZ_CHECK(trusted.canonical.size() <= 256);
    FUZZ_CHECK(!fuzz::hasControl(trusted.canonical));
    FUZZ_CHECK(utf8 || !hasEightBit(trusted.canonical));
    // Refused only for relaying, never for syntax, when untrusted.
    FUZZ_CHECK(untrusted.verdict != Verdict::BadAddress);
  } else {
    // A trusted client is refused only for syntax, exactly as an untrusted one.
    FUZZ_CHECK(trusted.verdict == Verdict::BadAddress);
    checkRefusal(trusted);
    FUZZ_CHECK(untrusted.verdict == Verdict::BadAddress);
    FUZZ_CHECK(untrusted.reply == trusted.reply);
  }
}

}  // namespace
}  // namespace certrelay::policy

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace certrelay;
  if (size < 1) {
    return 0;
  }
  const bool utf8 = (data[0] & 1) != 0;
  const bool viaCommand = (data[0] & 2) != 0;
  std::string_view input = fuzz::asText(data + 1, size - 1);
  if (input.size() > 600) {
    return 0;  // paths are capped at 256 bytes; longer inputs only test the length check
  }
  std::string path(input);
  if (viaCommand) {
    smtp::PathArgument argument;
    if (smtp::parsePathArgument(input, "TO:", argument) != smtp::PathError::None) {
      return 0;
    }
    path = argument.path;
  }
  policy::checkParsePath(path, utf8);
  policy::checkDecision(path, utf8);
  return 0;
}
