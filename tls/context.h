#pragma once
// The server-side TLS context shared by every worker (one SSL_CTX per loaded snapshot).
//
// Security role: decides what a handshake accepts. It asks for a client certificate but does
// not require one, and accepts a certificate whose chain does not verify (the fingerprint
// decides, as in Postfix's permit_tls_clientcerts); whether the chain verified against
// tls.client_ca is recorded, not enforced. Renegotiation is off. Session cache and tickets are on
// (a resumed session keeps its peer certificate, so its facts survive resumption).

#include <memory>
#include <stdexcept>
#include <string>

#include "config/config.h"
#include "tls/ossl_ptr.h"

namespace certrelay::tls {

class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Context {
 public:
  // Loads cert chain, key (must match), optional client CA bundle. Throws TlsError with a
  // message naming the file and OpenSSL's reason. `digest` (policy.digest) is what the peer
  // facts of every connection on this context are computed with; a digest OpenSSL cannot
  // compute (MD5 under a FIPS-only configuration) is a TlsError here, not empty fingerprints
  // later.
  static std::shared_ptr<const Context> create(
      const config::Tls& settings,
      config::FingerprintDigest digest = config::FingerprintDigest::Sha256);

  SSL_CTX* get() const { return ctx_.get(); }
  config::FingerprintDigest digest() const { return digest_; }
  // The fetched EVP_MD for digest() (process-wide, never freed).
  const EVP_MD* digestMd() const { return md_; }

 private:
  Context(SslCtxPtr ctx, config::FingerprintDigest digest, const EVP_MD* md)
      : ctx_(std::move(ctx)), digest_(digest), md_(md) {}
  SslCtxPtr ctx_;
  config::FingerprintDigest digest_;
  const EVP_MD* md_;
};

using ContextPtr = std::shared_ptr<const Context>;

}  // namespace certrelay::tls
