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
  // message naming the file and OpenSSL's reason.
  static std::shared_ptr<const Context> create(const config::Tls& settings);

  SSL_CTX* get() const { return ctx_.get(); }

 private:
  explicit Context(SslCtxPtr ctx) : ctx_(std::move(ctx)) {}
  SslCtxPtr ctx_;
};

using ContextPtr = std::shared_ptr<const Context>;

}  // namespace certrelay::tls
