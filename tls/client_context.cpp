// The backend hop's client SSL_CTX and its session cache. See client_context.h for the security
// role; the comments here say why each OpenSSL knob is set the way it is.

#include "tls/client_context.h"

#include <openssl/crypto.h>
#include <openssl/x509v3.h>

#include <utility>

#include "common/text.h"
#include "config/read_file.h"
#include "tls/certificate_checks.h"
#include "tls/context.h"
#include "tls/internal.h"

namespace certrelay::tls {

namespace {

// "2 certificates", "1 certificate".
std::string certificates(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " certificate" : " certificates");
}

// The SSL ex_data slot holding the connection's session-cache key (a heap std::string that the
// slot's free function deletes with the SSL).
void freeSessionKey(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                    void* /*argp*/) {
  delete static_cast<std::string*>(ptr);
}

int sessionKeyIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, freeSessionKey);
  return index;
}

// The SSL_CTX ex_data slot pointing back at the ClientContext that owns it (for the callback).
int ownerIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// A session that the server will still take: resumable and not past its lifetime (an expired
// ticket would only cost the server a decryption before a full handshake anyway).
bool stillUsable(SSL_SESSION* session) {
  if (SSL_SESSION_is_resumable(session) != 1) {
    return false;
  }
  const std::time_t now = std::time(nullptr);
  return SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session) > now;
}

}  // namespace

std::vector<std::filesystem::path> clientMaterialPaths(const config::BackendTls& settings) {
  std::vector<std::filesystem::path> paths{settings.caFile};
  if (!settings.certFile.empty()) {
    paths.push_back(settings.certFile);
    paths.push_back(settings.keyFile);
  }
  return paths;
}

ClientMaterial clientMaterialFromContents(const config::BackendTls& settings,
                                          std::vector<std::string> contents) {
  const std::vector<std::filesystem::path> paths = clientMaterialPaths(settings);
  if (contents.size() != paths.size()) {
    // A caller bug (the watcher reads clientMaterialPaths() itself), not a bad file.
    throw TlsError("backend.tls: " + std::to_string(contents.size()) + " file contents for " +
                   std::to_string(paths.size()) + " configured files");
  }
  ClientMaterial material;
  material.ca = MaterialFile{paths[0].string(), std::move(contents[0])};
  if (paths.size() == 3) {
    material.pair = Material::Pair{MaterialFile{paths[1].string(), std::move(contents[1])},
                                   MaterialFile{paths[2].string(), std::move(contents[2])}};
  }
  return material;
}

void wipeSecrets(ClientMaterial& material) {
  if (material.pair) {
    std::string& key = material.pair->key.content;
    OPENSSL_cleanse(key.data(), key.size());
    key.clear();
  }
}

ClientContextPtr ClientContext::create(const config::BackendTls& settings) {
  const std::vector<std::filesystem::path> paths = clientMaterialPaths(settings);
  std::vector<std::string> contents(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    std::string error;
    if (!config::readWholeFile(paths[i], contents[i], error)) {
      // clientMaterialPaths' order: the CA, then the certificate and the key.
      const char* setting = i == 0   ? "backend.tls_ca"
                            : i == 1 ? "backend.tls_cert"
                                     : "backend.tls_key";
      throw TlsError(std::string(setting) + " " + error);
    }
  }
  ClientMaterial material = clientMaterialFromContents(settings, std::move(contents));
  const ClientSecretsWiper wiper(material);
  return create(material);
}

ClientContextPtr ClientContext::create(const ClientMaterial& material, std::time_t now) {
  ErrorQueueGuard guard;
  ERR_clear_error();  // a stale error would be blamed on our files
  // Built in place: the SSL_CTX points back at it (ownerIndex), so it must not move.
  std::shared_ptr<ClientContext> context(new ClientContext());
  context->build(material, now);
  return context;
}

ClientContext::~ClientContext() = default;

void ClientContext::build(const ClientMaterial& material, std::time_t now) {
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!ctx_) {
    throwTlsError("backend.tls: SSL_CTX_new");
  }
  SSL_CTX* c = ctx_.get();
  if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1) {
    throwTlsError("backend.tls: SSL_CTX_set_min_proto_version");
  }
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // As on the server side (context.cpp): idle connections give their record buffers back, and
  // the engine's plaintext queue is a std::string that may move between retries.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_ENABLE_PARTIAL_WRITE);
  // No verify callback: OpenSSL's own verdict (chain and name) ends the handshake on failure,
  // and SSL_get_verify_result() keeps the reason for the log line.
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  loadCa(material.ca);
  std::string client = "no client certificate";
  if (material.pair) {
    client = "client certificate " + loadClientCertificate(*material.pair, now);
  }
  // A client's internal cache is never looked up by OpenSSL: sessions are kept in sessions_,
  // keyed by address and name, and handed back by newSsl().
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, onNewSession);
  if (SSL_CTX_set_ex_data(c, ownerIndex(), this) != 1) {
    throwTlsError("backend.tls: SSL_CTX_set_ex_data");
  }
  summary_ = "CA " + certificates(caCertificates_) + ", " + client;
}

