// Envelope path parsing (RFC 5321 section 4.1.2, with Postfix's default leniency) and the
// per-recipient relay decision.
//
// Rules chosen here, because RFC 5321 leaves them open or the relay boundary needs them:
//  * A second unquoted '@' (`a@remote@local`) is not a syntax error but sender-specified
//    routing, as in Postfix: the domain is what follows the *last* '@', everything before it is
//    the local part (each '@'-separated piece must itself be a Dot-string or Quoted-string).
//    Untrusted clients get 454 for it whatever the final domain is; a trusted client may relay
//    anyway, so its address is forwarded exactly as written (`<a@remote@local>`), and the
//    backend applies its own routing rules to it.
//  * Source routes are parsed (hosts must be valid domains or address literals) and dropped.
//  * A domain whose labels are all digits is an IPv4 address without brackets: a syntax error,
//    never a name to look up (Postfix resolve_numeric_domain = no).
//  * Length limits count octets as written: local part 64, domain 255 (without the trailing
//    dot), whole path 256 including the angle brackets (added when the client left them out).

#include "policy/address.h"

#include <cstring>

#include "common/text.h"

namespace certrelay::policy {

namespace {

constexpr std::size_t kMaxPath = 256;
constexpr std::size_t kMaxLocalPart = 64;
constexpr std::size_t kMaxDomain = text::kMaxDomain;

bool isAsciiAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 5321 atext; RFC 6531 adds every non-ASCII UTF-8 sequence when SMTPUTF8 was given.
bool isAtext(unsigned char c, bool utf8) {
  if (c >= 0x80) {
    return utf8;
  }
  return isAsciiAlnum(c) || (c != 0 && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr);
}

// RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126 (space included, '"' and '\' excluded).
bool isQtext(unsigned char c, bool utf8) {
  if (c >= 0x80) {
    return utf8;
  }
  return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

bool isRoutingChar(unsigned char c) {
  return c == '@' || c == '%' || c == '!';
}

// Well-formed UTF-8 only (no overlong forms, no surrogates, nothing above U+10FFFF): a
// malformed sequence must not reach the backend or a log line.
bool isValidUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      low = c == 0xe0 ? 0xa0 : 0x80;
      high = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      low = c == 0xf0 ? 0x90 : 0x80;
      high = c == 0xf4 ? 0x8f : 0xbf;
    } else {
      return false;
    }
    if (i + extra >= text.size()) {  // truncated sequence
      return false;
    }
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      const unsigned char min = k == 1 ? low : 0x80;
      const unsigned char max = k == 1 ? high : 0xbf;
      if (next < min || next > max) {
        return false;
      }
    }
    i += extra + 1;
  }
  return true;
}

// A domain (one trailing dot allowed and removed) or an address literal. `out` receives the
// domain as written minus that dot.
AddressError parseHost(std::string_view host, bool utf8, std::string& out, bool& literal) {
  literal = false;
  if (host.empty()) {
    return AddressError::Syntax;
  }
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return AddressError::Syntax;
    }
    if (host.size() > kMaxDomain) {
      return AddressError::TooLong;
    }
    if (!text::isAddressLiteral(host)) {
      return AddressError::Syntax;
    }
    literal = true;
    out = std::string(host);
    return AddressError::None;
  }
  if (host.back() == '.') {
    host.remove_suffix(1);
  }
  switch (text::checkDomain(host, utf8)) {
    case text::DomainError::None:
      break;
    case text::DomainError::Syntax:
      return AddressError::Syntax;
    case text::DomainError::TooLong:
      return AddressError::TooLong;
  }
  out = std::string(host);
  return AddressError::None;
}

// A Quoted-string starting at s[i] (a '"'). On success `i` is just past the closing quote.
AddressError scanQuotedString(std::string_view s, bool utf8, std::size_t& i, bool& routing) {
  // The content is looked at too, since `"u@remote"@local` routes just like `u%remote@local`
  // once the backend dequotes it (Postfix resolve_dequoted_address).
  std::size_t j = i + 1;
  while (j < s.size()) {
    const auto c = static_cast<unsigned char>(s[j]);
    if (c == '"') {
      i = j + 1;
      return AddressError::None;
    }
    if (c == '\\') {
      if (j + 1 >= s.size()) {
        return AddressError::Syntax;
      }
      const auto quoted = static_cast<unsigned char>(s[j + 1]);
      if (quoted < 32 || quoted > 126) {
        return AddressError::Syntax;
      }
      routing = routing || isRoutingChar(quoted);
      j += 2;
      continue;
    }
    if (!isQtext(c, utf8)) {
      return AddressError::Syntax;
    }
    routing = routing || isRoutingChar(c);
    ++j;
  }
  return AddressError::Syntax;  // not closed
}

