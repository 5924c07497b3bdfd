#include "proxy/backend_connection.h"

#include <cstdlib>
#include <utility>

#include "common/assert.h"
#include "common/idle_buffer.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/net_util.h"
#include "proxy/smtp/xforward.h"

namespace certrelay::proxy {

BackendConnection* BackendConnection::start(
    uv_loop_t* loop, const config::Config& config, BackendEvents* listener, Mode mode,
    std::vector<BackendAddress> targets, smtp::ClientIdentity identity, std::string logId,
    Metrics* metrics, const std::atomic<config::IdentityMode>* identityInForce,
    tls::ClientContextPtr tls) {
  auto* connection =
      new BackendConnection(loop, config, listener, mode, std::move(targets), std::move(identity),
                            std::move(logId), metrics, identityInForce, std::move(tls));
  connection->connect();
  return connection;
}

BackendConnection::BackendConnection(uv_loop_t* loop, const config::Config& config,
                                     BackendEvents* listener, Mode mode,
                                     std::vector<BackendAddress> targets,
                                     smtp::ClientIdentity identity, std::string logId,
                                     Metrics* metrics,
                                     const std::atomic<config::IdentityMode>* identityInForce,
                                     tls::ClientContextPtr tls)
    : loop_(loop),
      config_(config),
      listener_(listener),
      mode_(mode),
      identity_(std::move(identity)),
      logId_(std::move(logId)),
      metrics_(metrics),
      targets_(std::move(targets)),
      tlsContext_(std::move(tls)),
      identityInForce_(identityInForce),
      parser_(config.limits.maxLineLength) {}

void BackendConnection::connect() {
  // Both fail only on invalid arguments; the connection could not even report a failure then.
  const int tcpRc = uv_tcp_init(loop_, &tcp_);
  const int timerRc = uv_timer_init(loop_, &timer_);
  if (!CERTRELAY_ASSERT(tcpRc == 0 && timerRc == 0)) {
    std::abort();  // release builds too: no handle to close, no way to tell the session
  }
  tcp_.data = this;
  timer_.data = this;
  openHandles_ = 2;
  connectStarted_ = uv_hrtime();
  connectTarget();
}

std::string BackendConnection::address() const {
  return attempt_ < targets_.size() ? targets_[attempt_].address.toString() : std::string();
}

void BackendConnection::connectTarget() {
  if (targets_.empty()) {
    failSoon(BackendFailure::Unreachable, "no backend address to connect to (none resolved)");
    return;
  }
  sockaddr_storage addr{};
  int rc = toSockaddr(targets_[attempt_].address, addr) ? 0 : UV_EINVAL;
  if (rc == 0) {
    connectReq_.data = this;
    rc = uv_tcp_connect(&connectReq_, &tcp_, reinterpret_cast<const sockaddr*>(&addr),
                        [](uv_connect_t* req, int status) {
                          static_cast<BackendConnection*>(req->data)->onConnected(status);
                        });
  }
  if (rc != 0) {
    // Reported from the timer, never from inside start(): the caller has not stored us yet.
    failSoon(BackendFailure::Unreachable,
             std::string("connect to ") + address() + ": " + uv_strerror(rc));
    return;
  }
  armTimer(config_.timeouts.backendConnect);
}

void BackendConnection::onConnected(int status) {
  if (phase_ == Phase::Closing || phase_ == Phase::Reconnecting) {
    return;
  }
  if (status != 0) {
    fail(BackendFailure::Unreachable,
         std::string("connect to ") + address() + ": " + uv_strerror(status));
    return;
  }
  if (const int rc = uv_tcp_nodelay(&tcp_, 1); rc != 0) {
    log::line(log::Level::Warning, logId_, std::string("backend TCP_NODELAY: ") + uv_strerror(rc));
  }
  phase_ = Phase::Greeting;
  const int rc = uv_read_start(
      reinterpret_cast<uv_stream_t*>(&tcp_),
      [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = readBuffer(); },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        static_cast<BackendConnection*>(stream->data)->onRead(nread, buf);
      });
  if (rc != 0) {
    fail(BackendFailure::Closed, std::string("read: ") + uv_strerror(rc));  // from a callback
    return;
  }
  if (config_.backend.tls.mode == config::BackendTlsMode::Implicit) {
    beginTls();  // the greeting comes inside TLS; the connect timer covers the handshake too
  }
}

