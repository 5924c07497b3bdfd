// The per-connection TLS state machine over memory BIOs. See engine.h for the contract.
//
// Invariants:
// - Every SSL_* call is followed by drainWbio(), so alerts, tickets and key-update replies
//   produced by reads are never left behind in wbio_.
// - SSL_get_error() is called right after the SSL_* call it explains, before anything else can
//   touch the error queue or the BIO retry flags.
// - Each public entry point that calls OpenSSL clears the thread's error queue on entry and on
//   exit (ErrorQueueGuard), so errors of one connection never show up in another one's
//   SSL_get_error() on the same worker thread.
// - No exceptions: failures become State::Failed with error_ set.

#include "tls/engine.h"

#include <openssl/buffer.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "common/idle_buffer.h"
#include "tls/client_context.h"
#include "tls/internal.h"

namespace certrelay::tls {

namespace {

// One TLS record's worth of plaintext: SSL_read never returns more than this per call.
constexpr std::size_t kReadChunk = std::size_t{16} * 1024;

// Capacity of a memory BIO's buffer (BIO_s_mem never gives memory back on its own).
std::size_t memBioCapacity(BIO* bio) {
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  return mem != nullptr ? mem->max : 0;
}

// The read BIO's method: a source over Engine::unread_ and Engine::lent_ (BIO_get_data). Made
// once per process, never freed (OpenSSL holds no reference beyond the BIOs using it).
const BIO_METHOD* ciphertextSourceMethod(int (*read)(BIO*, char*, int),
                                         long (*control)(BIO*, int, long, void*)) {
  static BIO_METHOD* const method = [&] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "certrelay ciphertext source");
    if (m != nullptr) {
      BIO_meth_set_read(m, read);
      BIO_meth_set_ctrl(m, control);
      BIO_meth_set_create(m, [](BIO* bio) {
        BIO_set_init(bio, 1);
        return 1;
      });
    }
    return m;
  }();
  return method;
}

BIO* newMemBio() {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio != nullptr) {
    // An empty read BIO must mean "no data yet" (retry), not EOF.
    BIO_set_mem_eof_return(bio, -1);
  }
  return bio;
}

}  // namespace

Engine::Engine(ContextPtr context, config::ClientCertMode clientCert)
    : context_(std::move(context)), clientCert_(clientCert) {
  ErrorQueueGuard guard;
  ERR_clear_error();
  if (!context_ || context_->get() == nullptr) {
    state_ = State::Failed;
    error_ = "no TLS context";
    return;
  }
  ssl_.reset(SSL_new(context_->get()));
  if (!ssl_) {
    fail("SSL_new", SSL_ERROR_SSL);
    return;
  }
  attachBios();
  if (state_ == State::Failed) {
    return;
  }
  SSL_set_accept_state(ssl_.get());
  applyClientCertMode();
}

Engine::Engine(std::shared_ptr<const ClientContext> context, SslPtr ssl)
    : clientContext_(std::move(context)), clientCert_(config::ClientCertMode::Request) {
  ErrorQueueGuard guard;
  ERR_clear_error();
  ssl_ = std::move(ssl);
  if (!clientContext_ || !ssl_) {
    state_ = State::Failed;
    error_ = "no TLS context";
    return;
  }
  attachBios();
  if (state_ != State::Failed) {
    SSL_set_connect_state(ssl_.get());
  }
}

void Engine::attachBios() {
  const BIO_METHOD* source =
      ciphertextSourceMethod(&Engine::readCiphertext, &Engine::ciphertextControl);
  BioPtr rbio(source != nullptr ? BIO_new(source) : nullptr);
  BioPtr wbio(newMemBio());
  if (!rbio || !wbio) {
    fail("BIO_new", SSL_ERROR_SSL);
    return;
  }
  BIO_set_data(rbio.get(), this);  // the engine outlives its SSL, which owns the BIO
  rbio_ = rbio.release();
  wbio_ = wbio.release();
  SSL_set_bio(ssl_.get(), rbio_, wbio_);  // ownership of both BIOs passes to ssl_
}

void Engine::applyClientCertMode() {
  if (clientCert_ == config::ClientCertMode::Request) {
    return;  // the context's settings: ask, accept any chain
  }
  // Same verify callback as the context (accept any chain: the fingerprint decides); only the
  // mode changes.
  const int mode = clientCert_ == config::ClientCertMode::Require
                       ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                       : SSL_VERIFY_NONE;
  SSL_set_verify(ssl_.get(), mode, SSL_get_verify_callback(ssl_.get()));
  const std::string_view sidContext = sessionIdContext(clientCert_);
  if (SSL_set_session_id_context(ssl_.get(),
                                 reinterpret_cast<const unsigned char*>(sidContext.data()),
                                 static_cast<unsigned int>(sidContext.size())) != 1) {
    fail("SSL_set_session_id_context", SSL_ERROR_SSL);
  }
}

