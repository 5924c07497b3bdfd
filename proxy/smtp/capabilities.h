#pragma once
// What the backend offers (from its EHLO reply) and what the proxy shows its clients.
//
// Security role: the client-facing EHLO is the proxy's own curated list. XCLIENT, XFORWARD,
// AUTH, STARTTLS (the backend's), VRFY, ETRN, XEXCH50 and any
// unknown keyword never reach the client. An extension is shown only when the backend offers it
// and the proxy can relay it. PIPELINING is the proxy's own (it orders replies itself).

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proxy/smtp/reply.h"

namespace certrelay::smtp {

struct Capabilities {
  bool pipelining = false;
  std::optional<std::uint64_t> size;  // SIZE given; 0 = no fixed limit announced
  bool eightBitMime = false;
  bool smtpUtf8 = false;
  bool dsn = false;
  bool enhancedStatusCodes = false;
  bool chunking = false;
  bool xclient = false;
  std::set<std::string> xclientAttributes;  // upper case: NAME ADDR PORT PROTO HELO LOGIN ...
  bool xforward = false;
  std::set<std::string> xforwardAttributes;
  // STARTTLS offered to the proxy: what backend.tls = "starttls" needs. Never shown to clients
  // (the proxy's STARTTLS is its own) and not part of what the backends have in common.
  bool starttls = false;
  // The backend's 220 greeting names Postfix (its default banner, "ESMTP Postfix"): hints may
  // name Postfix's settings. Set by whoever read the greeting, not by fromEhloReply().
  bool postfix = false;

  // From a 250 EHLO reply (first line is the server name; keywords case-insensitive).
  static Capabilities fromEhloReply(const Reply& reply);
  // Whether a 220 greeting's text names Postfix.
  static bool greetsAsPostfix(const Reply& greeting);
};

// The client-facing EHLO reply (full wire text with CR LF): "250-<hostname>", then PIPELINING,
// SIZE [n], 8BITMIME, SMTPUTF8, DSN, ENHANCEDSTATUSCODES, CHUNKING as offered by `backend`, then
// STARTTLS when `offerStarttls`. `backend` may be null (nothing learned yet): then only
// PIPELINING (and STARTTLS) are shown.
std::string clientEhloReply(const std::string& hostname, const Capabilities* backend,
                            bool offerStarttls);

}  // namespace certrelay::smtp