void BackendConnection::onRead(ssize_t nread, const uv_buf_t* buf) {
  if (phase_ == Phase::Closing || phase_ == Phase::Reconnecting) {
    return;
  }
  if (nread < 0) {
    fail(BackendFailure::Closed, nread == UV_EOF ? "backend closed the connection"
                                                 : std::string("read: ") + uv_strerror(nread));
    return;
  }
  const std::string_view bytes(buf->base, static_cast<std::size_t>(nread));
  if (tls_ == nullptr) {
    parser_.feed(bytes);
  } else if (!readTls(bytes)) {
    return;
  }
  struct ReadBracket {
    BackendEvents* listener;
    explicit ReadBracket(BackendEvents* l) : listener(l) {
      if (listener != nullptr) {
        listener->onBackendReadBegin();
      }
    }
    ~ReadBracket() {
      if (listener != nullptr) {
        listener->onBackendReadEnd();
      }
    }
    ReadBracket(const ReadBracket&) = delete;
    ReadBracket& operator=(const ReadBracket&) = delete;
  } bracket(listener_);
  smtp::Reply reply;
  while (phase_ != Phase::Closing) {
    const auto result = parser_.next(reply);
    if (result == smtp::ReplyParser::Result::NeedMore) {
      break;
    }
    if (result == smtp::ReplyParser::Result::Malformed) {
      fail(BackendFailure::Malformed, "backend sent a reply that is not SMTP");
      return;
    }
    handleReply(reply);
  }
  if (tls_ != nullptr && tls_->peerClosed() && phase_ != Phase::Closing) {
    // Its replies before the close_notify are handled above (a 421 reaches the client); the
    // session ends here as at a TCP end, not with commands written into a closed session.
    fail(BackendFailure::Closed, "backend ended the TLS session (close_notify)");
  }
}

void BackendConnection::handleReply(const smtp::Reply& reply) {
  if (phase_ != Phase::Ready) {
    handleSetupReply(reply);
    return;
  }
  if (expected_.empty()) {
    // A reply nobody asked for (an unsolicited 421 of a backend going down, a stray line): the
    // backend's state is unknown from here on.
    fail(reply.code == 421 ? BackendFailure::Closed : BackendFailure::Malformed,
         "unsolicited reply: " + std::to_string(reply.code) + " " + reply.text());
    return;
  }
  const Expected expected = expected_.front();
  expected_.pop_front();
  if (expected.syncPoint) {
    waitingSync_ = false;
  }
  if (expected_.empty()) {
    uv_timer_stop(&timer_);
  } else {
    armTimer(config_.timeouts.backendReply);
  }
  if (expected.purpose == BackendPurpose::Internal) {
    // The proxy's own XFORWARD or Received-header chunk: nothing to tell the client. A refusal
    // is worth a log line (the backend misses the identity), not a failed transaction.
    if (!reply.positive()) {
      log::line(
          log::Level::Warning, logId_,
          "backend refused a proxy command: " + std::to_string(reply.code) + " " + reply.text());
    }
  } else if (listener_ != nullptr) {
    listener_->onBackendReply(expected.purpose, expected.tag, reply);
  }
  if (phase_ == Phase::Ready) {
    flushQueue();
    armIdleTimer();
  }
}

void BackendConnection::startIdentityHandoff() {
  const config::IdentityMode mode = identityInForce_ != nullptr
                                        ? identityInForce_->load(std::memory_order_relaxed)
                                        : config_.backend.identity;
  const smtp::HandoffChoice choice = smtp::chooseIdentityHandoff(mode, capabilities_);
  if (!choice.offered) {
    fail(BackendFailure::XclientNotOffered,
         "backend does not offer " + choice.missing + " to the proxy; " +
             smtp::grantHint(capabilities_, choice.handoff == smtp::IdentityHandoff::Xforward
                                                ? "XFORWARD"
                                                : "XCLIENT"));
    return;
  }
  handoff_ = choice.handoff;
  if (handoff_ == smtp::IdentityHandoff::Xclient) {
    sendXclient();
    return;
  }
  becomeReady();
}

