#pragma once
// What one finished handshake told us about the client. Computed once at handshake end.
// All text here is already sanitized (printable ASCII only; see sanitizeComment()).

#include <string>
#include <string_view>

#include <openssl/ssl.h>

namespace certrelay::tls {

struct PeerFacts {
  std::string version;          // "TLSv1.3"
  std::string cipher;           // "TLS_AES_256_GCM_SHA384"
  int cipherBits = 0;           // used bits
  int cipherAlgBits = 0;        // algorithm bits
  std::string group;            // key exchange group, "X25519"; "" when unknown
  bool resumed = false;
  bool hasCertificate = false;  // the client sent a certificate
  std::string subjectCn;        // sanitized; "" when absent or unusable (e.g. embedded NUL)
  std::string issuerCn;         // sanitized
  bool verified = false;        // chain verified against tls.client_ca (false without a CA)
  std::string certFingerprint;  // SHA-256 of DER cert: canonical upper hex, no colons
  std::string pkeyFingerprint;  // SHA-256 of DER SubjectPublicKeyInfo, same form
};

// Fills PeerFacts from a completed server-side SSL.
PeerFacts collectPeerFacts(SSL* ssl);

// SHA-256 digests as canonical upper hex without colons.
std::string certificateFingerprint(X509* cert);
std::string publicKeyFingerprint(X509* cert);

// "AABB.." -> "AA:BB:..", the form Postfix logs.
std::string withColons(std::string_view hex);

// Text for logs and Received comments: bytes outside printable ASCII, backslash, double quote
// and parentheses become '?'. Result is at most maxLen characters.
std::string sanitizeComment(std::string_view text, std::size_t maxLen = 256);

}  // namespace certrelay::tls
