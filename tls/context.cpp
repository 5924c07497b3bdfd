// Builds the one SSL_CTX that every connection of a generation shares. See context.h for the
// security role; the comments here say why each OpenSSL knob is set the way it is. Parsing and
// checking the certificates and keys is in certificate_checks.cpp.

#include "tls/context.h"

#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string_view>

#include "common/text.h"
#include "tls/certificate_checks.h"
#include "tls/compat.h"
#include "tls/internal.h"
#include "tls/peer_facts.h"
#include "tls/session_cache.h"
#include "tls/ticket_keys.h"

namespace certrelay::tls {

namespace {

// Session id context: OpenSSL refuses to resume a session that was established with
// SSL_VERIFY_PEER unless the server set one (ssl_get_prev_session: "session id context
// uninitialized"). It is fixed rather than random so that replicas sharing ticket keys can
// resume each other's sessions. This is the client_cert = request one; the other modes have
// their own (sessionIdContext()).
constexpr std::string_view kSessionIdContext = "certrelay";

// The only ALPN protocol id we speak (RFC 7301 registry: "smtp").
constexpr unsigned char kAlpnSmtp[] = {'s', 'm', 't', 'p'};

// Certificate chains are recorded, not enforced: the fingerprint decides (as Postfix's
// permit_tls_clientcerts). Returning 1 keeps the handshake going for a chain that does not
// verify, while OpenSSL still stores the real outcome for SSL_get_verify_result().
int acceptAnyChain(int /*preverifyOk*/, X509_STORE_CTX* /*store*/) {
  return 1;
}

// The ex_data slot holding tls.tickets_on_resumption, as a pointer into kTicketCounts.
constexpr std::size_t kTicketCounts[] = {0, 1, 2, 3, 4, 5, 6, 7, 8};  // the config's range

int ticketsOnResumptionIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL sends num_tickets after every TLS 1.3 handshake, a resumed one included. Once the
// server has accepted the client's ticket (known from the ServerHello on), the count for this
// connection becomes tls.tickets_on_resumption; OpenSSL reads it only when the handshake ends.
void adjustTicketsOnResumption(const SSL* ssl, int where, int /*ret*/) {
  if ((where & SSL_CB_ACCEPT_LOOP) == 0 || SSL_session_reused(ssl) != 1) {
    return;
  }
  const auto* tickets = static_cast<const std::size_t*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticketsOnResumptionIndex()));
  if (tickets != nullptr) {
    SSL_set_num_tickets(const_cast<SSL*>(ssl), *tickets);
  }
}

