// Builds the one SSL_CTX that every connection of a snapshot shares. See context.h for the
// security role; the comments here say why each OpenSSL knob is set the way it is.

#include "tls/context.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string_view>

#include "tls/compat.h"
#include "tls/internal.h"
#include "tls/peer_facts.h"

namespace certrelay::tls {

namespace {

// Session id context: OpenSSL refuses to resume a session that was established with
// SSL_VERIFY_PEER unless the server set one (ssl_get_prev_session: "session id context
// uninitialized"). It is fixed rather than random so that replicas sharing ticket keys can
// resume each other's sessions.
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

// A key file with a passphrase must fail to load, not block the process on a terminal prompt
// (OpenSSL's default password callback reads from the tty).
int refusePassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) {
  return 0;
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

[[noreturn]] void fail(const std::string& what) {
  const std::string reason = drainErrorQueue();
  throw TlsError(reason.empty() ? what : what + ": " + reason);
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
    fail("policy.digest " + std::string(config::digestKeyword(digest)) +
         ": OpenSSL cannot compute this digest");
  }
  return md;
}

// Protocol versions, options and modes: what every handshake and record on this context obeys.
void configureProtocol(SSL_CTX* c, const config::Tls& settings) {
  if (SSL_CTX_set_min_proto_version(c, minProtocolVersion(settings.minVersion)) != 1) {
    fail("tls.min_version " + settings.minVersion);
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

// tls.cert and tls.key, which must match.
void loadCertificateAndKey(SSL_CTX* c, const config::Tls& settings) {
  SSL_CTX_set_default_passwd_cb(c, refusePassphrase);

  const std::string certFile = settings.cert.string();
  const std::string keyFile = settings.key.string();
  if (SSL_CTX_use_certificate_chain_file(c, certFile.c_str()) != 1) {
    fail("tls.cert " + certFile);
  }
  if (SSL_CTX_use_PrivateKey_file(c, keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
    // Loading the key already compares it with the certificate; say so in our words too.
    const unsigned long last = ERR_peek_last_error();
    if (ERR_GET_LIB(last) == ERR_LIB_X509 && ERR_GET_REASON(last) == X509_R_KEY_VALUES_MISMATCH) {
      fail("tls.key " + keyFile + " does not match tls.cert " + certFile);
    }
    fail("tls.key " + keyFile);
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    fail("tls.key " + keyFile + " does not match tls.cert " + certFile);
  }
}

// Ask for a client certificate, never require one, accept any chain (see acceptAnyChain).
void configureClientCertificates(SSL_CTX* c, const config::Tls& settings) {
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, acceptAnyChain);

  if (settings.clientCa.empty()) {
    SSL_CTX_set_cert_verify_callback(c, skipChainVerification, nullptr);
    return;
  }
  const std::string caFile = settings.clientCa.string();
  if (SSL_CTX_load_verify_locations(c, caFile.c_str(), nullptr) != 1) {
    fail("tls.client_ca " + caFile);
  }
  // The CA names go into the CertificateRequest so that clients holding several
  // certificates pick one we can verify.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(caFile.c_str());
  if (names == nullptr) {
    fail("tls.client_ca " + caFile);
  }
  SSL_CTX_set_client_CA_list(c, names);  // takes ownership of `names`
  static char marker = 1;
  if (SSL_CTX_set_ex_data(c, clientCaMarkerIndex(), &marker) != 1) {
    fail("SSL_CTX_set_ex_data");
  }
}

// Resumption: a server-side cache (session ids, and TLS 1.3 stateful tickets when stateless
// tickets are off) plus stateless tickets unless disabled. The session (client certificate
// included) survives resumption, so facts() stay complete on a resumed connection.
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
    fail("SSL_CTX_set_session_id_context");
  }
}

// How many TLS 1.3 tickets a full and a resumed handshake send.
void configureTickets(SSL_CTX* c, const config::Tls& settings) {
  // Each TLS 1.3 ticket costs ~150 us (performance.md); OpenSSL's default is 2.
  const int tickets = settings.ticketsPerHandshake < 0 ? 0 : settings.ticketsPerHandshake;
  if (SSL_CTX_set_num_tickets(c, static_cast<std::size_t>(tickets)) != 1) {
    fail("SSL_CTX_set_num_tickets");
  }
  if (settings.ticketsOnResumption != tickets) {
    const auto last = static_cast<int>(std::size(kTicketCounts)) - 1;
    const auto* onResumption = &kTicketCounts[std::clamp(settings.ticketsOnResumption, 0, last)];
    if (SSL_CTX_set_ex_data(c, ticketsOnResumptionIndex(),
                            const_cast<std::size_t*>(onResumption)) != 1) {
      fail("SSL_CTX_set_ex_data");
    }
    SSL_CTX_set_info_callback(c, adjustTicketsOnResumption);
  }
}

}  // namespace

int clientCaMarkerIndex() {
  // Allocated once per process; the slot holds a non-null pointer on contexts that loaded a
  // client CA, so collectPeerFacts() can tell "no trust store" from "chain did not verify".
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::shared_ptr<const Context> Context::create(const config::Tls& settings,
                                               config::FingerprintDigest digest) {
  ErrorQueueGuard guard;
  ERR_clear_error();  // a stale error would be blamed on our files
  if (settings.fastEcKeyDecoding) {
    installFastEcKeyDecoding();  // process-wide; harmless when it cannot be installed
  }
  const EVP_MD* md = usableFingerprintMd(digest);

  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    fail("SSL_CTX_new");
  }
  SSL_CTX* c = ctx.get();
  configureProtocol(c, settings);
  loadCertificateAndKey(c, settings);
  configureClientCertificates(c, settings);
  configureResumption(c, settings);
  configureTickets(c, settings);

  // collectPeerFacts() reads the digest from here, so every connection made from this SSL_CTX
  // is fingerprinted the way this Context was asked to.
  if (SSL_CTX_set_ex_data(c, fingerprintDigestIndex(), digestSlotValue(digest)) != 1) {
    fail("SSL_CTX_set_ex_data");
  }

  SSL_CTX_set_alpn_select_cb(c, selectAlpn, nullptr);
  // SNI: any name is accepted (no servername callback); there is one certificate per snapshot.

  return std::shared_ptr<const Context>(new Context(std::move(ctx), digest, md));
}

}  // namespace certrelay::tls
