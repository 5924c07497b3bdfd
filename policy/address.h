#pragma once
// Envelope address classification and the per-recipient relay decision.
//
// Security role: an address the proxy cannot classify without ambiguity is never relayed for an
// untrusted client. Sender-specified routing (percent hack `u%remote@local`, bang paths
// `remote!u`, quoted local parts holding `@`, `%` or `!`, a second `@`) is "routing": for an
// untrusted client it counts as relaying (454), whatever domain follows the last `@`. Source
// routes (`<@a,@b:u@d>`) are ignored as RFC 5321 section 4.1.1.3 says: the final mailbox decides
// and only the final mailbox is forwarded. The backend only ever receives the canonical
// `<local@domain>` form built here.

#include <optional>
#include <string>
#include <string_view>

#include "policy/relay_policy.h"

namespace certrelay::policy {

struct Mailbox {
  std::string localPart;   // as written (quoted form kept, quotes included)
  std::string domain;      // as written, without a trailing dot; "" only for bare postmaster
  bool routing = false;    // sender-specified routing found (see above)
  bool ipLiteral = false;  // domain is "[...]"

  // "<local@domain>", or "<postmaster>" for the bare postmaster form. Never "<>".
  std::string canonical() const;
};

enum class AddressError {
  None,
  Syntax,    // not a path we accept -> 501 5.1.3 Bad ... address syntax
  TooLong,   // local part > 64, domain > 255, path > 256 -> 501 5.1.3
  NonAscii,  // 8-bit without SMTPUTF8 -> 553 5.6.7
};

struct ParsedAddress {
  AddressError error = AddressError::None;
  bool null = false;  // "<>" (valid only for MAIL FROM)
  Mailbox mailbox;
};

// Parses the path part of `MAIL FROM:` / `RCPT TO:` (what follows the colon, without the
// parameters), with the leniency Postfix shows by default: optional angle brackets around a
// bare address, a source route before the mailbox. `utf8` allows 8-bit bytes (SMTPUTF8 given).
ParsedAddress parsePath(std::string_view path, bool utf8);

enum class Verdict {
  Accept,       // forward to the backend as Mailbox::canonical()
  RelayDenied,  // 454 4.7.1 <rcpt>: Relay access denied
  BadAddress,   // 501 5.1.3 / 553 5.6.7, see reply
};

struct Decision {
  Verdict verdict = Verdict::BadAddress;
  std::string canonical;  // "<...>" to forward when accepted; the address as given otherwise
  std::string reply;      // full reply line without CRLF when not accepted
};

// Decides one RCPT TO path. `trusted` = the client's certificate is listed (evaluated by the
// caller against the *current* policy snapshot). Local = domain in localDomains, or bare
// "postmaster" (any case). IP literals are local only when listed literally in localDomains
// (e.g. "[192.0.2.1]").
Decision decideRecipient(const Policy& policy, bool trusted, std::string_view path, bool utf8);

}  // namespace certrelay::policy
