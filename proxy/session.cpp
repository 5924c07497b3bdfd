// Session: the client transport (socket, TLS engine, timers, writes, teardown).
// The dialogue is in session_commands.cpp, the backend side in session_backend.cpp.

#include "proxy/session.h"

#include "common/idle_buffer.h"
#include "proxy/log.h"
#include "proxy/net_util.h"
#include "proxy/smtp/replies.h"
#include "proxy/worker.h"
#include "tls/handshake_log.h"

namespace certrelay::proxy {

void Session::accept(Worker& worker, const config::Listener& listener, uv_stream_t* server) {
  auto* session = new Session(worker, listener);
  uv_tcp_init(worker.loop(), &session->client_);
  uv_timer_init(worker.loop(), &session->timer_);
  session->client_.data = session;
  session->timer_.data = session;
  session->openHandles_ = 2;
  worker.add(session);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&session->client_)) != 0) {
    session->teardown("accept failed");
    return;
  }
  session->start();
}

Session::Session(Worker& worker, const config::Listener& listener)
    : worker_(worker),
      config_(worker.config()),
      listener_(listener),
      id_(worker.nextSessionId()),
      tlsContext_(worker.shared().tls),
      lines_(worker.config().limits.maxLineLength) {
  worker_.shared().connections.fetch_add(1, std::memory_order_relaxed);
}

Session::~Session() {
  worker_.shared().connections.fetch_sub(1, std::memory_order_relaxed);
  worker_.remove(this);
}

void Session::start() {
  sockaddr_storage storage{};
  int len = sizeof storage;
  if (uv_tcp_getpeername(&client_, reinterpret_cast<sockaddr*>(&storage), &len) == 0) {
    peer_ = fromSockaddr(storage);
  }
  len = sizeof storage;
  if (uv_tcp_getsockname(&client_, reinterpret_cast<sockaddr*>(&storage), &len) == 0) {
    local_ = fromSockaddr(storage);
  }
  // Replies go out as soon as they are known: no Nagle delay behind a TLS ticket or a 354.
  uv_tcp_nodelay(&client_, 1);
  log::line(log::Level::Info, id_,
            "connect from " + clientName() + " to " + listener_.name + " port " +
                std::to_string(local_.port));

  if (worker_.shared().connections.load(std::memory_order_relaxed) >
      config_.limits.maxConnections) {
    log::line(log::Level::Warning, id_, "too many connections, refusing " + clientName());
    reply(replies::tooManyConnections(config_.hostname), true);
    return;
  }
  if (worker_.draining()) {
    reply(replies::shuttingDown(config_.hostname), true);
    return;
  }
  reply(replies::greeting(config_.hostname));
  armClientTimer(config_.timeouts.command);
  updateReading();
}

void Session::onClientRead(ssize_t nread, const uv_buf_t* buf) {
  if (tornDown_) {
    return;
  }
  if (nread < 0) {
    teardown(nread == UV_EOF ? "client closed the connection" : uv_strerror(nread));
    return;
  }
  if (nread == 0) {
    return;
  }
  const std::string_view bytes(buf->base, static_cast<std::size_t>(nread));
  if (phase_ == Phase::Data || phase_ == Phase::DataDiscard || chunkRemaining_ > 0) {
    armClientTimer(config_.timeouts.data);  // DATA timeout is an inactivity timeout
  }
  ++clientCork_;
  if (tls_) {
    tls_->feedCiphertext(bytes.data(), bytes.size());
    pumpTls();
  } else {
    onPlaintext(bytes);
  }
  uncorkClient();  // the session lives at least until a later loop turn, even if torn down
}

void Session::uncorkClient() {
  if (--clientCork_ > 0) {
    return;
  }
  startClientWrite();
}

