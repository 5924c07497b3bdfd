#pragma once
// The server-side TLS context shared by every worker: one SSL_CTX per generation of TLS
// material (certificates, keys, client CA, ticket keys), built from the bytes of one read of
// all their files (tls/material.h) and replaced as a whole when they change.
//
// Security role: decides what a handshake accepts.
// - Server certificates: one or several (at most one per key type: ECDSA, RSA, ...); OpenSSL
//   picks the one the client's signature algorithms allow. A generation whose chain is out of
//   order, whose key does not match, or whose leaf is expired or not yet valid is refused here,
//   so a bad renewal never replaces a working generation.
// - Client certificates: asked for by default; each listener decides (Engine's ClientCertMode:
//   request, require, none). A chain that does not verify is accepted (the fingerprint decides,
//   as in Postfix's permit_tls_clientcerts); whether it verified against tls.client_ca is
//   recorded, not enforced. A session resumes only under the client_cert mode it was made in
//   (per-mode session id contexts), so a session without a certificate never skips the
//   question on a listener that asks or requires.
// - SNI: any name, unless tls.strict_sni refuses a name none of our leaves carries.
// - ALPN: a list without "smtp" is refused (ALPACA). Renegotiation is off.
// - Resumption: a session cache bounded by bytes (tls.session_cache_memory, session_cache.h),
//   and stateless tickets with tls.session_tickets (keys from tls.ticket_keys when set, so
//   replicas resume each other's sessions; sessions a ticket carries are then not cached). A
//   resumed session keeps its peer certificate, so its facts survive resumption.

#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"
#include "tls/material.h"
#include "tls/ossl_ptr.h"

namespace certrelay::tls {

class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Context;
class SessionCache;
class TicketKeys;
using ContextPtr = std::shared_ptr<const Context>;

class Context {
 public:
  // Builds a generation from `material` (no file access: the watcher reads on its thread pool).
  // Throws TlsError with a message naming the file and, where it helps, OpenSSL's reason.
  // `digest` (policy.digest) is what the peer facts of every connection on this context are
  // computed with; a digest OpenSSL cannot compute (MD5 under a FIPS-only configuration) is a
  // TlsError here, not empty fingerprints later. `now` decides expiry and the 7-day warning.
  static ContextPtr create(const config::Tls& settings, const Material& material,
                           config::FingerprintDigest digest = config::FingerprintDigest::Sha256,
                           std::time_t now = std::time(nullptr));
  // readMaterial(settings), then the above (start-up, --check-config, tests).
  static ContextPtr create(const config::Tls& settings,
                           config::FingerprintDigest digest = config::FingerprintDigest::Sha256);

  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  SSL_CTX* get() const { return ctx_.get(); }
  config::FingerprintDigest digest() const { return digest_; }
  // The fetched EVP_MD for digest() (process-wide, never freed).
  const EVP_MD* digestMd() const { return md_; }

  // Problems that do not stop the generation, one line each, e.g.
  // "tls.cert /etc/tls/a.crt: certificate expires in 3 days (2027-03-01 12:00:00 UTC)".
  const std::vector<std::string>& warnings() const { return warnings_; }
  // The earliest notAfter of our leaves.
  std::time_t notAfter() const { return notAfter_; }
  // One log line: "2 certificates (CN=mx.example ECDSA P-256 not after 2027-03-01, CN=mx.example
  // RSA 2048 not after 2027-03-01), client CA 1 certificate, 3 ticket keys" (the client CA part
  // only with tls.client_ca, the ticket-key part only with tls.ticket_keys).
  std::string summary() const { return summary_; }
  // The byte-bounded session cache (tls/session_cache.h); null when the cache is off or is
  // OpenSSL's internal one (tls.session_cache_memory = 0).
  const SessionCache* sessionCache() const { return sessionCache_.get(); }
  // A newer generation is in force: new connections no longer start on this one, so its cached
  // sessions only hold memory. Drops them (thread-safe; connections still on it keep working).
  void retire() const;

  // SHA-256 of each leaf's DER, in tls.cert order, as `openssl x509 -fingerprint -sha256`
  // prints it after "=": "3E:F8:...".
  std::vector<std::string> leafFingerprints() const { return leafFingerprints_; }

 private:
  Context(config::FingerprintDigest digest, const EVP_MD* md);
  void build(const config::Tls& settings, const Material& material, std::time_t now);
  // Returns each leaf's summary() part, in tls.cert order.
  std::vector<std::string> loadServerCertificates(const Material& material, std::time_t now);
  void loadClientCa(const MaterialFile& file);
  void loadTicketKeys(const std::vector<MaterialFile>& files);
  std::string composeSummary(const std::vector<std::string>& leafDescriptions) const;
  // tls.strict_sni's servername callback; `arg` is the Context.
  static int checkServerName(SSL* ssl, int* alert, void* arg);

  // Destroyed after ctx_ (members die in reverse order): the SSL_CTX's ticket and session
  // callbacks use them. The cache is internally synchronized (shared by every worker).
  std::unique_ptr<const TicketKeys> ticketKeys_;
  std::unique_ptr<SessionCache> sessionCache_;
  SslCtxPtr ctx_;
  config::FingerprintDigest digest_;
  const EVP_MD* md_;
  std::vector<X509Ptr> leaves_;  // for strict SNI; the SSL_CTX holds its own references
  std::vector<std::string> warnings_;
  std::time_t notAfter_ = 0;
  std::string summary_;
  std::size_t clientCaCertificates_ = 0;
  std::vector<std::string> leafFingerprints_;
};

}  // namespace certrelay::tls