// A Dot-string from s[i] up to the next '@' or the end: atoms separated by single dots, no dot
// at either end. On success `i` is at that '@' or the end.
AddressError scanDotString(std::string_view s, bool utf8, std::size_t& i, bool& routing) {
  std::size_t j = i;
  bool expectAtom = true;
  while (j < s.size() && s[j] != '@') {
    const auto c = static_cast<unsigned char>(s[j]);
    if (c == '.') {
      if (expectAtom) {
        return AddressError::Syntax;
      }
      expectAtom = true;
    } else if (isAtext(c, utf8)) {
      expectAtom = false;
      // Percent hack and bang path: both are atext, both route elsewhere.
      routing = routing || c == '%' || c == '!';
    } else {
      return AddressError::Syntax;
    }
    ++j;
  }
  if (expectAtom) {
    return AddressError::Syntax;
  }
  i = j;
  return AddressError::None;
}

// What scanLocalPart() found.
struct LocalPartScan {
  std::size_t segments = 0;                     // '@'-separated pieces
  bool quotedOnly = true;                       // every piece is a Quoted-string
  bool routing = false;                         // a piece holds a routing character
  std::size_t lastAt = std::string_view::npos;  // the '@' before the domain; npos: no '@'
};

// The local part at the start of `s`: one or more '@'-separated Dot-strings or Quoted-strings,
// up to the last '@' (or the end, when there is no '@').
AddressError scanLocalPart(std::string_view s, bool utf8, LocalPartScan& scan) {
  std::size_t i = 0;
  while (true) {
    if (i >= s.size()) {
      return AddressError::Syntax;  // empty local part or nothing after an inner '@'
    }
    ++scan.segments;
    AddressError error = AddressError::None;
    if (s[i] == '"') {
      error = scanQuotedString(s, utf8, i, scan.routing);
    } else {
      scan.quotedOnly = false;
      error = scanDotString(s, utf8, i, scan.routing);
    }
    if (error != AddressError::None) {
      return error;
    }
    if (i == s.size()) {
      return AddressError::None;  // no '@' at all
    }
    if (s[i] != '@') {
      return AddressError::Syntax;  // e.g. a quoted string followed by more text
    }
    // Domains and address literals cannot contain '@', so if another one follows, this '@'
    // separates two pieces of a routed local part.
    if (s.find('@', i + 1) == std::string_view::npos) {
      scan.lastAt = i;
      return AddressError::None;
    }
    ++i;
  }
}

// Local-part "@" Domain, where the local part may hold further '@'-separated pieces (routing),
// or the bare "postmaster".
AddressError parseMailbox(std::string_view s, bool utf8, Mailbox& mailbox) {
  LocalPartScan scan;
  if (const AddressError error = scanLocalPart(s, utf8, scan); error != AddressError::None) {
    return error;
  }
  const std::size_t lastAt = scan.lastAt;
  if (lastAt == std::string_view::npos) {
    // RFC 5321 section 4.5.1: "<Postmaster>" without a domain must be accepted.
    if (scan.segments == 1 && !scan.quotedOnly && text::equalsIgnoreCase(s, "postmaster")) {
      mailbox.localPart = std::string(s);
      mailbox.domain.clear();
      mailbox.routing = false;
      mailbox.ipLiteral = false;
      return AddressError::None;
    }
    return AddressError::Syntax;
  }

  const std::string_view localPart = s.substr(0, lastAt);
  if (localPart.size() > kMaxLocalPart) {
    return AddressError::TooLong;
  }
  std::string domain;
  bool literal = false;
  const AddressError error = parseHost(s.substr(lastAt + 1), utf8, domain, literal);
  if (error != AddressError::None) {
    return error;
  }
  mailbox.localPart = std::string(localPart);
  mailbox.domain = std::move(domain);
  mailbox.routing = scan.routing || scan.segments > 1;
  mailbox.ipLiteral = literal;
  return AddressError::None;
}