Engine::~Engine() = default;

void Engine::feedCiphertext(const char* data, std::size_t len) {
  // After Closed/Failed nothing more is read; buffering it would only cost memory.
  if (rbio_ == nullptr || state_ == State::Closed || state_ == State::Failed) {
    return;
  }
  if (unreadPos_ == unread_.size()) {
    unread_.clear();
    unreadPos_ = 0;
  }
  unread_.append(data, len);
}

Engine::State Engine::pump(std::string_view ciphertext) {
  if (rbio_ == nullptr || state_ == State::Closed || state_ == State::Failed) {
    return state_;
  }
  if (pumping_) {
    // Called from inside pump() (cannot happen through the owner's calls): keep the bytes.
    feedCiphertext(ciphertext.data(), ciphertext.size());
    return state_;
  }
  lent_ = ciphertext;
  const State state = pump();
  // The caller's buffer is gone after this call: what OpenSSL did not read is kept (nothing
  // once Closed or Failed, as feedCiphertext()).
  if (!lent_.empty()) {
    const std::string_view rest = std::exchange(lent_, std::string_view());
    feedCiphertext(rest.data(), rest.size());
  }
  return state;
}

int Engine::readCiphertext(BIO* bio, char* out, int len) {
  auto* self = static_cast<Engine*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (self == nullptr || len <= 0) {
    return 0;
  }
  const auto want = static_cast<std::size_t>(len);
  std::size_t got = 0;
  if (self->unreadPos_ < self->unread_.size()) {
    got = std::min(want, self->unread_.size() - self->unreadPos_);
    std::memcpy(out, self->unread_.data() + self->unreadPos_, got);
    self->unreadPos_ += got;
  } else if (!self->lent_.empty()) {
    got = std::min(want, self->lent_.size());
    std::memcpy(out, self->lent_.data(), got);
    self->lent_.remove_prefix(got);
  }
  if (got == 0) {
    // No data yet: "retry", never EOF (a memory BIO's BIO_set_mem_eof_return(-1)).
    BIO_set_retry_read(bio);
    return -1;
  }
  return static_cast<int>(got);
}

long Engine::ciphertextControl(BIO* bio, int cmd, long num, void* ptr) {
  (void)num;
  (void)ptr;
  const auto* self = static_cast<const Engine*>(BIO_get_data(bio));
  switch (cmd) {
    case BIO_CTRL_PENDING:
      return self != nullptr ? static_cast<long>(self->unreadCiphertext()) : 0;
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;  // EOF, ktls, dgram, push/pop...: not this BIO's
  }
}

void Engine::queuePlaintext(std::string_view data) {
  if (state_ == State::Closed || state_ == State::Failed) {
    return;
  }
  pendingPlaintextOut_.append(data);
}

void Engine::shutdown() {
  shutdownRequested_ = true;
  pump();  // a no-op when called from inside pump(); pump() checks the flag before returning
}

Engine::State Engine::pump() {
  if (pumping_ || !ssl_ || state_ == State::Closed || state_ == State::Failed) {
    return state_;
  }
  pumping_ = true;
  ErrorQueueGuard guard;
  ERR_clear_error();

  if (state_ == State::Handshaking) {
    if (shutdownRequested_) {
      // close_notify cannot be sent before the handshake is done (SSL_shutdown refuses while
      // in init); the owner just closes the socket.
      state_ = State::Closed;
    } else {
      handshake();
    }
  }
  // Not "else": the client's first application data often arrives in the same read as its
  // Finished message, and must be decrypted in this pump, not left waiting for more input.
  if (state_ == State::Established) {
    // Write before read: a reply queued by the owner goes out before a close_notify that is
    // already buffered behind it is processed.
    writePending();
  }
  if (state_ == State::Established) {
    readAvailable();
  }
  if (state_ == State::Established && shutdownRequested_ && pendingPlaintextOut_.empty()) {
    sendCloseNotify();
  }
  releaseLargeBuffers();

  pumping_ = false;
  return state_;
}