void BackendConnection::handleSetupReply(const smtp::Reply& reply) {
  if (quitAtNextReply_) {
    quitAndClose();
    return;
  }
  switch (phase_) {
    case Phase::Greeting:
      if (reply.code != 220) {
        fail(BackendFailure::Refused, "greeting: " + reply.text());
        return;
      }
      greetsAsPostfix_ = smtp::Capabilities::greetsAsPostfix(reply);
      phase_ = Phase::ProxyEhlo;
      armTimer(config_.timeouts.backendReply);
      write("EHLO " + config_.backend.heloName + "\r\n");
      return;
    case Phase::ProxyEhlo:
      if (reply.code != 250) {
        fail(BackendFailure::Refused, "EHLO: " + reply.text());
        return;
      }
      capabilities_ = smtp::Capabilities::fromEhloReply(reply);
      capabilities_.postfix = greetsAsPostfix_;
      if (startTlsIfNeeded()) {
        return;
      }
      if (mode_ == Mode::Probe) {
        phase_ = Phase::Ready;
        uv_timer_stop(&timer_);
        reportReady();
        if (listener_ != nullptr) {
          listener_->onBackendReady(capabilities_);
        }
        return;
      }
      startIdentityHandoff();
      return;
    case Phase::Starttls:
      onStarttlsReply(reply);
      return;
    case Phase::Xclient:
      // Postfix answers a successful XCLIENT with a new 220 greeting; smtp-sink with 250.
      if (reply.code != 220 && reply.code != 250) {
        fail(BackendFailure::XclientRefused, "backend refused XCLIENT (" + reply.text() + "); " +
                                                 smtp::grantHint(capabilities_, "XCLIENT"));
        return;
      }
      if (!xclientCommands_.empty()) {
        sendXclient();
        return;
      }
      // The new EHLO is a separate write, after the 220: Postfix >= 3.9 refuses it pipelined.
      phase_ = Phase::ClientEhlo;
      write(std::string(identity_.esmtp ? "EHLO " : "HELO ") +
            (identity_.helo.empty() ? config_.backend.heloName : identity_.helo) + "\r\n");
      return;
    case Phase::ClientEhlo: {
      if (reply.code != 250) {
        fail(BackendFailure::Refused, "EHLO after XCLIENT: " + reply.text());
        return;
      }
      if (identity_.esmtp) {
        // What the backend offers this client may differ from what it offers the proxy.
        const smtp::Capabilities proxyView = capabilities_;
        capabilities_ = smtp::Capabilities::fromEhloReply(reply);
        capabilities_.xclient = proxyView.xclient;
        capabilities_.xclientAttributes = proxyView.xclientAttributes;
        capabilities_.postfix = proxyView.postfix;
      }
      becomeReady();
      return;
    }
    case Phase::Reconnecting:
    case Phase::Connecting:
    case Phase::TlsHandshake:
    case Phase::Ready:
    case Phase::Closing:
      break;
  }
}

void BackendConnection::reportReady() {
  if (metrics_ != nullptr) {
    metrics_->backendConnected(static_cast<double>(uv_hrtime() - connectStarted_) / 1e9);
  }
}

void BackendConnection::becomeReady() {
  phase_ = Phase::Ready;
  uv_timer_stop(&timer_);
  reportReady();
  const std::string used = address();
  if (tls_ != nullptr) {
    const std::string tls = tls_->description();
    log::line(log::Level::Info, logId_, "backend connection to " + used + " ready (" + tls + ")",
              {{"event", "backend_connected"}, {"backend", used}, {"tls", tls}});
  } else {
    log::line(log::Level::Info, logId_, "backend connection to " + used + " ready",
              {{"event", "backend_connected"}, {"backend", used}});
  }
  if (listener_ != nullptr) {
    listener_->onBackendReady(capabilities_);
  }
  if (phase_ == Phase::Ready) {
    flushQueue();
    armIdleTimer();
  }
}

void BackendConnection::sendXclient() {
  if (phase_ != Phase::Xclient) {
    const auto commands = smtp::buildXclientCommands(identity_, capabilities_.xclientAttributes);
    if (commands.empty()) {
      fail(BackendFailure::XclientNotOffered,
           "backend's XCLIENT offers none of the attributes the proxy sends");
      return;
    }
    xclientCommands_.assign(commands.begin(), commands.end());
    phase_ = Phase::Xclient;
  }
  std::string line = std::move(xclientCommands_.front());
  xclientCommands_.pop_front();
  armTimer(config_.timeouts.backendReply);
  write(line + "\r\n");
}

void BackendConnection::sendCommand(std::string_view line, BackendPurpose purpose,
                                    std::uint64_t tag) {
  // DATA waits for its 354: it ends its group (RFC 2920).
  const bool sync = purpose == BackendPurpose::Data;
  Queued queued{std::string(line), Expected{purpose, tag, sync}, {}, {}};
  queued.wire += "\r\n";
  queuedWire_ += queued.wire.size();
  queue_.push_back(std::move(queued));
  if (phase_ == Phase::Ready) {
    flushQueue();
  }
}