void Session::onPlaintext(std::string_view bytes) {
  if (phase_ == Phase::Closing) {
    return;  // nothing more is read once the session decided to close
  }
  if ((phase_ == Phase::Data || phase_ == Phase::DataDiscard) && lines_.buffered() == 0) {
    consumeData(bytes);
  } else if (chunkRemaining_ > 0 && phase_ == Phase::Command && lines_.buffered() == 0) {
    // Fast path for BDAT: the chunk goes straight through, only what follows it is buffered.
    const auto take =
        static_cast<std::size_t>(std::min<std::uint64_t>(chunkRemaining_, bytes.size()));
    consumeChunk(bytes.substr(0, take));
    lines_.feed(bytes.substr(take));
  } else {
    lines_.feed(bytes);
  }
  // Everything this read produces for the backend leaves in one write (see cork()). The
  // connection stays valid until a later loop turn even if the session drops it meanwhile.
  BackendConnection* corked = backend_;
  if (corked != nullptr) {
    corked->cork();
  }
  processInput();
  if (corked != nullptr) {
    corked->uncork();
  }
  updateReading();
}

void Session::pumpTls() {
  const tls::Engine::State state = tls_->pump();
  tls_->takeCiphertext(out_);
  startClientWrite();
  if (tls_->handshakeJustCompleted()) {
    onHandshakeDone();
  }
  if (state == tls::Engine::State::Failed) {
    log::line(log::Level::Warning, id_,
              "SSL_accept error from " + clientName() + ": " + tls_->error());
    phase_ = Phase::Closing;
    closeAfterFlush();  // the alert, if any, is already in out_
    return;
  }
  scratch_.clear();
  tls_->takePlaintext(scratch_);
  if (!scratch_.empty()) {
    const std::string plaintext = std::move(scratch_);
    scratch_.clear();
    onPlaintext(plaintext);
  }
  if (state == tls::Engine::State::Closed && !tornDown_) {
    teardown("client sent close_notify");
  }
}

void Session::onHandshakeDone() {
  const tls::PeerFacts& facts = tls_->facts();
  certificate_ = {facts.certFingerprint, facts.pkeyFingerprint};
  log::line(log::Level::Info, id_, tls::tlsEstablishedLogLine(clientName(), facts));
  if (facts.hasCertificate) {
    const auto listed = worker_.shared().policy.load()->trustedIdentity(certificate_);
    log::line(log::Level::Info, id_, tls::peerCertificateLogLine(clientName(), facts, listed));
  }
  // RFC 3207 section 4.2: everything learned before TLS is forgotten.
  helo_.clear();
  esmtp_ = false;
  resetTransaction();
  phase_ = Phase::Command;
  armClientTimer(config_.timeouts.command);
}

void Session::sendToClient(std::string_view wire) {
  if (tls_) {
    tls_->queuePlaintext(wire);
    tls_->pump();
    tls_->takeCiphertext(out_);
  } else {
    out_.append(wire.data(), wire.size());
  }
  startClientWrite();
}

void Session::startClientWrite() {
  if (!inflight_.empty() || out_.empty() || tornDown_ || clientCork_ > 0) {
    return;
  }
  if (!closeAfterFlush_ && !tryWriteNow(reinterpret_cast<uv_stream_t*>(&client_), out_)) {
    return;  // all of it is in the socket already
  }
  inflight_.swap(out_);
  out_.clear();
  uv_buf_t buf = uv_buf_init(inflight_.data(), static_cast<unsigned>(inflight_.size()));
  writeReq_.data = this;
  const int rc = uv_write(&writeReq_, reinterpret_cast<uv_stream_t*>(&client_), &buf, 1,
                          [](uv_write_t* req, int status) {
                            static_cast<Session*>(req->data)->onClientWriteDone(status);
                          });
  if (rc != 0) {
    inflight_.clear();
    teardown("write failed");
  }
}

void Session::onClientWriteDone(int status) {
  releaseIdleBuffer(inflight_);
  if (tornDown_) {
    return;
  }
  if (status != 0) {
    teardown("write failed");
    return;
  }
  startClientWrite();
  if (inflight_.empty() && closeAfterFlush_) {
    teardown("closed by the proxy");
    return;
  }
  updateReading();
}