// Without tls.client_ca there is nothing to verify a client's chain against: OpenSSL would
// still run X509_verify_cert (chain building, extension caching and, for a chain the client
// sends, a signature check per certificate: up to ~19% of a full handshake, callgrind) only to
// report a failure that acceptAnyChain overrides and that facts() ignores without a client CA.
// The outcome it would record is recorded instead.
int skipChainVerification(X509_STORE_CTX* store, void* /*arg*/) {
  X509_STORE_CTX_set_error(store, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  return 1;
}

// ALPACA defence (CVE-2021-3618 class): a client that offers ALPN but not "smtp" is talking to
// the wrong service (e.g. a browser redirected to port 25), so the handshake is aborted with
// no_application_protocol. A client that offers no ALPN at all is a normal SMTP client.
int selectAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outLen,
               const unsigned char* in, unsigned int inLen, void* /*arg*/) {
  // `in` is the wire-format list: repeated (length byte, protocol bytes).
  unsigned int pos = 0;
  while (pos < inLen) {
    const unsigned int len = in[pos];
    if (len > inLen - pos - 1) {
      break;  // malformed list: OpenSSL validates it before calling us, so this is defensive
    }
    if (len == sizeof(kAlpnSmtp) && std::memcmp(in + pos + 1, kAlpnSmtp, len) == 0) {
      *out = in + pos + 1;
      *outLen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    pos += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int minProtocolVersion(const std::string& name) {
  if (name == "TLSv1.2") {
    return TLS1_2_VERSION;
  }
  if (name == "TLSv1.3") {
    return TLS1_3_VERSION;
  }
  throw TlsError("tls.min_version: unsupported value \"" + name +
                 "\" (expected TLSv1.2 or TLSv1.3)");
}

// Prove the fingerprint digest works before any client depends on it: with a provider that
// lacks it, every fingerprint would silently come out empty and nobody would be trusted.
const EVP_MD* usableFingerprintMd(config::FingerprintDigest digest) {
  const EVP_MD* md = fingerprintMd(digest);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outLen = 0;
  if (md == nullptr || EVP_Digest("", 0, out, &outLen, md, nullptr) != 1 ||
      outLen != config::digestSize(digest)) {
    throwTlsError("policy.digest " + std::string(config::digestKeyword(digest)) +
                  ": OpenSSL cannot compute this digest");
  }
  return md;
}

// Protocol versions, options and modes: what every handshake and record on this context obeys.
void configureProtocol(SSL_CTX* c, const config::Tls& settings) {
  if (SSL_CTX_set_min_proto_version(c, minProtocolVersion(settings.minVersion)) != 1) {
    throwTlsError("tls.min_version " + settings.minVersion);
  }

  // No renegotiation at all (TLS 1.2 renegotiation is a DoS lever and a source of identity
  // confusion: the client certificate could change mid-session). SSL_OP_ALLOW_CLIENT_
  // RENEGOTIATION stays off. Compression is off for CRIME.
  uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
  if (!settings.sessionTickets) {
    options |= SSL_OP_NO_TICKET;
  }
  SSL_CTX_set_options(c, options);
  SSL_CTX_clear_options(c, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);

  // RELEASE_BUFFERS frees the 16+ KiB record buffers of an idle connection (most SMTP sessions
  // are idle most of the time). The write buffer we hand to SSL_write is a std::string that may
  // reallocate between retries, hence ACCEPT_MOVING_WRITE_BUFFER; ENABLE_PARTIAL_WRITE lets
  // SSL_write report progress record by record instead of all-or-nothing.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_ENABLE_PARTIAL_WRITE);
}

// Resumption: a server-side cache (session ids, and TLS 1.3 stateful tickets when stateless
// tickets are off) plus stateless tickets unless disabled. The session (client certificate
// included) survives resumption, so facts() stay complete on a resumed connection. The cache is
// the byte-bounded SessionCache (tls.session_cache_memory), installed by Context::build; with
// tls.session_cache_memory = 0 it is OpenSSL's internal one, bounded by entries only.
void configureResumption(SSL_CTX* c, const config::Tls& settings) {
  if (settings.sessionCacheSize == 0) {
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  } else {
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    const auto size = settings.sessionCacheSize > static_cast<std::size_t>(LONG_MAX)
                          ? LONG_MAX
                          : static_cast<long>(settings.sessionCacheSize);
    SSL_CTX_sess_set_cache_size(c, size);
  }
  SSL_CTX_set_timeout(c, static_cast<long>(settings.sessionTimeout.count()));
  if (SSL_CTX_set_session_id_context(
          c, reinterpret_cast<const unsigned char*>(kSessionIdContext.data()),
          static_cast<unsigned int>(kSessionIdContext.size())) != 1) {
    throwTlsError("SSL_CTX_set_session_id_context");
  }
}

// How many TLS 1.3 tickets a full and a resumed handshake send.
void configureTickets(SSL_CTX* c, const config::Tls& settings) {
  // Each TLS 1.3 ticket costs ~150 us (performance.md); OpenSSL's default is 2.
  const int tickets = settings.ticketsPerHandshake < 0 ? 0 : settings.ticketsPerHandshake;
  if (SSL_CTX_set_num_tickets(c, static_cast<std::size_t>(tickets)) != 1) {
    throwTlsError("SSL_CTX_set_num_tickets");
  }
  if (settings.ticketsOnResumption != tickets) {
    const auto last = static_cast<int>(std::size(kTicketCounts)) - 1;
    const auto* onResumption = &kTicketCounts[std::clamp(settings.ticketsOnResumption, 0, last)];
    if (SSL_CTX_set_ex_data(c, ticketsOnResumptionIndex(),
                            const_cast<std::size_t*>(onResumption)) != 1) {
      throwTlsError("SSL_CTX_set_ex_data");
    }
    SSL_CTX_set_info_callback(c, adjustTicketsOnResumption);
  }
}

// The SSL_CTX_use_cert_and_key chain argument: a stack of borrowed certificates (OpenSSL takes
// its own references).
struct X509StackFree {
  void operator()(STACK_OF(X509) * stack) const noexcept { sk_X509_free(stack); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

void useServerCertificate(SSL_CTX* c, const ServerCertificate& certificate) {
  X509StackPtr chain(sk_X509_new_null());
  if (!chain) {
    throwTlsError("sk_X509_new_null");
  }
  for (const X509Ptr& issuer : certificate.chain) {
    if (sk_X509_push(chain.get(), issuer.get()) <= 0) {
      throwTlsError("sk_X509_push");
    }
  }
  // override = 1: the slot of this key type is empty (Context::loadServerCertificates refuses
  // a second certificate of one type), so this never replaces anything.
  if (SSL_CTX_use_cert_and_key(c, certificate.leaf.get(), certificate.key.get(), chain.get(), 1) !=
      1) {
    throwTlsError("tls.cert " + certificate.certName);
  }
}

// Certificate chains are recorded, not enforced (acceptAnyChain); without tls.client_ca there is
// nothing to verify against at all (skipChainVerification). Engine narrows this per listener.
void configureClientVerification(SSL_CTX* c, bool withClientCa) {
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, acceptAnyChain);
  if (!withClientCa) {
    SSL_CTX_set_cert_verify_callback(c, skipChainVerification, nullptr);
  }
}

// Whether `name` is in the CertificateRequest's list already (a bundle may hold a renewed CA
// under the same subject).
bool hasClientCaName(SSL_CTX* c, const X509_NAME* name) {
  const STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(c);
  for (int i = 0; i < sk_X509_NAME_num(names); ++i) {
    if (X509_NAME_cmp(sk_X509_NAME_value(names, i), name) == 0) {
      return true;
    }
  }
  return false;
}

// "2 certificates", "1 ticket key".
std::string count(std::size_t n, const char* singular, const char* plural) {
  return std::to_string(n) + " " + (n == 1 ? singular : plural);
}

}  // namespace

int clientCaMarkerIndex() {
  // Allocated once per process; the slot holds a non-null pointer on contexts that loaded a
  // client CA, so collectPeerFacts() can tell "no trust store" from "chain did not verify".
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string_view sessionIdContext(config::ClientCertMode mode) {
  switch (mode) {
    case config::ClientCertMode::Require:
      return "certrelay/require";
    case config::ClientCertMode::None:
      return "certrelay/none";
    case config::ClientCertMode::Request:
      break;
  }
  return kSessionIdContext;
}

Context::Context(config::FingerprintDigest digest, const EVP_MD* md) : digest_(digest), md_(md) {}

Context::~Context() = default;

void Context::retire() const {
  if (sessionCache_) {
    sessionCache_->clear();
  }
}

ContextPtr Context::create(const config::Tls& settings, config::FingerprintDigest digest) {
  Material material = readMaterial(settings);
  const SecretsWiper wiper(material);
  return create(settings, material, digest);
}

ContextPtr Context::create(const config::Tls& settings, const Material& material,
                           config::FingerprintDigest digest, std::time_t now) {
  ErrorQueueGuard guard;
  ERR_clear_error();  // a stale error would be blamed on our files
  if (settings.fastEcKeyDecoding) {
    installFastEcKeyDecoding();  // process-wide; harmless when it cannot be installed
  }
  const EVP_MD* md = usableFingerprintMd(digest);
  // Built in place: the strict-SNI callback gets the Context's address, which must not move.
  std::shared_ptr<Context> context(new Context(digest, md));
  context->build(settings, material, now);
  return context;
}

void Context::build(const config::Tls& settings, const Material& material, std::time_t now) {
  ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!ctx_) {
    throwTlsError("SSL_CTX_new");
  }
  SSL_CTX* c = ctx_.get();
  configureProtocol(c, settings);
  const std::vector<std::string> leafDescriptions = loadServerCertificates(material, now);
  configureClientVerification(c, material.clientCa.has_value());
  if (material.clientCa) {
    loadClientCa(*material.clientCa);
  }
  configureResumption(c, settings);
  if (settings.sessionCacheSize != 0 && settings.sessionCacheMemory != 0) {
    sessionCache_ =
        std::make_unique<SessionCache>(settings.sessionCacheMemory, settings.sessionCacheSize);
    if (!installSessionCache(c, sessionCache_.get())) {
      throwTlsError("tls.session_cache_memory");
    }
  }
  configureTickets(c, settings);
  if (!material.ticketKeys.empty()) {
    loadTicketKeys(material.ticketKeys);
  }

  // collectPeerFacts() reads the digest from here, so every connection made from this SSL_CTX
  // is fingerprinted the way this Context was asked to.
  if (SSL_CTX_set_ex_data(c, fingerprintDigestIndex(), digestSlotValue(digest_)) != 1) {
    throwTlsError("SSL_CTX_set_ex_data");
  }
  SSL_CTX_set_alpn_select_cb(c, selectAlpn, nullptr);
  // SNI: without tls.strict_sni any name is accepted (no servername callback), as most MTAs do:
  // SMTP clients often send the MX name, an IP or nothing, and refusing costs deliveries.
  if (settings.strictSni) {
    SSL_CTX_set_tlsext_servername_callback(c, checkServerName);
    SSL_CTX_set_tlsext_servername_arg(c, this);
  }

  summary_ = composeSummary(leafDescriptions);
}

// Every tls.cert / tls.key pair, at most one per key type: OpenSSL keeps one certificate per
// type and would silently replace the first with the second.
std::vector<std::string> Context::loadServerCertificates(const Material& material,
                                                         std::time_t now) {
  if (material.pairs.empty()) {
    throw TlsError("tls.cert: no certificate configured");
  }
  std::vector<ServerCertificate> loaded;
  loaded.reserve(material.pairs.size());
  for (const Material::Pair& pair : material.pairs) {
    ServerCertificate certificate = loadServerCertificate(pair, now, warnings_);
    const std::string type = keyTypeName(certificate.key.get());
    for (const ServerCertificate& earlier : loaded) {
      if (keyTypeName(earlier.key.get()) == type) {
        throw TlsError("tls.cert " + certificate.certName + ": a second " + type +
                       " certificate (tls.cert " + earlier.certName +
                       " is one already); give at most one certificate per key type");
      }
    }
    useServerCertificate(ctx_.get(), certificate);
    loaded.push_back(std::move(certificate));
  }
  std::vector<std::string> descriptions;
  notAfter_ = loaded.front().notAfter;
  for (ServerCertificate& certificate : loaded) {
    notAfter_ = std::min(notAfter_, certificate.notAfter);
    leafFingerprints_.push_back(text::withColons(certificateFingerprint(certificate.leaf.get())));
    descriptions.push_back(describeServerCertificate(certificate));
    leaves_.push_back(std::move(certificate.leaf));
  }
  return descriptions;
}

std::string Context::composeSummary(const std::vector<std::string>& leafDescriptions) const {
  std::string out = count(leafDescriptions.size(), "certificate", "certificates") + " (";
  for (std::size_t i = 0; i < leafDescriptions.size(); ++i) {
    out += (i == 0 ? "" : ", ") + leafDescriptions[i];
  }
  out += ')';
  if (clientCaCertificates_ > 0) {
    out += ", client CA " + count(clientCaCertificates_, "certificate", "certificates");
  }
  if (ticketKeys_) {
    out += ", " + count(ticketKeys_->keys().size(), "ticket key", "ticket keys");
  }
  return out;
}

// tls.client_ca: every certificate goes into the trust store that decides the "verified" fact,
// and its subject into the CertificateRequest, so that clients holding several certificates
// pick one we can verify.
void Context::loadClientCa(const MaterialFile& file) {
  SSL_CTX* c = ctx_.get();
  const std::vector<X509Ptr> certs = readCertificates(file, "tls.client_ca");
  X509_STORE* store = SSL_CTX_get_cert_store(c);
  for (const X509Ptr& cert : certs) {
    if (store == nullptr || X509_STORE_add_cert(store, cert.get()) != 1) {
      throwTlsError("tls.client_ca " + file.name);
    }
    if (!hasClientCaName(c, X509_get_subject_name(cert.get())) &&
        SSL_CTX_add_client_CA(c, cert.get()) != 1) {  // adds a copy of the subject
      throwTlsError("tls.client_ca " + file.name);
    }
  }
  clientCaCertificates_ = certs.size();
  static char marker = 1;
  if (SSL_CTX_set_ex_data(c, clientCaMarkerIndex(), &marker) != 1) {
    throwTlsError("SSL_CTX_set_ex_data");
  }
}

// tls.ticket_keys: replicas (and a restarted process) share the keys, so they resume each
// other's sessions. Stateless tickets are on whatever tls.session_tickets says.
void Context::loadTicketKeys(const std::vector<MaterialFile>& files) {
  auto keys = std::make_unique<const TicketKeys>(TicketKeys::parse(files));
  if (keys->empty()) {
    throw TlsError("tls.ticket_keys: no key");
  }
  SSL_CTX_clear_options(ctx_.get(), SSL_OP_NO_TICKET);
  ticketKeys_ = std::move(keys);  // before installing: the callback must find it alive
  if (!installTicketKeys(ctx_.get(), ticketKeys_.get())) {
    throwTlsError("tls.ticket_keys");
  }
}

// tls.strict_sni: a client that names a host we have no certificate for reached the wrong
// server (or a scanner); unrecognized_name tells it so. No SNI at all is normal for SMTP.
int Context::checkServerName(SSL* ssl, int* alert, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr || arg == nullptr) {
    return SSL_TLSEXT_ERR_OK;
  }
  const auto* context = static_cast<const Context*>(arg);
  for (const X509Ptr& leaf : context->leaves_) {
    if (X509_check_host(leaf.get(), name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1) {
      return SSL_TLSEXT_ERR_OK;
    }
  }
  // The reason the handshake log line shows, before OpenSSL's own "callback failed". The name
  // is the client's: sanitized before it can reach a log.
  const std::string shown = text::sanitizeToken(name);
  ERR_raise_data(ERR_LIB_SSL, SSL_R_TLSV1_UNRECOGNIZED_NAME,
                 "tls.strict_sni: server name %s matches none of our certificates", shown.c_str());
  *alert = SSL_AD_UNRECOGNIZED_NAME;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace certrelay::tls
