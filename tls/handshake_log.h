#pragma once
// The two log lines of a finished handshake, in Postfix's words (protocol.md 7.1 and 7.2), so
// that the session only hands over what it knows.

#include <optional>
#include <string>
#include <string_view>

#include "tls/peer_facts.h"

namespace certrelay::tls {

// Postfix's trust word: "Anonymous" (no client certificate), "Trusted" (the chain verified) or
// "Untrusted" (a certificate that did not verify). Relay permission is the fingerprint's and is
// logged by peerCertificateLogLine().
const char* trustWord(const PeerFacts& facts);

// "Trusted TLS connection established from unknown[192.0.2.1]: TLSv1.3 with cipher
// TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1)
// server-digest SHA256", the description being describeTls(facts.summary); " (resumed)" is
// appended for an abbreviated handshake (certrelay's addition: Postfix's server says nothing).
// `clientName` is the caller's log name for the client, written as given.
std::string tlsEstablishedLogLine(std::string_view clientName, const PeerFacts& facts);

// "unknown[192.0.2.1]: subject_CN=<cn>, issuer=<issuer cn>, cert fingerprint=AB:..,
// pkey fingerprint=CD:.." (Postfix >= 3.9's peer certificate line), then ", relay
// identity=<identity>" when the certificate is listed, ", not listed for relay" when not.
// Only meaningful when facts.hasCertificate.
std::string peerCertificateLogLine(std::string_view clientName, const PeerFacts& facts,
                                   const std::optional<std::string>& relayIdentity);

}  // namespace certrelay::tls
