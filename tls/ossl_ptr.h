#pragma once
// RAII owners for OpenSSL objects: one alias per type, so ownership is visible in signatures.

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

namespace certrelay::tls {

template <auto Fn>
struct OsslDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Fn(p);
  }
};

template <class T, auto Fn>
using OsslPtr = std::unique_ptr<T, OsslDeleter<Fn>>;

using SslPtr = OsslPtr<SSL, SSL_free>;
using SslCtxPtr = OsslPtr<SSL_CTX, SSL_CTX_free>;
using BioPtr = OsslPtr<BIO, BIO_free_all>;
using X509Ptr = OsslPtr<X509, X509_free>;
using EvpPkeyPtr = OsslPtr<EVP_PKEY, EVP_PKEY_free>;

// Clears OpenSSL's thread-local error queue on scope exit, so a stale error from one connection
// never poisons SSL_get_error() for the next one on the same thread.
class ErrorQueueGuard {
 public:
  ErrorQueueGuard() = default;
  ~ErrorQueueGuard() { ERR_clear_error(); }
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
};

}  // namespace certrelay::tls