void Engine::handshake() {
  const int rc = SSL_do_handshake(ssl_.get());
  const int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), rc);
  drainWbio();
  if (rc == 1) {
    handshakeCompleted();
    return;
  }
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    return;
  }
  // The alert OpenSSL queued for the peer is already in ciphertextOut_ (drained above).
  if (clientContext_ && failedVerification()) {
    return;
  }
  const unsigned long last = ERR_peek_last_error();
  if (clientCert_ == config::ClientCertMode::Require && ERR_GET_LIB(last) == ERR_LIB_SSL &&
      ERR_GET_REASON(last) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    failNoClientCertificate(drainErrorQueue());
    return;
  }
  fail("SSL_do_handshake", err);
}

bool Engine::failedVerification() {
  const long result = SSL_get_verify_result(ssl_.get());
  if (result == X509_V_OK) {
    return false;  // failed for another reason (or before the certificate was checked)
  }
  // OpenSSL's queue only says "certificate verify failed"; the verify result says why.
  ERR_clear_error();
  verifyFailed_ = true;
  error_ = std::string("certificate verify failed: ") + X509_verify_cert_error_string(result);
  state_ = State::Failed;
  releaseIdleBuffer(pendingPlaintextOut_);
  return true;
}

void Engine::handshakeCompleted() {
  // SSL_VERIFY_FAIL_IF_NO_PEER_CERT is checked only when a Certificate message is processed; a
  // resumed session skips that message, so its (absent) certificate is checked here. The
  // session id context per mode keeps such sessions out; this is the last line.
  if (clientCert_ == config::ClientCertMode::Require &&
      SSL_get0_peer_certificate(ssl_.get()) == nullptr) {
    failNoClientCertificate(SSL_session_reused(ssl_.get()) == 1 ? "the resumed session has none"
                                                                : std::string());
    return;
  }
  state_ = State::Established;
  facts_ = collectPeerFacts(ssl_.get());
  justCompleted_ = true;
}

void Engine::writePending() {
  // With ENABLE_PARTIAL_WRITE, SSL_write_ex returns after each record, so an offset (not an
  // erase per record) keeps a large queue linear. The memory wbio never refuses bytes, so in
  // practice the whole queue is encrypted here.
  std::size_t offset = 0;
  while (offset < pendingPlaintextOut_.size()) {
    std::size_t written = 0;
    const int rc = SSL_write_ex(ssl_.get(), pendingPlaintextOut_.data() + offset,
                                pendingPlaintextOut_.size() - offset, &written);
    const int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), rc);
    drainWbio();
    if (rc == 1) {
      offset += written;
      continue;
    }
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      break;
    }
    fail("SSL_write", err);
    return;
  }
  if (offset == pendingPlaintextOut_.size()) {
    releaseIdleBuffer(pendingPlaintextOut_);
  } else {
    pendingPlaintextOut_.erase(0, offset);
  }
}

void Engine::readAvailable() {
  // Reads everything the buffered ciphertext yields. plaintextIn_ is not capped here: the owner
  // bounds it by not feeding more ciphertext while it holds too much plaintext (backpressure),
  // so one pump decrypts at most what was fed.
  if (plaintextHeld_) {
    return;  // see holdPlaintext()
  }
  for (;;) {
    if (unreadCiphertext() == 0 && SSL_has_pending(ssl_.get()) == 0) {
      // Nothing to decrypt (SSL_read would only say "want read"): no buffer is made for it, so
      // a pump of an idle connection (a reply sent) allocates nothing.
      return;
    }
    // Straight into plaintextIn_'s spare room: a record larger than the room is returned in
    // parts (OpenSSL keeps the rest), so the buffer only grows when it is full.
    const std::size_t room = plaintextSpace();
    std::size_t got = 0;
    const int rc = SSL_read_ex(ssl_.get(), plaintextIn_.get() + plaintextSize_, room, &got);
    const int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), rc);
    drainWbio();  // TLS 1.3 key updates and TLS 1.2 no_renegotiation alerts come from reads
    if (rc == 1) {
      plaintextSize_ += got;
      continue;
    }
    switch (err) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return;
      case SSL_ERROR_ZERO_RETURN: {
        // The peer sent close_notify: answer with ours. Besides being the orderly close, it
        // keeps the session resumable: OpenSSL evicts the session of an SSL freed without
        // having *sent* a shutdown. Queued plaintext not yet written is dropped.
        const int sd = SSL_shutdown(ssl_.get());
        (void)sd;  // 1 (both sides closed) or an error we cannot act on any more
        drainWbio();
        ERR_clear_error();
        releaseIdleBuffer(pendingPlaintextOut_);
        state_ = State::Closed;
        return;
      }
      default:
        fail("SSL_read", err);
        return;
    }
  }
}

