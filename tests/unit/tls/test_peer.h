#pragma once
// A plain OpenSSL client over memory BIOs, and a Link that shuttles bytes between it and an
// Engine in a bounded loop: the whole TLS conversation runs in memory, no socket, no loop.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/tls/test_pki.h"
#include "tls/engine.h"
#include "tls/ossl_ptr.h"

namespace certrelay::tls::test {

struct ClientOptions {
  int maxVersion = 0;                // 0: the library's maximum (TLS 1.3)
  const Credential* cert = nullptr;  // client certificate to present, if any
  std::vector<std::string> alpn{};   // protocols to offer; empty: no ALPN extension
  SSL_SESSION* session = nullptr;    // session to resume (not owned)
  bool noTicket = false;             // TLS 1.2: ask for session-id resumption only
  const char* groups = nullptr;      // e.g. "P-256"; nullptr: OpenSSL's default list
  const char* sni = nullptr;         // server name to send, if any
  const char* sigalgs = nullptr;     // e.g. "rsa_pss_rsae_sha512"; both the schemes the client
                                     // accepts from the server and those it signs with
};

inline std::string errorQueueText() {
  std::string out;
  char buf[256];
  while (unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, buf, sizeof(buf));
    out += out.empty() ? "" : "; ";
    out += buf;
  }
  return out;
}

class TestClient {
 public:
  explicit TestClient(const ClientOptions& options) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    check(ctx_ != nullptr, "client SSL_CTX_new");
    if (options.maxVersion != 0) {
      check(SSL_CTX_set_max_proto_version(ctx_.get(), options.maxVersion) == 1, "max version");
    }
    // The client checks the server's chain against the test CA: proves the server sends it.
    check(SSL_CTX_load_verify_locations(ctx_.get(), pki().ca.certFile.c_str(), nullptr) == 1,
          "client CA");
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    if (options.cert != nullptr) {
      check(SSL_CTX_use_certificate(ctx_.get(), options.cert->cert.get()) == 1, "client cert");
      check(SSL_CTX_use_PrivateKey(ctx_.get(), options.cert->key.get()) == 1, "client key");
    }
    if (!options.alpn.empty()) {
      std::string wire;
      for (const auto& proto : options.alpn) {
        wire += static_cast<char>(proto.size());
        wire += proto;
      }
      check(SSL_CTX_set_alpn_protos(ctx_.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                                    static_cast<unsigned int>(wire.size())) == 0,
            "alpn");
    }
    if (options.noTicket) {
      SSL_CTX_set_options(ctx_.get(), SSL_OP_NO_TICKET);
    }
    if (options.groups != nullptr) {
      check(SSL_CTX_set1_groups_list(ctx_.get(), options.groups) == 1, "groups");
    }
    if (options.sigalgs != nullptr) {
      check(SSL_CTX_set1_sigalgs_list(ctx_.get(), options.sigalgs) == 1, "sigalgs");
    }
    ssl_.reset(SSL_new(ctx_.get()));
    check(ssl_ != nullptr, "client SSL_new");
    SSL_set_msg_callback(ssl_.get(), recordHandshakeMessage);
    SSL_set_msg_callback_arg(ssl_.get(), &handshakeReceived_);
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    check(rbio != nullptr && wbio != nullptr, "client BIO_new");
    BIO_set_mem_eof_return(rbio, -1);
    rbio_ = rbio;
    wbio_ = wbio;
    SSL_set_bio(ssl_.get(), rbio, wbio);  // ownership passes to ssl_
    SSL_set_connect_state(ssl_.get());
    if (options.sni != nullptr) {
      check(SSL_set_tlsext_host_name(ssl_.get(), options.sni) == 1, "sni");
    }
    if (options.session != nullptr) {
      check(SSL_set_session(ssl_.get(), options.session) == 1, "set session");
    }
  }

  SSL* ssl() { return ssl_.get(); }
  bool handshakeDone() const { return handshakeDone_; }
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  bool gotCloseNotify() const { return gotCloseNotify_; }
  std::string& received() { return received_; }
  void send(std::string_view data) { toSend_.append(data); }
  // Whether the server sent a handshake message of `type` (e.g. SSL3_MT_CERTIFICATE_REQUEST),
  // TLS 1.3's encrypted ones included.
  bool receivedHandshakeMessage(int type) const {
    return std::find(handshakeReceived_.begin(), handshakeReceived_.end(), type) !=
           handshakeReceived_.end();
  }

  // Runs the client as far as its input allows: handshake, then writes and reads.
  void step() {
    if (failed_) {
      return;
    }
    if (!handshakeDone_) {
      const int rc = SSL_do_handshake(ssl_.get());
      if (rc == 1) {
        handshakeDone_ = true;
      } else if (!retryable(rc, "client SSL_do_handshake")) {
        return;
      }
    }
    if (!handshakeDone_) {
      return;
    }
    while (!toSend_.empty()) {
      std::size_t written = 0;
      const int rc = SSL_write_ex(ssl_.get(), toSend_.data(), toSend_.size(), &written);
      if (rc != 1) {
        if (!retryable(rc, "client SSL_write")) {
          return;
        }
        break;
      }
      toSend_.erase(0, written);
    }
    char buf[16384];
    for (;;) {
      std::size_t got = 0;
      const int rc = SSL_read_ex(ssl_.get(), buf, sizeof(buf), &got);
      if (rc == 1) {
        received_.append(buf, got);
        continue;
      }
      if (SSL_get_error(ssl_.get(), rc) == SSL_ERROR_ZERO_RETURN) {
        gotCloseNotify_ = true;
        return;
      }
      retryable(rc, "client SSL_read");
      return;
    }
  }

  std::string takeOutput() {
    std::string out(BIO_ctrl_pending(wbio_), '\0');
    std::size_t got = 0;
    if (!out.empty()) {
      check(BIO_read_ex(wbio_, out.data(), out.size(), &got) == 1, "client BIO_read");
    }
    out.resize(got);
    return out;
  }

  void feed(std::string_view data) {
    if (!data.empty()) {
      check(BIO_write(rbio_, data.data(), static_cast<int>(data.size())) ==
                static_cast<int>(data.size()),
            "client BIO_write");
    }
  }

 private:
  static void recordHandshakeMessage(int writeP, int /*version*/, int contentType, const void* buf,
                                     std::size_t len, SSL* /*ssl*/, void* arg) {
    if (writeP == 0 && contentType == SSL3_RT_HANDSHAKE && len > 0) {
      static_cast<std::vector<int>*>(arg)->push_back(*static_cast<const unsigned char*>(buf));
    }
  }

  // True for WANT_READ/WANT_WRITE; otherwise records the failure.
  bool retryable(int rc, const char* op) {
    const int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      return true;
    }
    failed_ = true;
    error_ = std::string(op) + ": " + errorQueueText();
    return false;
  }

  SslCtxPtr ctx_;
  SslPtr ssl_;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  bool handshakeDone_ = false;
  bool failed_ = false;
  bool gotCloseNotify_ = false;
  std::string error_;
  std::string toSend_;
  std::string received_;
  std::vector<int> handshakeReceived_;  // types of the handshake messages the server sent
};

