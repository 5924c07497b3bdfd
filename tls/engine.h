#pragma once
// A TLS engine over in-memory BIOs (a read source over the engine's ciphertext, a memory write
// BIO): no socket, no event loop. Server side for clients (the listener's STARTTLS or implicit
// TLS), client side for the backend hop (backend.tls).
//
// The owner feeds ciphertext read from the socket (pump(ciphertext) reads it in place), queues
// plaintext to send, pumps, then writes out takeCiphertext() and consumes takePlaintext() (or
// holdPlaintext() / releasePlaintext(), in place). pump() is guarded against
// re-entrancy and always drains the write BIO after any SSL call (reads too: TLS 1.3 tickets
// and alerts are produced by reads). Renegotiation is refused by the context.
//
// Security role: applies the listener's client_cert mode to this one connection (the context is
// shared by every listener). With `require`, a connection ends without a client certificate,
// whether the handshake was full or resumed. On the client side, a backend certificate that does
// not verify (chain or name, set up by ClientContext::newSsl) fails the handshake, and
// verifyFailed() / error() say so with OpenSSL's verify reason.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "tls/context.h"
#include "tls/ossl_ptr.h"
#include "tls/peer_facts.h"

namespace certrelay::tls {

class ClientContext;

class Engine {
 public:
  enum class State {
    Handshaking,  // still negotiating
    Established,  // handshake done; facts() valid
    Closed,       // peer sent close_notify (or we shut down); no more plaintext
    Failed,       // fatal error; error() says why; send takeCiphertext() (an alert) then close
  };

  // Keeps `context` alive for the engine's lifetime. `clientCert` (the listener's client_cert):
  //  Request  a CertificateRequest; no certificate is fine (the context's default);
  //  Require  a handshake that ends without a client certificate fails, error() starting with
  //           "no client certificate (client_cert = require)";
  //  None     no CertificateRequest.
  explicit Engine(ContextPtr context,
                  config::ClientCertMode clientCert = config::ClientCertMode::Request);
  // Client side: `ssl` comes from ClientContext::newSsl (the name to verify, SNI, a session to
  // resume); `context` is kept alive for the engine's lifetime. The first pump() produces the
  // ClientHello.
  Engine(std::shared_ptr<const ClientContext> context, SslPtr ssl);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Ciphertext from the peer (copied: it may be fed long before the next pump()).
  void feedCiphertext(const char* data, std::size_t len);
  // Feeds `ciphertext` and pumps, reading it where it is: OpenSSL takes its records straight from
  // the caller's buffer (a socket read buffer), and only what it leaves unread (a partial record,
  // or anything after a close) is copied and kept for the next pump. Returns the state
  // afterwards, as pump().
  State pump(std::string_view ciphertext);
  // Plaintext to encrypt (buffered until the handshake is done).
  void queuePlaintext(std::string_view data);
  // Starts a clean shutdown (close_notify) after the queued plaintext; the state becomes Closed.
  // Call it before closing a healthy connection: OpenSSL drops the cached session of an SSL
  // freed without a shutdown, so that client could not resume. During the handshake it only
  // moves to Closed (close_notify cannot be sent yet).
  void shutdown();

  // Runs the state machine as far as the buffered input allows. Returns the state afterwards.
  State pump();

  // Appends produced ciphertext / decrypted plaintext to `out` and clears the internal buffer.
  void takeCiphertext(std::string& out);
  void takePlaintext(std::string& out);
  // The decrypted plaintext where OpenSSL wrote it (no copy). It stays valid until
  // releasePlaintext(); meanwhile pump() decrypts nothing more, so that a reply sent (and
  // pumped) while the plaintext is being processed cannot move it. The outer pump() has read
  // every complete record already, so nothing waits because of that.
  std::string_view holdPlaintext();
  // The held plaintext was consumed and is dropped. `keepBuffer`: its buffer keeps its capacity
  // for the next records (a message in progress); otherwise capacity beyond kIdleBufferCapacity
  // (common/idle_buffer.h) is given back, as for every buffer of an idle connection.
  void releasePlaintext(bool keepBuffer);
  bool hasCiphertext() const;