void Engine::sendCloseNotify() {
  const int sd = SSL_shutdown(ssl_.get());
  (void)sd;  // 0: our close_notify is sent, the peer's not yet read; we do not wait for it
  drainWbio();
  ERR_clear_error();
  state_ = State::Closed;
}

void Engine::releaseLargeBuffers() {
  // unread_ only when all of it was read (its unread ciphertext must stay). Swapping in a fresh
  // BIO is the only way to shrink a memory BIO; wbio_ is always empty here (drained after every
  // SSL call).
  if (unreadPos_ == unread_.size()) {
    unreadPos_ = 0;
    releaseIdleBuffer(unread_);
  }
  if (BIO_ctrl_pending(wbio_) == 0 && memBioCapacity(wbio_) > kIdleBufferCapacity) {
    if (BIO* fresh = newMemBio(); fresh != nullptr) {
      SSL_set0_wbio(ssl_.get(), fresh);  // frees the old wbio_; ssl_ owns `fresh`
      wbio_ = fresh;
    }
  }
}

void Engine::drainWbio() {
  const std::size_t pending = BIO_ctrl_pending(wbio_);
  if (pending == 0) {
    return;
  }
  const std::size_t old = ciphertextOut_.size();
  ciphertextOut_.resize(old + pending);
  std::size_t got = 0;
  if (BIO_read_ex(wbio_, ciphertextOut_.data() + old, pending, &got) != 1) {
    got = 0;
  }
  ciphertextOut_.resize(old + got);
}

void Engine::fail(const char* op, int sslError) {
  std::string reason = drainErrorQueue();
  if (reason.empty()) {
    // SSL_ERROR_SYSCALL with an empty queue: with memory BIOs there is no syscall, so this is
    // an internal inconsistency rather than an I/O error; still report something stable.
    reason = sslError == SSL_ERROR_SYSCALL ? "unexpected EOF or internal error"
                                           : "SSL error " + std::to_string(sslError);
  }
  error_ = std::string(op) + ": " + reason;
  state_ = State::Failed;
  releaseIdleBuffer(pendingPlaintextOut_);
}

void Engine::failNoClientCertificate(const std::string& reason) {
  error_ = "no client certificate (client_cert = require)";
  if (!reason.empty()) {
    error_ += ": " + reason;
  }
  state_ = State::Failed;
  releaseIdleBuffer(pendingPlaintextOut_);
}

void Engine::takeCiphertext(std::string& out) {
  if (out.empty()) {
    out.swap(ciphertextOut_);  // no copy; the caller's (empty) buffer becomes ours
  } else {
    out.append(ciphertextOut_);
  }
  releaseIdleBuffer(ciphertextOut_);
}

void Engine::takePlaintext(std::string& out) {
  out.append(plaintextIn_.get(), plaintextSize_);
  plaintextSize_ = 0;
  dropPlaintextBuffer();
}

std::string_view Engine::holdPlaintext() {
  plaintextHeld_ = true;
  return {plaintextIn_.get(), plaintextSize_};
}

void Engine::releasePlaintext(bool keepBuffer) {
  plaintextHeld_ = false;
  plaintextSize_ = 0;
  if (!keepBuffer) {
    dropPlaintextBuffer();
  }
}

void Engine::dropPlaintextBuffer() {
  if (plaintextSize_ == 0 && plaintextCapacity_ > kIdleBufferCapacity) {
    plaintextIn_.reset();
    plaintextCapacity_ = 0;
  }
}

std::size_t Engine::plaintextSpace() {
  if (plaintextSize_ < plaintextCapacity_) {
    return plaintextCapacity_ - plaintextSize_;
  }
  // One record's worth at least, doubling beyond: a burst of records costs few moves.
  const std::size_t capacity = std::max(plaintextCapacity_ * 2, plaintextSize_ + kReadChunk);
  auto grown = std::make_unique_for_overwrite<char[]>(capacity);
  if (plaintextSize_ > 0) {
    std::memcpy(grown.get(), plaintextIn_.get(), plaintextSize_);
  }
  plaintextIn_ = std::move(grown);
  plaintextCapacity_ = capacity;
  return capacity - plaintextSize_;
}

std::size_t Engine::bufferCapacity() const {
  return pendingPlaintextOut_.capacity() + plaintextCapacity_ + ciphertextOut_.capacity() +
         unread_.capacity() + memBioCapacity(wbio_);
}

bool Engine::hasCiphertext() const {
  return !ciphertextOut_.empty();
}

bool Engine::handshakeJustCompleted() {
  const bool completed = justCompleted_;
  justCompleted_ = false;
  return completed;
}

}  // namespace certrelay::tls
