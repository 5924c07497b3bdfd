// openssl-reference-bench: stock OpenSSL's own TLS 1.3 server handshake, in memory, as the
// reference certrelay's engine is compared with (bench/micro/handshake_floor.sh).
//
// No certrelay code: a plain OpenSSL server as any program would write it. The SSL_CTX is created
// once, its certificate chain and key are loaded once from PEM files; every connection is SSL_new,
// a SSL_do_handshake loop over two memory BIOs, SSL_shutdown (close_notify: without it OpenSSL
// drops the session from its cache) and SSL_free. The certificates are those of tls_bench's test
// PKI (tests/unit/tls/test_pki.h), made the same way here: an EC P-256 CA, a P-256 server leaf
// sent with the CA as its chain, a P-256 client leaf (sent alone) signed by the CA. The client
// certificate is requested with SSL_VERIFY_PEER and accepted whatever its chain (a verify callback
// that returns 1, with no trust store): certrelay's client_cert = request without tls.client_ca.
//
// Only the server side is meant to be counted: it runs inside the referenceServer* functions
// below and nowhere else, so
//   valgrind --tool=callgrind --toggle-collect='referenceServer*' openssl-reference-bench ...
// counts exactly what certrelay's `--toggle-collect='certrelay::tls::Engine::*'` counts for its
// engine. The functions never call each other (callgrind toggles collection on every entry and
// exit of a matching function, so nesting would switch it off). The client is a plain OpenSSL
// client with one SSL_CTX, like tls_bench's TestClient.

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

// ---- The server side: everything inside these functions, and nothing else, is counted. ----

// SSL_new with two memory BIOs, in the accept state (certrelay's Engine constructor does the
// same).
extern "C" [[gnu::noinline]] SSL* referenceServerNew(SSL_CTX* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) {
    return nullptr;
  }
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  if (rbio == nullptr || wbio == nullptr) {
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(ssl);
    return nullptr;
  }
  BIO_set_mem_eof_return(rbio, -1);  // empty means "no data yet", not EOF
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_accept_state(ssl);
  return ssl;
}

// Moves everything the server wrote to `out`.
static void drainServerOutput(SSL* ssl, std::string& out) {
  BIO* wbio = SSL_get_wbio(ssl);
  const std::size_t pending = BIO_ctrl_pending(wbio);
  if (pending == 0) {
    return;
  }
  const std::size_t old = out.size();
  out.resize(old + pending);
  std::size_t got = 0;
  if (BIO_read_ex(wbio, out.data() + old, pending, &got) != 1) {
    got = 0;
  }
  out.resize(old + got);
}

// One handshake step: the client's bytes in, SSL_do_handshake, the server's bytes out.
// Returns 1 when the handshake is complete (tickets included), 0 when it needs more input,
// -1 on failure.
extern "C" [[gnu::noinline]] int referenceServerHandshake(SSL* ssl, const std::string& in,
                                                          std::string& out) {
  if (!in.empty() && BIO_write(SSL_get_rbio(ssl), in.data(), static_cast<int>(in.size())) !=
                         static_cast<int>(in.size())) {
    return -1;
  }
  const int rc = SSL_do_handshake(ssl);
  const int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, rc);
  drainServerOutput(ssl, out);
  if (rc == 1) {
    return 1;
  }
  return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

// The server's close_notify (certrelay's Engine::shutdown after "221").
extern "C" [[gnu::noinline]] void referenceServerShutdown(SSL* ssl, std::string& out) {
  (void)SSL_shutdown(ssl);  // 0: ours is sent, the client's is not awaited
  drainServerOutput(ssl, out);
  ERR_clear_error();
}

extern "C" [[gnu::noinline]] void referenceServerFree(SSL* ssl) {
  SSL_free(ssl);
}

// ---- Everything below is the harness: PKI, client, loop. Not counted. ----

namespace {

struct Free {
  void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
  void operator()(SSL* p) const noexcept { SSL_free(p); }
  void operator()(SSL_SESSION* p) const noexcept { SSL_SESSION_free(p); }
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
  void operator()(X509* p) const noexcept { X509_free(p); }
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, Free>;
using SslPtr = std::unique_ptr<SSL, Free>;
using SessionPtr = std::unique_ptr<SSL_SESSION, Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using CertPtr = std::unique_ptr<X509, Free>;
using BioPtr = std::unique_ptr<BIO, Free>;

std::string errorQueue() {
  std::string out;
  char buf[256];
  while (const unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, buf, sizeof(buf));
    out += out.empty() ? "" : "; ";
    out += buf;
  }
  return out;
}

void check(bool ok, const char* what) {
  if (!ok) {
    throw std::runtime_error(std::string(what) + ": " + errorQueue());
  }
}

// ---- The test PKI, made as tests/unit/tls/test_pki.h makes it. ----

struct Credential {
  KeyPtr key;
  CertPtr cert;
};

void addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "extension");
  check(X509_add_ext(cert, ext, -1) == 1, "add extension");
  X509_EXTENSION_free(ext);
}

