#pragma once
// The proxy's TLS client context for the backend hop (backend.tls): one SSL_CTX per generation of
// its material (the CA bundle, the optional client certificate and key), built from one read of
// those files and replaced as a whole when they change, like the server-side Context.
//
// Security role: decides which backend the proxy hands a session (and the client's identity, in
// XCLIENT or XFORWARD) to.
// - The backend's chain must verify against backend.tls_ca, and its certificate must carry the
//   expected name (backend.tls_server_name, else the configured host of the address, a name or
//   an IP address). Partial wildcards ("mx*.example") are refused. There is no unverified mode
//   and no fallback to the system store: only the CAs the operator named are trusted. Every
//   certificate in the bundle is a trust anchor (X509_V_FLAG_PARTIAL_CHAIN), so an intermediate
//   CA, or the backend's own self-signed certificate, may be named on its own.
// - TLS 1.2 or later; renegotiation and compression off.
// - Resumption: the last session each backend address and name gave is kept (in this generation
//   only) and offered on every connection there until a newer one replaces it or it expires, so
//   backend connections are an abbreviated handshake (no certificate chain, no signature). A
//   resumed session was verified when it was made, for the same name: the cache key includes
//   it. Offering one TLS 1.3 ticket more than once goes against RFC 8446 C.4's advice, which is
//   about linking one client's connections for an observer: moot on the proxy's own hop. A
//   backend that takes each ticket once only answers with a full handshake (and a new ticket);
//   Postfix takes them until they expire and sends no new one on resumption.
//
// Threads: one ClientContext is shared by every worker; newSsl() and the session cache take a
// mutex (once per backend connection and per session ticket), nothing else is mutable.

#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "tls/material.h"
#include "tls/ossl_ptr.h"

namespace certrelay::tls {

class ClientContext;
using ClientContextPtr = std::shared_ptr<const ClientContext>;

// The bytes of backend.tls_ca, and of backend.tls_cert / backend.tls_key when set.
struct ClientMaterial {
  MaterialFile ca;
  std::optional<Material::Pair> pair;
};

// Every file `settings` names, in the order clientMaterialFromContents() expects: the CA, then
// the certificate and the key when set.
std::vector<std::filesystem::path> clientMaterialPaths(const config::BackendTls& settings);

// Pairs `contents` (one per clientMaterialPaths() entry) with their file names.
ClientMaterial clientMaterialFromContents(const config::BackendTls& settings,
                                          std::vector<std::string> contents);

// Overwrites the private key read with `material` once it is parsed, as wipeSecrets() does for
// the server's Material; ClientSecretsWiper does it when its scope ends, exception or not.
void wipeSecrets(ClientMaterial& material);
class ClientSecretsWiper {
 public:
  explicit ClientSecretsWiper(ClientMaterial& material) : material_(material) {}
  ~ClientSecretsWiper() { wipeSecrets(material_); }
  ClientSecretsWiper(const ClientSecretsWiper&) = delete;
  ClientSecretsWiper& operator=(const ClientSecretsWiper&) = delete;

 private:
  ClientMaterial& material_;
};

class ClientContext {
 public:
  // How many backend address and name pairs keep a session to resume: far more than any
  // configuration resolves to; beyond it, an arbitrary entry makes room.
  static constexpr std::size_t kMaxCachedSessions = 256;

  // Builds a generation from `material` (no file access). Throws TlsError naming the setting and
  // the file, e.g. "backend.tls_ca /etc/ca.pem: holds no certificate ...". `now` decides the
  // client certificate's validity and the 7-day warning.
  static ClientContextPtr create(const ClientMaterial& material,
                                 std::time_t now = std::time(nullptr));
  // Reads the files now, then the above (start-up, --check-config, tests).
  static ClientContextPtr create(const config::BackendTls& settings);

  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // A client SSL for one connection to `address` ("10.0.0.7:25"), whose certificate must carry
  // `peerName` (a host name, or an IPv4 / IPv6 address): the name to verify, SNI (names only:
  // RFC 6066 forbids addresses) and the session cached for this address and name, if any.
  // Null, with `error` set, only when OpenSSL cannot allocate or refuses the name.
  SslPtr newSsl(const std::string& address, const std::string& peerName, std::string& error) const;

  // Problems that do not stop the generation (a client certificate expiring within 7 days).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // One log line: "CA 2 certificates, client certificate CN=relay.example ECDSA P-256 not after
  // 2027-03-01" (without a client certificate: "CA 2 certificates, no client certificate").
  const std::string& summary() const { return summary_; }
  // Entries in the session cache (tests, and the resumption measurements).
  std::size_t cachedSessions() const;

 private:
  ClientContext() = default;
  void build(const ClientMaterial& material, std::time_t now);
  void loadCa(const MaterialFile& file);
  std::string loadClientCertificate(const Material::Pair& pair, std::time_t now);
  // OpenSSL's new-session callback: a session (a TLS 1.3 ticket, or a TLS 1.2 session at the
  // end of the handshake) to keep, as a copy, for the SSL's address and name. Returns 0: the
  // reference passed is OpenSSL's to free.
  static int onNewSession(SSL* ssl, SSL_SESSION* session);
  // Takes ownership of `session`.
  void store(const std::string& key, SSL_SESSION* session) const;

  SslCtxPtr ctx_;
  std::vector<std::string> warnings_;
  std::string summary_;
  std::size_t caCertificates_ = 0;
  // "address name" -> the last session that connection gave. Guarded by mutex_.
  mutable std::mutex mutex_;
  mutable std::map<std::string, OsslPtr<SSL_SESSION, SSL_SESSION_free>> sessions_;
};

}  // namespace certrelay::tls