void Session::updateReading() {
  if (tornDown_) {
    return;
  }
  // While only a DATA reply is awaited, reading goes on into the line buffer (bounded below):
  // nothing is parsed before the reply, but the socket stays registered, instead of one
  // epoll_ctl pair per message for stopping and restarting it.
  const bool readAhead =
      awaitingDataReply_ && !deferredLine_ && lines_.buffered() < config_.limits.highWatermark;
  bool want = phase_ != Phase::Closing && (!inputBlocked() || readAhead);
  // Backpressure: a client that does not read its replies, or a backend that does not take the
  // message as fast as it comes, stops the reading of this client.
  if (out_.size() + inflight_.size() > config_.limits.highWatermark) {
    want = false;
  }
  if ((phase_ == Phase::Data || chunkRemaining_ > 0) && backend_ != nullptr &&
      backend_->queuedBytes() > config_.limits.highWatermark) {
    want = false;
  }
  if (want == reading_) {
    return;
  }
  reading_ = want;
  auto* stream = reinterpret_cast<uv_stream_t*>(&client_);
  if (want) {
    uv_read_start(
        stream, [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = readBuffer(); },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
          static_cast<Session*>(s->data)->onClientRead(nread, buf);
        });
  } else {
    uv_read_stop(stream);
  }
}

void Session::armClientTimer(std::chrono::milliseconds timeout) {
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<Session*>(t->data)->onClientTimer(); },
      static_cast<std::uint64_t>(timeout.count()), 0);
}

void Session::onClientTimer() {
  if (tornDown_) {
    return;
  }
  if (phase_ == Phase::Closing) {
    teardown("timeout while closing");
    return;
  }
  if (phase_ == Phase::TlsHandshake) {
    log::line(log::Level::Warning, id_, "TLS handshake timeout from " + clientName());
    teardown("TLS handshake timeout");
    return;
  }
  if (replies_.unfilled() > 0) {
    // The client waits for us, and the backend's own deadline covers that wait.
    armClientTimer(config_.timeouts.command);
    return;
  }
  log::line(log::Level::Info, id_,
            "timeout after " + std::string(phase_ == Phase::Command ? "command" : "DATA") +
                " from " + clientName());
  dropBackend();  // an unfinished DATA is never completed towards the backend
  reply(replies::timeout(config_.hostname), true);
}

void Session::closeAfterFlush() {
  closeAfterFlush_ = true;
  phase_ = Phase::Closing;
  if (tls_ && tls_->state() == tls::Engine::State::Established) {
    // End TLS properly (close_notify) after the last reply, as Postfix does.
    tls_->shutdown();
    tls_->takeCiphertext(out_);
    startClientWrite();
  }
  uv_timer_stop(&timer_);
  // A client that never reads its last reply must not hold the session forever.
  armClientTimer(std::chrono::milliseconds(10'000));
  updateReading();
  if (inflight_.empty() && out_.empty()) {
    teardown("closed by the proxy");
  }
}

void Session::drain() {
  draining_ = true;
  if (phase_ == Phase::Command && replies_.empty() && !mailOpen_) {
    reply(replies::shuttingDown(config_.hostname), true);
  }
}

void Session::forceClose() {
  teardown("shutdown deadline");
}

void Session::teardown(const char* reason) {
  if (tornDown_) {
    return;
  }
  tornDown_ = true;
  phase_ = Phase::Closing;
  dropBackend();
  log::line(log::Level::Info, id_,
            "disconnect from " + clientName() + " (" + reason +
                ") messages=" + std::to_string(messages_));
  auto onClose = [](uv_handle_t* handle) { static_cast<Session*>(handle->data)->onHandleClosed(); };
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), onClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&client_), onClose);
}

void Session::onHandleClosed() {
  if (--openHandles_ == 0) {
    delete this;
  }
}

}  // namespace certrelay::proxy