  State state() const { return state_; }
  // True exactly once: after the pump() that completed the handshake (for logging).
  bool handshakeJustCompleted();
  const PeerFacts& facts() const { return facts_; }
  const std::string& error() const { return error_; }
  // Client side: the handshake failed because the peer's certificate did not verify; error() is
  // then "certificate verify failed: <X509_verify_cert_error_string>".
  bool verifyFailed() const { return verifyFailed_; }
  // Bytes of buffer memory this engine holds outside OpenSSL's own structures: its strings and
  // memory BIOs, used or not (what an idle connection costs beyond the SSL object).
  std::size_t bufferCapacity() const;

 private:
  // Gives ssl_ its read BIO (ciphertextSource(), reading unread_ and lent_) and its memory
  // write BIO.
  void attachBios();
  // The read BIO's callbacks: serve unread_ first, then lent_; "retry" when both are empty.
  static int readCiphertext(BIO* bio, char* out, int len);
  static long ciphertextControl(BIO* bio, int cmd, long num, void* ptr);
  std::size_t unreadCiphertext() const { return unread_.size() - unreadPos_ + lent_.size(); }
  void applyClientCertMode();
  // Client side: the handshake failed; true (and Failed) when the peer's certificate is why.
  bool failedVerification();
  void handshake();
  // The handshake completed: records the facts, or fails a `require` connection without a
  // client certificate.
  void handshakeCompleted();
  void writePending();
  void readAvailable();
  // Room for more plaintext: grows plaintextIn_ (keeping its bytes) only when it has none left;
  // returns the spare capacity, at least one byte.
  std::size_t plaintextSpace();
  void dropPlaintextBuffer();
  void sendCloseNotify();
  // Gives back BIO and string memory that grew past kIdleBufferCapacity (common/idle_buffer.h).
  void releaseLargeBuffers();
  // Moves everything OpenSSL wrote into wbio_ to ciphertextOut_. Called after every SSL_* call.
  void drainWbio();
  // Records a fatal error: `op` plus the drained error queue (or the SSL_get_error code).
  void fail(const char* op, int sslError);
  // Records that a `require` connection has no client certificate; `reason` may be empty.
  void failNoClientCertificate(const std::string& reason);

  ContextPtr context_;  // the snapshot this connection started with (server side)
  std::shared_ptr<const ClientContext> clientContext_;  // client side: owns the session cache
  config::ClientCertMode clientCert_;
  SslPtr ssl_;
  BIO* rbio_ = nullptr;  // owned by ssl_ (SSL_set_bio transfers ownership); reads the two below
  BIO* wbio_ = nullptr;  // owned by ssl_
  // Ciphertext not yet read by OpenSSL. A memory BIO would cost a copy in, a zero-fill and a
  // cleanse on free per record; this source reads the caller's buffer in place (lent_, during
  // pump(ciphertext) only) and copies only what is left unread into unread_ (from unreadPos_).
  std::string unread_;
  std::size_t unreadPos_ = 0;
  std::string_view lent_;
  State state_ = State::Handshaking;
  bool pumping_ = false;
  bool justCompleted_ = false;
  bool verifyFailed_ = false;
  bool shutdownRequested_ = false;   // honoured by pump() once pending plaintext is written
  std::string pendingPlaintextOut_;  // queued, not yet encrypted (e.g. during the handshake)
  // Decrypted, not yet taken; unbounded (caller's cap). Raw storage, not a std::string: OpenSSL
  // decrypts straight into its spare capacity, which a string cannot offer without zero-filling.
  std::unique_ptr<char[]> plaintextIn_;
  std::size_t plaintextSize_ = 0;
  std::size_t plaintextCapacity_ = 0;
  bool plaintextHeld_ = false;  // between holdPlaintext() and releasePlaintext()
  std::string ciphertextOut_;   // drained from wbio_, not yet taken
  PeerFacts facts_;
  std::string error_;
};

}  // namespace certrelay::tls