void ClientContext::loadCa(const MaterialFile& file) {
  const std::vector<X509Ptr> certs = readCertificates(file, "backend.tls_ca");
  X509_STORE* store = SSL_CTX_get_cert_store(ctx_.get());
  for (const X509Ptr& cert : certs) {
    if (store == nullptr || X509_STORE_add_cert(store, cert.get()) != 1) {
      throwTlsError("backend.tls_ca " + file.name);
    }
  }
  // Every certificate named is an anchor, self-signed or not (see client_context.h).
  if (X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx_.get()), X509_V_FLAG_PARTIAL_CHAIN) != 1) {
    throwTlsError("backend.tls_ca " + file.name);
  }
  caCertificates_ = certs.size();
}

std::string ClientContext::loadClientCertificate(const Material::Pair& pair, std::time_t now) {
  ServerCertificate certificate =
      loadServerCertificate(pair, now, warnings_, "backend.tls_cert", "backend.tls_key");
  // The chain the backend needs to verify us, leaf first; OpenSSL takes its own references.
  STACK_OF(X509)* chain = sk_X509_new_null();
  if (chain == nullptr) {
    throwTlsError("backend.tls_cert: sk_X509_new_null");
  }
  bool ok = true;
  for (const X509Ptr& issuer : certificate.chain) {
    ok = ok && sk_X509_push(chain, issuer.get()) > 0;
  }
  ok = ok && SSL_CTX_use_cert_and_key(ctx_.get(), certificate.leaf.get(), certificate.key.get(),
                                      chain, 1) == 1;
  sk_X509_free(chain);
  if (!ok) {
    throwTlsError("backend.tls_cert " + certificate.certName);
  }
  return describeServerCertificate(certificate);
}

SslPtr ClientContext::newSsl(const std::string& address, const std::string& peerName,
                             std::string& error) const {
  ErrorQueueGuard guard;
  SslPtr ssl(SSL_new(ctx_.get()));
  auto* key = new std::string(address + " " + peerName);
  if (!ssl || SSL_set_ex_data(ssl.get(), sessionKeyIndex(), key) != 1) {
    delete key;
    error = "SSL_new: " + drainErrorQueue();
    return nullptr;
  }
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const bool ip = text::isIpAddress(peerName, false) || text::isIpAddress(peerName, true);
  const bool named = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, peerName.c_str()) == 1
                        : SSL_set1_host(ssl.get(), peerName.c_str()) == 1 &&
                              SSL_set_tlsext_host_name(ssl.get(), peerName.c_str()) == 1;
  if (!named) {
    error = "the name to verify, " + peerName + ", is refused: " + drainErrorQueue();
    return nullptr;
  }
  const std::lock_guard lock(mutex_);
  if (auto found = sessions_.find(*key); found != sessions_.end()) {
    if (!stillUsable(found->second.get())) {
      sessions_.erase(found);
      return ssl;
    }
    // A copy: OpenSSL marks the session an SSL resumed with as used up at the end of a TLS 1.3
    // handshake (and the one of an SSL freed mid-connection as bad), which would otherwise end
    // the cached one for every later connection.
    if (SSL_SESSION* copy = SSL_SESSION_dup(found->second.get()); copy != nullptr) {
      SSL_set_session(ssl.get(), copy);  // takes its own reference
      SSL_SESSION_free(copy);
    }
  }
  return ssl;
}

int ClientContext::onNewSession(SSL* ssl, SSL_SESSION* session) {
  const auto* owner =
      static_cast<const ClientContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ownerIndex()));
  const auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, sessionKeyIndex()));
  // A copy, as in newSsl: `session` is the SSL's own, which OpenSSL may mark unusable later.
  SSL_SESSION* copy = owner != nullptr && key != nullptr ? SSL_SESSION_dup(session) : nullptr;
  if (copy != nullptr) {
    owner->store(*key, copy);
  }
  return 0;  // the reference OpenSSL passed is not kept: it frees it
}

void ClientContext::store(const std::string& key, SSL_SESSION* session) const {
  const std::lock_guard lock(mutex_);
  auto found = sessions_.find(key);
  if (found == sessions_.end() && sessions_.size() >= kMaxCachedSessions) {
    sessions_.erase(sessions_.begin());
  }
  // The newest replaces the one before (TLS 1.3 sends one or more tickets per connection).
  sessions_[key].reset(session);
}

std::size_t ClientContext::cachedSessions() const {
  const std::lock_guard lock(mutex_);
  return sessions_.size();
}

}  // namespace certrelay::tls