// "@a,@b:" before the mailbox. Returns the position of the mailbox, or an error.
AddressError skipSourceRoute(std::string_view inner, bool utf8, std::size_t& mailboxStart) {
  std::size_t i = 0;
  while (true) {
    if (i >= inner.size() || inner[i] != '@') {
      return AddressError::Syntax;
    }
    ++i;
    const std::size_t start = i;
    if (i < inner.size() && inner[i] == '[') {
      const std::size_t close = inner.find(']', i);
      if (close == std::string_view::npos) {
        return AddressError::Syntax;
      }
      i = close + 1;
    } else {
      while (i < inner.size() && inner[i] != ',' && inner[i] != ':') {
        ++i;
      }
    }
    std::string host;
    bool literal = false;
    const AddressError error = parseHost(inner.substr(start, i - start), utf8, host, literal);
    if (error != AddressError::None) {
      return error;
    }
    if (i >= inner.size()) {
      return AddressError::Syntax;  // "<@domain>": a route with no mailbox
    }
    if (inner[i] == ':') {
      mailboxStart = i + 1;
      return AddressError::None;
    }
    if (inner[i] != ',') {
      return AddressError::Syntax;
    }
    ++i;
  }
}

// What the client wrote, minus the outer angle brackets: the text Postfix puts in its replies.
std::string_view asWritten(std::string_view path) {
  if (path.size() >= 2 && path.front() == '<' && path.back() == '>') {
    return path.substr(1, path.size() - 2);
  }
  return path;
}

}  // namespace

std::string Mailbox::canonical() const {
  if (domain.empty()) {
    return "<postmaster>";
  }
  return "<" + localPart + "@" + domain + ">";
}

ParsedAddress parsePath(std::string_view path, bool utf8) {
  ParsedAddress result;
  const auto fail = [&result](AddressError error) {
    result.error = error;
    result.null = false;
    result.mailbox = Mailbox{};
    return result;
  };
  const bool bracketed = !path.empty() && path.front() == '<';
  if (path.size() + (bracketed ? 0 : 2) > kMaxPath) {
    return fail(AddressError::TooLong);
  }
  bool eightBit = false;
  for (char ch : path) {
    const auto c = static_cast<unsigned char>(ch);
    // Control characters (NUL, CR, LF, TAB, DEL) are never part of an address, quoted or not.
    if (c < 0x20 || c == 0x7f) {
      return fail(AddressError::Syntax);
    }
    eightBit = eightBit || c >= 0x80;
  }
  if (eightBit && !utf8) {
    return fail(AddressError::NonAscii);
  }
  if (eightBit && !isValidUtf8(path)) {
    return fail(AddressError::Syntax);
  }

  std::string_view inner = path;
  if (bracketed) {
    if (path.size() < 2 || path.back() != '>') {
      return fail(AddressError::Syntax);
    }
    inner = path.substr(1, path.size() - 2);
    if (inner.empty()) {
      result.null = true;
      return result;
    }
  } else if (path.empty()) {
    return fail(AddressError::Syntax);
  }

  if (inner.front() == '@') {
    std::size_t mailboxStart = 0;
    const AddressError error = skipSourceRoute(inner, utf8, mailboxStart);
    if (error != AddressError::None) {
      return fail(error);
    }
    inner = inner.substr(mailboxStart);
  }
  const AddressError error = parseMailbox(inner, utf8, result.mailbox);
  if (error != AddressError::None) {
    return fail(error);
  }
  return result;
}

Decision decideRecipient(const Policy& policy, bool trusted, std::string_view path, bool utf8) {
  Decision decision;
  decision.canonical = std::string(path);
  const ParsedAddress parsed = parsePath(path, utf8);
  if (parsed.error == AddressError::NonAscii) {
    decision.verdict = Verdict::BadAddress;
    decision.reply = "553 5.6.7 Must declare SMTPUTF8 to send unicode address";
    return decision;
  }
  // A null path is a valid sender but never a recipient.
  if (parsed.error != AddressError::None || parsed.null) {
    decision.verdict = Verdict::BadAddress;
    decision.reply = "501 5.1.3 Bad recipient address syntax";
    return decision;
  }

  const Mailbox& mailbox = parsed.mailbox;
  bool accept = false;
  if (mailbox.routing && !trusted) {
    // Whatever follows the last '@', the address may leave through the backend's routing.
    accept = false;
  } else if (trusted) {
    accept = true;
  } else {
    // Only the bare postmaster has no domain. Address literals match only when listed exactly
    // (LocalDomains compares the whole "[...]" text, case-insensitively).
    accept = mailbox.domain.empty() || policy.localDomains.contains(mailbox.domain);
  }

  if (accept) {
    decision.verdict = Verdict::Accept;
    decision.canonical = mailbox.canonical();
    return decision;
  }
  decision.verdict = Verdict::RelayDenied;
  decision.reply = "454 4.7.1 <" + std::string(asWritten(path)) + ">: Relay access denied";
  return decision;
}

}  // namespace certrelay::policy