void BackendConnection::sendMail(std::string_view line, std::uint64_t tag, std::string_view ident,
                                 std::string_view proto) {
  Queued queued{std::string(line), Expected{BackendPurpose::Mail, tag, false}, std::string(ident),
                std::string(proto)};
  queued.wire += "\r\n";
  queuedWire_ += queued.wire.size();
  queue_.push_back(std::move(queued));
  if (phase_ == Phase::Ready) {
    flushQueue();
  }
}

void BackendConnection::uncork() {
  if (corked_ == 0 || --corked_ != 0) {
    return;
  }
  if (phase_ == Phase::Ready) {
    flushQueue();
  }
  // Content written while corked (a message's last bytes and its dot) leaves now, with the
  // commands pipelined behind it.
  if (inflight_.empty()) {
    startWrite();
  }
}

void BackendConnection::flushQueue() {
  if (corked_ > 0) {
    return;
  }
  std::string batch;
  while (!queue_.empty() && !waitingSync_ && phase_ == Phase::Ready) {
    Queued& next = queue_.front();
    if (next.expected.purpose == BackendPurpose::Mail &&
        handoff_ == smtp::IdentityHandoff::Xforward && !next.xforwardProto.empty()) {
      // XFORWARD lives for one transaction: it goes before each MAIL, in its own commands.
      smtp::ForwardInfo info;
      info.name = identity_.name;
      info.addr = identity_.addr;
      info.port = identity_.port;
      info.helo = identity_.helo;
      info.proto = next.xforwardProto;
      info.ident = next.xforwardIdent;
      const auto lines = smtp::buildXforwardCommands(info, capabilities_.xforwardAttributes);
      next.xforwardProto.clear();  // expanded: the MAIL itself is sent next time round
      for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        Queued xforward{*it + "\r\n", Expected{BackendPurpose::Internal, 0, false}, {}, {}};
        queuedWire_ += xforward.wire.size();
        queue_.push_front(std::move(xforward));
      }
      continue;
    }
    // Without PIPELINING every command waits for the previous reply.
    if (!capabilities_.pipelining) {
      next.expected.syncPoint = true;
    }
    batch += next.wire;
    queuedWire_ -= next.wire.size();
    expected_.push_back(next.expected);
    waitingSync_ = next.expected.syncPoint;
    queue_.pop_front();
  }
  if (!batch.empty()) {
    // One write per command group: the group reaches the backend in one segment.
    armTimer(config_.timeouts.backendReply);
    write(batch);
  }
}

bool BackendConnection::appendToQueuedCommand(std::string_view bytes) {
  if (queue_.empty()) {
    return false;
  }
  // The command these bytes follow has not been written yet: they travel with it.
  queue_.back().wire.append(bytes.data(), bytes.size());
  queuedWire_ += bytes.size();
  return true;
}

void BackendConnection::sendContent(std::string_view bytes) {
  if (phase_ == Phase::Closing || bytes.empty() || appendToQueuedCommand(bytes)) {
    return;
  }
  write(bytes);
}

void BackendConnection::holdContent(std::string_view bytes) {
  if (phase_ == Phase::Closing || bytes.empty() || appendToQueuedCommand(bytes)) {
    return;
  }
  if (tls_ != nullptr) {
    tls_->hold(bytes);  // encrypted with the next write
  } else {
    out_.append(bytes.data(), bytes.size());  // leaves with the next write
  }
}

std::string* BackendConnection::contentBuffer() {
  // Where sendContent() would put the bytes: appended to out_ by write(), nothing in between.
  if (phase_ != Phase::Ready || !queue_.empty() || tls_ != nullptr) {
    return nullptr;
  }
  return &out_;
}

void BackendConnection::contentAppended(std::size_t bytes) {
  if (bytes > 0) {
    flushOut();  // what write() does after its append
  }
}

void BackendConnection::endContent(std::string_view lastBytes, std::uint64_t tag) {
  if (phase_ != Phase::Ready) {
    return;
  }
  write(lastBytes);
  // With PIPELINING the next transaction may follow the dot at once (RFC 2920 lists DATA, not
  // the end of data, among the commands that end a group; Postfix's smtp client does the
  // same): its MAIL, RCPT and DATA leave in the dot's write instead of a round trip later. The
  // final reply is still the backend's, matched in order.
  const bool sync = !capabilities_.pipelining;
  expected_.push_back(Expected{BackendPurpose::EndOfData, tag, sync});
  waitingSync_ = sync;
  armTimer(config_.timeouts.backendReply);
}

