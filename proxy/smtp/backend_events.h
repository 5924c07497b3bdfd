#pragma once
// The vocabulary shared by the dialogue and the backend connection: what a backend reply
// answers, how a backend fails, and what a reply may be for the command it answers.

#include <cstdint>
#include <string_view>

#include "proxy/smtp/reply.h"

namespace certrelay::smtp {

// What a reply answers. `Internal` marks commands the proxy sends on its own inside a
// transaction (XFORWARD, the Received header's BDAT chunk): their replies are consumed by the
// backend connection and never reach the dialogue.
enum class BackendPurpose : std::uint8_t {
  Mail,
  Rcpt,
  Data,
  EndOfData,
  Bdat,
  BdatLast,
  Rset,
  Internal,
};

enum class BackendFailure : std::uint8_t {
  Unreachable,        // connect failed
  Timeout,            // connect, greeting or a reply took too long
  Closed,             // the backend closed the connection / write failed
  Malformed,          // a reply that is not SMTP, or one nobody asked for
  Refused,            // greeting or EHLO not accepted
  XclientNotOffered,  // backend does not offer XCLIENT (or XFORWARD) as configured
  XclientRefused,     // backend answered XCLIENT with an error
  TlsNotOffered,      // backend.tls = "starttls" but the backend does not offer STARTTLS
  TlsFailed,          // STARTTLS refused, or the TLS handshake failed (certificate included)
};

const char* toString(BackendFailure failure);

// A failure that no retry can cure: the backend is not set up to take the proxy's identity
// hand-off, or not set up for the TLS the proxy requires of it. The client is told 421 and the
// session ends (never a session under the proxy's own, possibly trusted, address, and never one
// in plaintext). A failed handshake is not one of these: a certificate being renewed or a
// restarting backend may cure it, so the client gets the 451 of an unavailable backend.
inline bool isConfigurationFailure(BackendFailure failure) {
  return failure == BackendFailure::XclientNotOffered ||
         failure == BackendFailure::XclientRefused || failure == BackendFailure::TlsNotOffered;
}

// What the dialogue makes of a backend reply to one of its commands.
enum class ReplyFit : std::uint8_t {
  Relay,          // an answer to that command: relayed to the client
  Closing,        // 421: the backend ends the session; relayed, then the client session ends
  ProxyRefused,   // 530: the backend wants authentication from the proxy (misconfigured)
  ProtocolError,  // no sense for that command (354 to RCPT, 220/221, 8-bit text): not relayed
};

// `utf8`: the transaction declared SMTPUTF8, so UTF-8 reply text is allowed (RFC 6531 3.7.4).
ReplyFit classifyBackendReply(BackendPurpose purpose, const Reply& reply, bool utf8);

}  // namespace certrelay::smtp