// A P-256 certificate valid from an hour ago for 30 days; issuer == nullptr: self-signed.
Credential makeCredential(std::string_view cn, const Credential* issuer, bool isCa) {
  static long serial = 1;
  Credential out;
  out.key.reset(EVP_EC_gen("P-256"));
  check(out.key != nullptr, "EC keygen");
  out.cert.reset(X509_new());
  check(out.cert != nullptr, "X509_new");
  X509* c = out.cert.get();
  check(X509_set_version(c, X509_VERSION_3) == 1, "version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(c), serial++) == 1, "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(c), -3600) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 30) != nullptr, "notAfter");
  check(X509_set_pubkey(c, out.key.get()) == 1, "pubkey");
  X509_NAME* name = X509_get_subject_name(c);
  check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("certrelay tests"), -1,
                                   -1, 0) == 1,
        "O");
  check(X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                   reinterpret_cast<const unsigned char*>(cn.data()),
                                   static_cast<int>(cn.size()), -1, 0) == 1,
        "CN");
  X509* issuerCert = issuer != nullptr ? issuer->cert.get() : c;
  EVP_PKEY* issuerKey = issuer != nullptr ? issuer->key.get() : out.key.get();
  check(X509_set_issuer_name(c, X509_get_subject_name(issuerCert)) == 1, "issuer");
  addExtension(c, issuerCert, NID_basic_constraints, isCa ? "critical,CA:TRUE" : "CA:FALSE");
  if (isCa) {
    addExtension(c, issuerCert, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  addExtension(c, issuerCert, NID_subject_key_identifier, "hash");
  check(X509_sign(c, issuerKey, EVP_sha256()) > 0, "sign");
  return out;
}

// The server's files: leaf + CA (the chain a server sends) and the unencrypted key, in a
// temporary directory removed at exit.
struct PemFiles {
  std::filesystem::path dir;
  std::filesystem::path serverChain;
  std::filesystem::path serverKey;

  PemFiles(const Credential& server, const Credential& ca) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "openssl-reference-XXXXXX").string();
    check(mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
    dir = tmpl;
    serverChain = dir / "server.pem";
    serverKey = dir / "server.key";
    BioPtr chain(BIO_new_file(serverChain.c_str(), "w"));
    check(chain != nullptr, "open server.pem");
    check(PEM_write_bio_X509(chain.get(), server.cert.get()) == 1 &&
              PEM_write_bio_X509(chain.get(), ca.cert.get()) == 1,
          "write server.pem");
    BioPtr key(BIO_new_file(serverKey.c_str(), "w"));
    check(key != nullptr, "open server.key");
    check(PEM_write_bio_PrivateKey(key.get(), server.key.get(), nullptr, nullptr, 0, nullptr,
                                   nullptr) == 1,
          "write server.key");
  }
  ~PemFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  PemFiles(const PemFiles&) = delete;
  PemFiles& operator=(const PemFiles&) = delete;
};

// ---- Server and client configuration. ----

enum class Tickets { Stateful1, Stateless1, Default };

// Chains are not verified against anything: the client certificate is recorded, whatever it is.
int acceptAnyChain(int /*preverifyOk*/, X509_STORE_CTX* /*store*/) {
  return 1;
}

