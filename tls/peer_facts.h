#pragma once
// What one finished handshake told us about the client. Computed once at handshake end.
// All text here is already sanitized (text::sanitizeComment: printable ASCII only).

#include <string>
#include <string_view>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "common/text.h"
#include "config/config.h"

namespace certrelay::tls {

struct PeerFacts {
  std::string version;    // "TLSv1.3"
  std::string cipher;     // "TLS_AES_256_GCM_SHA384"
  int cipherBits = 0;     // used bits
  int cipherAlgBits = 0;  // algorithm bits
  std::string group;      // key exchange group, "X25519"; "" when unknown
  bool resumed = false;
  bool hasCertificate = false;  // the client sent a certificate
  std::string subjectCn;        // sanitized; "" when absent or unusable (e.g. embedded NUL)
  std::string issuerCn;         // sanitized
  bool verified = false;        // chain verified against tls.client_ca (false without a CA)
  std::string certFingerprint;  // digest of DER cert: canonical upper hex, no colons
  std::string pkeyFingerprint;  // digest of DER SubjectPublicKeyInfo, same form
  std::string digestName;       // "SHA256", "SHA1" or "MD5": the digest of both fingerprints

  // TLS 1.3 handshake signatures, as Postfix's tls_get_signature_params() names them for
  // "server-signature <sig> (<detail>) server-digest <digest>" and the client-signature
  // counterpart. All six stay empty for TLS 1.2 and below (Postfix returns early there) and on
  // a resumed session (no CertificateVerify was sent, Postfix skips them too); the client three
  // also stay empty when the client sent no certificate.
  //   signature: named after the signing key (Postfix's choice, not the TLS SignatureScheme):
  //              "RSA-PSS" for any RSA key (TLS 1.3 mandates PSS), "ECDSA", "ED25519", "ED448";
  //              other key types by their OpenSSL short name.
  //   detail:    "2048 bits" for RSA, the EC group name "prime256v1" / "secp384r1" (OpenSSL's
  //              name, as Postfix on OpenSSL 3 logs it, not "P-256"), "" for EdDSA.
  //              Without parentheses: Postfix writes " (" + detail + ")" when it is not empty.
  //   digest:    the hash of the signature scheme as OpenSSL's short name, "SHA256",
  //              "SHA384", "SHA512"; "" for EdDSA (no separate pre-hash).
  std::string serverSignature;
  std::string serverSignatureDetail;
  std::string serverDigest;
  std::string clientSignature;
  std::string clientSignatureDetail;
  std::string clientDigest;
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

// These moved to common/text.h. The names stay for proxy/session*.cpp until that code moves;
// new code calls text::sanitizeComment and text::withColons.
using text::sanitizeComment;
using text::withColons;

}  // namespace certrelay::tls
