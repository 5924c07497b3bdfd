#pragma once
// Builds the XCLIENT command(s) that tell the backend who the client really is.
//
// Rules (XCLIENT_README, protocol.md section 1): send only attributes the backend announced;
// values are xtext; each value at most 255 characters (else [UNAVAILABLE]); each command line at
// most 512 octets with CR LF, split when needed, with NAME and ADDR in the *last* command, ADDR
// last of all (once ADDR is sent the proxy is usually no longer authorised to send XCLIENT).
// REVERSE_NAME goes between them when NAME is not a verified name (client_name.h says why).

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "proxy/smtp/client_name.h"

namespace certrelay::smtp {

struct ClientIdentity {
  std::string addr;  // "192.0.2.1" or "2001:db8::1"
  std::uint16_t port = 0;
  std::string destAddr;  // the proxy's address the client connected to
  std::uint16_t destPort = 0;
  std::string helo;  // the client's (post-TLS) HELO/EHLO argument; "" = none
  bool esmtp = true;
  std::string login;  // identity of a trusted client; "" when untrusted
  ClientName name;    // the reverse lookup's outcome (noLookup() when dns.reverse_lookup is off)
};

// Lines without CR LF, in sending order. Empty when the backend offers none of the attributes.
std::vector<std::string> buildXclientCommands(const ClientIdentity& identity,
                                              const std::set<std::string>& offered);

}  // namespace certrelay::smtp
