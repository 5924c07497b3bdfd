#pragma once
// Builds the XFORWARD command(s) that tell the backend, for its logs, who the client really is.
//
// Rules (XFORWARD_README, protocol.md section 2): send only the attributes the backend announced
// among NAME ADDR PORT PROTO HELO IDENT SOURCE; values are xtext, each at most 255 characters
// (PROTO at most 64) or else [UNAVAILABLE]; each command line at most 512 octets with CR LF,
// split over several commands when needed. Unlike XCLIENT there is no ordering constraint, but
// the attributes always go in the order above. XFORWARD lasts one transaction: send it before
// every MAIL. It changes the backend's logging only (orig_client=, orig_queue_id=), never its
// access decisions or its Received header.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "proxy/smtp/client_name.h"

namespace certrelay::smtp {

struct ForwardInfo {
  ClientName name;         // the reverse lookup's outcome; only a verified name is sent
  std::string addr;        // "192.0.2.1" or "2001:db8::1"; "" = unknown
  std::uint16_t port = 0;  // 0 = unknown
  std::string helo;        // the client's HELO/EHLO argument, raw; "" = none
  std::string proto;       // e.g. "ESMTP", "SMTP"; "" = unknown
  std::string ident;       // certrelay's session or message id (orig_queue_id=); "" = none
};

// Lines without CR LF, in sending order. Empty when the backend offers none of the attributes.
//   NAME   = the forward-confirmed name (xtext), else [UNAVAILABLE] (XFORWARD has no
//            [TEMPUNAVAIL]: Postfix answers it 501 Bad NAME syntax)
//   ADDR   = the address, IPv6 as "IPV6:2001:db8::1", [UNAVAILABLE] when empty
//   PORT   = decimal, [UNAVAILABLE] when 0
//   PROTO  = xtext, [UNAVAILABLE] when empty or longer than 64 characters encoded
//   HELO   = xtext, [UNAVAILABLE] when empty or longer than 255 characters encoded
//   IDENT  = xtext, [UNAVAILABLE] when empty or longer than 255 characters encoded
//   SOURCE = REMOTE
// `offered` holds upper-case attribute names (Capabilities parses them that way).
std::vector<std::string> buildXforwardCommands(const ForwardInfo& info,
                                               const std::set<std::string>& offered);

}  // namespace certrelay::smtp