// An Engine and a TestClient wired together.
struct Link {
  Link(ContextPtr context, const ClientOptions& options,
       config::ClientCertMode clientCert = config::ClientCertMode::Request)
      : engine(std::move(context), clientCert), client(options) {}

  // Shuttles bytes until a round moves nothing (or `maxRounds` is hit). Returns the number of
  // rounds that moved bytes; plaintext the engine decrypts accumulates in serverReceived.
  int run(int maxRounds = 100) {
    int rounds = 0;
    for (; rounds < maxRounds; ++rounds) {
      client.step();
      const std::string toServer = client.takeOutput();
      engine.feedCiphertext(toServer.data(), toServer.size());
      engine.pump();
      engine.takePlaintext(serverReceived);
      std::string toClient;
      engine.takeCiphertext(toClient);
      client.feed(toClient);
      if (toServer.empty() && toClient.empty()) {
        break;
      }
    }
    return rounds;
  }

  // True when both sides finished the handshake.
  bool established() const {
    return engine.state() == Engine::State::Established && client.handshakeDone();
  }

  Engine engine;
  TestClient client;
  std::string serverReceived;
};

// A full handshake on a `clientCert` listener, closed cleanly by the client: the client's
// session, or null when the handshake did not complete.
inline OsslPtr<SSL_SESSION, SSL_SESSION_free> clientSession(
    ContextPtr context, const ClientOptions& options,
    config::ClientCertMode clientCert = config::ClientCertMode::Request) {
  Link link(std::move(context), options, clientCert);
  link.run();
  if (!link.established()) {
    return nullptr;
  }
  OsslPtr<SSL_SESSION, SSL_SESSION_free> session(SSL_get1_session(link.client.ssl()));
  SSL_shutdown(link.client.ssl());
  link.run();
  return session;
}

}  // namespace certrelay::tls::test