void BackendConnection::write(std::string_view bytes) {
  if (tls_ != nullptr) {
    tls_->send(bytes, out_);
  } else {
    out_.append(bytes.data(), bytes.size());
  }
  flushOut();
}

void BackendConnection::flushOut() {
  // Corked: everything from the client's read leaves together at uncork().
  if (inflight_.empty() && corked_ == 0) {
    startWrite();
  }
  if (!writePaused_ && queuedBytes() > config_.limits.highWatermark) {
    writePaused_ = true;
  }
}

void BackendConnection::startWrite() {
  if (out_.empty() || phase_ == Phase::Connecting) {
    return;
  }
  if (!(phase_ == Phase::Closing && closeAfterWrite_) &&
      tryWriteNow(reinterpret_cast<uv_stream_t*>(&tcp_), out_)) {
    return;  // all of it is in the socket already
  }
  inflight_.swap(out_);
  out_.clear();
  uv_buf_t buf = uv_buf_init(inflight_.data(), static_cast<unsigned>(inflight_.size()));
  writeReq_.data = this;
  const int rc = uv_write(&writeReq_, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
                          [](uv_write_t* req, int status) {
                            static_cast<BackendConnection*>(req->data)->onWriteDone(status);
                          });
  if (rc != 0) {
    inflight_.clear();
    failSoon(BackendFailure::Closed, std::string("write: ") + uv_strerror(rc));
  }
}

void BackendConnection::onWriteDone(int status) {
  // One write in flight at a time (writeReq_ is reused): its bytes are inflight_ until now.
  if (!CERTRELAY_ASSERT(!inflight_.empty())) {
    closeHandles();
    return;
  }
  releaseIdleBuffer(inflight_);
  if (phase_ == Phase::Reconnecting) {
    return;  // a write of the failed attempt, cancelled with its socket
  }
  if (status != 0) {
    if (phase_ != Phase::Closing) {
      fail(BackendFailure::Closed, std::string("write: ") + uv_strerror(status));
    }
    return;
  }
  if (phase_ == Phase::Closing) {
    if (out_.empty() && closeAfterWrite_) {
      closeHandles();
    } else {
      startWrite();
    }
    return;
  }
  startWrite();
  if (writePaused_ && queuedBytes() <= config_.limits.highWatermark / 2) {
    writePaused_ = false;
    if (listener_ != nullptr) {
      listener_->onBackendWritable();
    }
  }
}

void BackendConnection::armTimer(std::chrono::milliseconds timeout) {
  // A pending failure keeps its immediate deadline: no later deadline may postpone its report.
  const auto ms = pendingFailure_ ? 0 : static_cast<std::uint64_t>(timeout.count());
  const int rc = uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<BackendConnection*>(t->data)->onTimer(); }, ms, 0);
  // Fails only on a closing handle; the timer is closed last, by closeHandles().
  if (!CERTRELAY_ASSERT(rc == 0)) {
    closeHandles();
  }
}

void BackendConnection::armIdleTimer() {
  if (mode_ != Mode::Session || phase_ != Phase::Ready || !expected_.empty() || !queue_.empty() ||
      listener_ == nullptr || pendingFailure_) {
    return;
  }
  const int rc = uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<BackendConnection*>(t->data);
        if (self->phase_ == Phase::Ready && self->listener_ != nullptr) {
          self->listener_->onBackendIdle();
        }
      },
      static_cast<std::uint64_t>(config_.timeouts.backendIdle.count()), 0);
  if (!CERTRELAY_ASSERT(rc == 0)) {
    closeHandles();
  }
}

void BackendConnection::onTimer() {
  if (phase_ == Phase::Reconnecting) {
    return;
  }
  if (phase_ == Phase::Closing) {
    closeHandles();  // QUIT could not be written in time
    return;
  }
  if (pendingFailure_) {
    auto [failure, detail] = std::move(*pendingFailure_);
    pendingFailure_.reset();
    fail(failure, detail);
    return;
  }
  if (phase_ == Phase::TlsHandshake) {
    tls_->count(metrics_);  // a failure: the handshake did not end in time
  }
  fail(BackendFailure::Timeout, phase_ == Phase::Connecting ? "timeout connecting to " + address()
                                : phase_ == Phase::TlsHandshake
                                    ? "timeout in the TLS handshake with " + address()
                                    : "timeout waiting for the reply of " + address());
}

