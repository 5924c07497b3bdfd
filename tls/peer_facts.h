#pragma once
// What one finished handshake told us about the client. Computed once at handshake end.
// All text here is already sanitized (text::sanitizeComment: printable ASCII only).

#include <string>
#include <string_view>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "tls/tls_summary.h"

namespace certrelay::tls {

struct PeerFacts {
  TlsSummary summary;           // protocol, cipher, key exchange, signatures, resumption
  bool hasCertificate = false;  // the client sent a certificate
  std::string subjectCn;        // sanitized; "" when absent or unusable (e.g. embedded NUL)
  std::string issuerCn;         // sanitized
  bool verified = false;        // chain verified against tls.client_ca (false without a CA)
  std::string certFingerprint;  // digest of DER cert: canonical upper hex, no colons
  std::string pkeyFingerprint;  // digest of DER SubjectPublicKeyInfo, same form
  std::string digestName;       // "SHA256", "SHA1" or "MD5": the digest of both fingerprints
};

// Fills PeerFacts from a completed server-side SSL. The fingerprints use the digest of the
// Context that made the SSL's SSL_CTX (policy.digest); SHA-256 for any other SSL_CTX.
PeerFacts collectPeerFacts(SSL* ssl);

// "SHA256", "SHA1", "MD5" (the names Postfix's digest options take, upper-cased for logs).
const char* digestName(config::FingerprintDigest digest);

// The EVP_MD for `digest`: fetched once per process and never freed (OpenSSL 3.0's implicit
// fetch in EVP_sha256() and friends costs on every call). Falls back to the legacy handle when
// the fetch fails; Context::create checks that the digest really works.
const EVP_MD* fingerprintMd(config::FingerprintDigest digest);

// Digests as canonical upper hex without colons; "" for a null certificate or on failure.
// Without `digest`: SHA-256.
std::string certificateFingerprint(X509* cert);
std::string certificateFingerprint(X509* cert, config::FingerprintDigest digest);
std::string publicKeyFingerprint(X509* cert);
std::string publicKeyFingerprint(X509* cert, config::FingerprintDigest digest);

}  // namespace certrelay::tls
