#pragma once
// What a finished handshake negotiated, and the one text that describes it. The same words go
// in the "TLS connection established" log line (tlsEstablishedLogLine) and in the Received
// header's "(using ...)" comment (smtp::buildReceivedHeader), as Postfix writes both from one
// set of facts (tls_misc.c tls_log_summary(), smtpd.c; protocol.md sections 3.1 and 7.1).
//
// The rule for the TLS 1.3 details, Postfix's: "key-exchange", "server-signature" and
// "client-signature" are independent pieces. Each is written when its name is known, whatever
// the others are (a server signature needs no known group), and none of them below TLS 1.3
// (Postfix's tls_get_signature_params() returns early there; TLS 1.2 names its key exchange and
// signature in the cipher suite). "(detail)" and "server-digest"/"client-digest" are written only
// with their signature, each when known.

#include <string>
#include <string_view>

namespace certrelay::tls {

struct TlsSummary {
  std::string version;    // "TLSv1.3"
  std::string cipher;     // "TLS_AES_256_GCM_SHA384"
  int cipherBits = 0;     // used bits
  int cipherAlgBits = 0;  // algorithm bits
  std::string group;      // key exchange group, "X25519"; "" when unknown

  // TLS 1.3 handshake signatures, as Postfix's tls_get_signature_params() names them for
  // "server-signature <sig> (<detail>) server-digest <digest>" and the client-signature
  // counterpart. collectPeerFacts() leaves all six empty for TLS 1.2 and below and on a resumed
  // session (no CertificateVerify was sent, Postfix skips them too); the client three also stay
  // empty when the client sent no certificate.
  //   signature: named after the signing key (Postfix's choice, not the TLS SignatureScheme):
  //              "RSA-PSS" for any RSA key (TLS 1.3 mandates PSS), "ECDSA", "ED25519", "ED448";
  //              other key types by their OpenSSL short name.
  //   detail:    "2048 bits" for RSA, the EC group name "prime256v1" / "secp384r1" (OpenSSL's
  //              name, as Postfix on OpenSSL 3 logs it, not "P-256"), "" for EdDSA.
  //              Without parentheses: describeTls() adds them.
  //   digest:    the hash of the signature scheme as OpenSSL's short name, "SHA256",
  //              "SHA384", "SHA512"; "" for EdDSA (no separate pre-hash).
  std::string serverSignature;
  std::string serverSignatureDetail;
  std::string serverDigest;
  std::string clientSignature;
  std::string clientSignatureDetail;
  std::string clientDigest;

  bool resumed = false;  // an abbreviated handshake (not part of the description)
};

// The description in its pieces, for a caller that lays them out itself (the Received header
// wraps its lines between them). A piece is "" when the rule above leaves it out; `cipher` is
// always there. Every name is sanitized here (text::sanitizeToken, the detail
// text::sanitizeComment, each cut to 64 bytes), so the pieces are safe in a log line and in a
// header whatever the summary holds.
struct TlsDescription {
  std::string cipher;           // "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
  std::string keyExchange;      // "key-exchange X25519"
  std::string serverSignature;  // "server-signature ECDSA (prime256v1) server-digest SHA256"
  std::string clientSignature;  // "client-signature RSA-PSS (2048 bits) client-digest SHA256"
};
TlsDescription describeTlsParts(const TlsSummary& summary);

// The pieces joined by single spaces, empty ones left out: "TLSv1.3 with cipher
// TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1)
// server-digest SHA256".
std::string describeTls(const TlsSummary& summary);

// True unless `version` names a protocol older than TLS 1.3 ("SSLv2" ... "TLSv1.2"), i.e. when
// the TLS 1.3 details belong in the description.
bool carriesTls13Details(std::string_view version);

}  // namespace certrelay::tls