void BackendConnection::fail(BackendFailure failure, const std::string& detail) {
  if (phase_ == Phase::Closing || tryNextTarget(failure, detail)) {
    return;
  }
  phase_ = Phase::Closing;
  BackendEvents* listener = std::exchange(listener_, nullptr);
  closeHandles();
  expected_.clear();
  queue_.clear();
  queuedWire_ = 0;
  if (listener != nullptr) {
    listener->onBackendFailure(failure, detail);
  }
}

bool BackendConnection::tryNextTarget(BackendFailure failure, const std::string& detail) {
  if (mode_ != Mode::Session || listener_ == nullptr || quitAtNextReply_ ||
      attempt_ + 1 >= targets_.size() || phase_ == Phase::Ready || phase_ == Phase::Reconnecting) {
    return false;
  }
  const std::string failed = address();
  ++attempt_;
  log::line(log::Level::Warning, logId_,
            "backend " + failed + " " + toString(failure) + ": " + detail + "; trying " + address(),
            {{"event", "backend_failover"},
             {"backend", failed},
             {"failure", toString(failure)},
             {"next", address()}});
  // Nothing of the client's was written on this connection yet (commands wait for Ready in
  // queue_, which is kept); the set-up starts over on a new socket.
  phase_ = Phase::Reconnecting;
  uv_timer_stop(&timer_);
  tls_.reset();
  parser_ = smtp::ReplyParser(config_.limits.maxLineLength);
  capabilities_ = smtp::Capabilities{};
  greetsAsPostfix_ = false;
  xclientCommands_.clear();
  out_.clear();
  // A write in flight is cancelled with the socket (onWriteDone ignores it); tcp_ may be
  // initialised again only from its close callback.
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* handle) {
    static_cast<BackendConnection*>(handle->data)->onRetrySocketClosed();
  });
  return true;
}

void BackendConnection::onRetrySocketClosed() {
  if (phase_ == Phase::Closing) {
    onHandleClosed();  // detached meanwhile: this was the socket's close
    return;
  }
  const int rc = uv_tcp_init(loop_, &tcp_);
  if (!CERTRELAY_ASSERT(rc == 0)) {
    std::abort();  // as in connect(): a live loop refuses uv_tcp_init only on a bad argument
  }
  tcp_.data = this;
  phase_ = Phase::Connecting;
  connectTarget();
}

void BackendConnection::failSoon(BackendFailure failure, std::string detail) {
  if (!pendingFailure_) {
    pendingFailure_.emplace(failure, std::move(detail));
  }
  armTimer(std::chrono::milliseconds(0));
}

void BackendConnection::detachAndClose() {
  listener_ = nullptr;
  switch (phase_) {
    case Phase::Closing:
      return;
    case Phase::Reconnecting:  // no socket to say QUIT on (the socket is closing already)
    case Phase::Starttls:      // a plaintext QUIT would break the handshake; nothing of the
    case Phase::TlsHandshake:  // client's was sent yet
      break;
    case Phase::Ready:
      if (expected_.empty()) {
        quitAndClose();
        return;
      }
      break;  // replies owed to a client that is gone: nothing polite left to do
    case Phase::Connecting:
    case Phase::Greeting:
    case Phase::ProxyEhlo:
    case Phase::Xclient:
    case Phase::ClientEhlo:
      // A client that left before MAIL (the backend is opened at its EHLO): the set-up is lock
      // step, so QUIT at the end of the reply awaited, not a cut mid-dialogue that the backend
      // logs as "lost connection after EHLO". Bounded like the QUIT itself.
      quitAtNextReply_ = true;
      armTimer(kQuitTimeout);
      return;
  }
  phase_ = Phase::Closing;
  closeHandles();
}

void BackendConnection::quitAndClose() {
  phase_ = Phase::Closing;
  // The reply to QUIT is not awaited: nothing depends on it. Under TLS, close_notify follows.
  if (tls_ != nullptr) {
    tls_->send("QUIT\r\n", out_);
    tls_->close(out_);
  } else {
    out_ += "QUIT\r\n";
  }
  closeAfterWrite_ = true;
  armTimer(kQuitTimeout);
  if (inflight_.empty()) {
    startWrite();
  }
}

void BackendConnection::closeHandles() {
  auto onClose = [](uv_handle_t* handle) {
    static_cast<BackendConnection*>(handle->data)->onHandleClosed();
  };
  phase_ = Phase::Closing;
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), onClose);
  }
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), onClose);
  }
}

void BackendConnection::onHandleClosed() {
  if (--openHandles_ == 0) {
    delete this;
  }
}

}  // namespace certrelay::proxy