// What a plain OpenSSL server does: load the chain and key from PEM, ask for a client
// certificate, set a session id context (needed to resume sessions made with SSL_VERIFY_PEER).
// Everything else is OpenSSL's default: server session cache on, TLS 1.3, X25519, 2 stateless
// tickets.
CtxPtr makeServerContext(const PemFiles& files, Tickets tickets) {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  check(ctx != nullptr, "SSL_CTX_new");
  check(SSL_CTX_use_certificate_chain_file(ctx.get(), files.serverChain.c_str()) == 1,
        "server chain");
  check(SSL_CTX_use_PrivateKey_file(ctx.get(), files.serverKey.c_str(), SSL_FILETYPE_PEM) == 1,
        "server key");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, acceptAnyChain);
  static const unsigned char kSidContext[] = {'r', 'e', 'f'};
  check(SSL_CTX_set_session_id_context(ctx.get(), kSidContext, sizeof(kSidContext)) == 1,
        "session id context");
  switch (tickets) {
    case Tickets::Stateful1:
      // TLS 1.3 with SSL_OP_NO_TICKET: tickets that name an entry of the server's cache.
      SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
      check(SSL_CTX_set_num_tickets(ctx.get(), 1) == 1, "num tickets");
      break;
    case Tickets::Stateless1:
      check(SSL_CTX_set_num_tickets(ctx.get(), 1) == 1, "num tickets");
      break;
    case Tickets::Default:
      break;
  }
  return ctx;
}

// tls_bench's TestClient: verifies the server's chain against the CA, sends its leaf only
// (none with --no-client-cert).
CtxPtr makeClientContext(const Credential* client, const Credential& ca) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  check(ctx != nullptr, "client SSL_CTX_new");
  check(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca.cert.get()) == 1, "client CA");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (client != nullptr) {
    check(SSL_CTX_use_certificate(ctx.get(), client->cert.get()) == 1, "client cert");
    check(SSL_CTX_use_PrivateKey(ctx.get(), client->key.get()) == 1, "client key");
  }
  return ctx;
}

class Client {
 public:
  Client(SSL_CTX* ctx, SSL_SESSION* session) : ssl_(SSL_new(ctx)) {
    check(ssl_ != nullptr, "client SSL_new");
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    check(rbio != nullptr && wbio != nullptr, "client BIO_new");
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl_.get(), rbio, wbio);
    SSL_set_connect_state(ssl_.get());
    if (session != nullptr) {
      check(SSL_set_session(ssl_.get(), session) == 1, "set session");
    }
  }

  // Handshake as far as the input allows, then reads (the server's tickets arrive that way).
  void step() {
    if (!done_) {
      const int rc = SSL_do_handshake(ssl_.get());
      if (rc == 1) {
        done_ = true;
      } else {
        retryable(rc, "client SSL_do_handshake");
        return;
      }
    }
    char buf[4096];
    std::size_t got = 0;
    while (SSL_read_ex(ssl_.get(), buf, sizeof(buf), &got) == 1) {
    }
    ERR_clear_error();
  }

  std::string takeOutput() {
    BIO* wbio = SSL_get_wbio(ssl_.get());
    std::string out(BIO_ctrl_pending(wbio), '\0');
    std::size_t got = 0;
    if (!out.empty()) {
      check(BIO_read_ex(wbio, out.data(), out.size(), &got) == 1, "client BIO_read");
    }
    out.resize(got);
    return out;
  }

  void feed(const std::string& data) {
    if (!data.empty()) {
      check(BIO_write(SSL_get_rbio(ssl_.get()), data.data(), static_cast<int>(data.size())) ==
                static_cast<int>(data.size()),
            "client BIO_write");
    }
  }

  bool done() const { return done_; }
  SSL* ssl() { return ssl_.get(); }

 private:
  void retryable(int rc, const char* op) {
    const int err = SSL_get_error(ssl_.get(), rc);
    check(err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE, op);
  }

  SslPtr ssl_;
  bool done_ = false;
};

using Clock = std::chrono::steady_clock;

// One connection: handshake (and tickets), the server's close_notify, SSL_free. Returns the
// newest session the client holds afterwards (its last ticket).
SessionPtr connectOnce(SSL_CTX* serverCtx, SSL_CTX* clientCtx, SSL_SESSION* resume,
                       Clock::duration& serverTime) {
  Client client(clientCtx, resume);
  auto start = Clock::now();
  SSL* server = referenceServerNew(serverCtx);
  serverTime += Clock::now() - start;
  check(server != nullptr, "server SSL_new");
  int state = 0;
  std::string toClient;
  for (int round = 0; round < 100; ++round) {
    client.step();
    const std::string toServer = client.takeOutput();
    toClient.clear();
    if (state == 0) {
      start = Clock::now();
      state = referenceServerHandshake(server, toServer, toClient);
      serverTime += Clock::now() - start;
      check(state >= 0, "server handshake");
    }
    client.feed(toClient);
    if (toServer.empty() && toClient.empty()) {
      break;
    }
  }
  check(state == 1 && client.done(), "handshake did not complete");
  const bool resumed = SSL_session_reused(server) == 1;
  check(resumed == (resume != nullptr),
        resume != nullptr ? "session was not resumed" : "unexpected resumption");
  SessionPtr session(SSL_get1_session(client.ssl()));
  toClient.clear();
  start = Clock::now();
  referenceServerShutdown(server, toClient);
  // The client leaves quietly, its session kept resumable (as tls_bench's closeQuietly).
  SSL_set_shutdown(client.ssl(), SSL_SENT_SHUTDOWN);
  referenceServerFree(server);
  serverTime += Clock::now() - start;
  return session;
}

struct Options {
  Tickets tickets = Tickets::Stateful1;
  int handshakes = 41;
  bool resumed = false;
  bool freshContext = false;
  bool clientCert = true;
};

const char* ticketsName(Tickets tickets) {
  switch (tickets) {
    case Tickets::Stateless1:
      return "stateless1";
    case Tickets::Default:
      return "default";
    case Tickets::Stateful1:
      break;
  }
  return "stateful1";
}

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--tickets stateful1|stateless1|default] [--handshakes N]\n"
               "          [--resumed] [--fresh-context] [--no-client-cert]\n"
               "  --tickets        stateful1: SSL_OP_NO_TICKET + 1 TLS 1.3 stateful ticket\n"
               "                   (certrelay's default; the default here too); stateless1: 1\n"
               "                   stateless ticket; default: OpenSSL's 2 stateless tickets\n"
               "  --handshakes     server handshakes to run (default 41)\n"
               "  --resumed        one full handshake, then N resumed ones, each with the\n"
               "                   newest session the previous connection left the client\n"
               "  --fresh-context  a new server SSL_CTX per full handshake\n"
               "  --no-client-cert the client sends no certificate (the server still asks)\n"
               "Count the server side with\n"
               "  valgrind --tool=callgrind --toggle-collect='referenceServer*' %s ...\n",
               argv0, argv0);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--tickets" && i + 1 < argc) {
      const std::string_view value = argv[++i];
      if (value == "stateful1") {
        options.tickets = Tickets::Stateful1;
      } else if (value == "stateless1") {
        options.tickets = Tickets::Stateless1;
      } else if (value == "default") {
        options.tickets = Tickets::Default;
      } else {
        usage(argv[0]);
      }
    } else if (arg == "--handshakes" && i + 1 < argc) {
      char* end = nullptr;
      const long n = std::strtol(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || n < 1 || n > 1'000'000) {
        usage(argv[0]);
      }
      options.handshakes = static_cast<int>(n);
    } else if (arg == "--resumed") {
      options.resumed = true;
    } else if (arg == "--fresh-context") {
      options.freshContext = true;
    } else if (arg == "--no-client-cert") {
      options.clientCert = false;
    } else {
      usage(argv[0]);
    }
  }
  if (options.resumed && options.freshContext) {
    usage(argv[0]);  // a fresh context has an empty session cache and new ticket keys
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  try {
    const Credential ca = makeCredential("certrelay Test CA", nullptr, true);
    const Credential server = makeCredential("mx.certrelay.test", &ca, false);
    const Credential client = makeCredential("client1.lab.example", &ca, false);
    const PemFiles files(server, ca);
    CtxPtr serverCtx = makeServerContext(files, options.tickets);
    const CtxPtr clientCtx = makeClientContext(options.clientCert ? &client : nullptr, ca);

    Clock::duration serverTime{};
    SessionPtr session;
    if (options.resumed) {
      Clock::duration setup{};
      session = connectOnce(serverCtx.get(), clientCtx.get(), nullptr, setup);
    }
    for (int i = 0; i < options.handshakes; ++i) {
      if (options.freshContext && i > 0) {
        serverCtx = makeServerContext(files, options.tickets);
      }
      SessionPtr next = connectOnce(serverCtx.get(), clientCtx.get(),
                                    options.resumed ? session.get() : nullptr, serverTime);
      if (options.resumed) {
        session = std::move(next);
      }
    }
    const double us = std::chrono::duration<double, std::micro>(serverTime).count();
    std::printf("%s %s handshakes: %d (+%d full before them), server side %.1f us each%s\n",
                ticketsName(options.tickets), options.resumed ? "resumed" : "full",
                options.handshakes, options.resumed ? 1 : 0, us / options.handshakes,
                options.freshContext ? ", fresh SSL_CTX each" : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "openssl-reference-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
