// Session: applies the dialogue's actions to the client connection (socket, timer, TLS engine,
// corked writes, backpressure, teardown) and to the backend connection.

#include "proxy/session.h"

#include <unistd.h>

#include <array>
#include <bit>
#include <utility>

#include "common/assert.h"
#include "common/idle_buffer.h"
#include "proxy/log.h"
#include "proxy/worker.h"

namespace certrelay::proxy {
namespace {

// A client that never reads its last reply must not hold the session forever.
constexpr std::chrono::milliseconds kCloseFlushTimeout{10'000};

}  // namespace

void Session::accept(Worker& worker, const config::Listener& listener,
                     const policy::NetworkList* proxyNetworks, int fd) {
  auto* session = new Session(worker, listener, proxyNetworks);
  const int tcp = uv_tcp_init(worker.loop(), &session->client_);
  const int timer = uv_timer_init(worker.loop(), &session->timer_);
  if (!CERTRELAY_ASSERT(tcp == 0 && timer == 0)) {
    // uv_*_init on a live loop only fails on a bad argument; nothing to close then.
    delete session;
    return;
  }
  session->client_.data = session;
  session->timer_.data = session;
  session->openHandles_ = 2;
  worker.add(session);
  if (const int rc = uv_tcp_open(&session->client_, fd); rc != 0) {
    ::close(fd);  // not the handle's: uv_tcp_open took nothing
    log::warning(std::string("accept: uv_tcp_open: ") + uv_strerror(rc));
    session->teardown("accept failed");
    return;
  }
  session->start();
}

Session::Session(Worker& worker, const config::Listener& listener,
                 const policy::NetworkList* proxyNetworks)
    : worker_(worker),
      config_(worker.config()),
      listener_(listener),
      metrics_(worker.shared().metrics.get()),
      listenerMetrics_(metrics_ != nullptr ? metrics_->listener(listener.name) : nullptr),
      id_(worker.nextSessionId()),
      proxyNetworks_(proxyNetworks),
      tlsContext_(worker.shared().tls.load()) {
  worker_.shared().connections.fetch_add(1, std::memory_order_relaxed);
  if (listenerMetrics_ != nullptr) {
    metrics_->sessionOpened(*listenerMetrics_);
  }
}

Session::~Session() {
  worker_.shared().connections.fetch_sub(1, std::memory_order_relaxed);
  if (clientLimits_ != nullptr) {
    clientLimits_->disconnect(worker_.index(), clientSlot_);
  }
  if (listenerMetrics_ != nullptr) {
    metrics_->sessionClosed(*listenerMetrics_);
  }
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
  if (const int rc = uv_tcp_nodelay(&client_, 1); rc != 0) {
    log::line(log::Level::Warning, id_, std::string("TCP_NODELAY: ") + uv_strerror(rc));
  }
  if (proxyNetworks_ != nullptr) {
    awaitProxyHeader();
    return;
  }
  beginDialogue();
}

void Session::beginDialogue() {
  const std::string client = clientLogName(peer_);
  const std::array<log::Field, 7> fields = {{{"event", "connect"},
                                             {"client", client},
                                             {"client_address", peer_.addr},
                                             {"client_port", peer_.port},
                                             {"listener", listener_.name},
                                             {"local_port", local_.port},
                                             {"proxy_address", proxyPeer_}}};
  // proxy_address only when a PROXY header named another client than the peer.
  log::line(
      log::Level::Info, id_,
      "connect from " + client + " to " + listener_.name + " port " + std::to_string(local_.port),
      std::span<const log::Field>(fields.data(), proxyPeer_.empty() ? 6 : 7));
  // The client's name is looked up from here on (after the PROXY header: its address is the
  // client's); nothing before MAIL waits for it.
  ReverseDns* dns = worker_.reverseDns();
  const bool lookup = dns != nullptr && !peer_.addr.empty();
  dialogue_.emplace(smtp::DialogueSettings{config_, listener_, id_, peer_, local_, lookup}, *this);
  const bool overLimit =
      worker_.shared().connections.load(std::memory_order_relaxed) > config_.limits.maxConnections;
  ++clientCork_;
  const auto overClientLimit = countConnection();
  if (overClientLimit && !overLimit && !worker_.draining()) {
    dialogue_->refuseClient(overClientLimit->first, overClientLimit->second);
  } else {
    dialogue_->start(overLimit, worker_.draining());
  }
  uncorkClient();  // the greeting leaves before the first DNS query does
  if (lookup && !tornDown_) {
    lookup_ = dns->start(peer_.addr, this);
  }
  updateReading();
}

void Session::onClientName(const smtp::ClientName& name) {
  lookup_ = nullptr;  // it is gone
  if (metrics_ != nullptr) {
    metrics_->dnsLookup(name.result);
  }
  if (tornDown_) {
    return;  // cancelled in teardown(); never called then, but a dialogue may be half gone
  }
  peer_.name = name.verified() ? name.name : std::string();
  // Like a read: what the dialogue now does (a MAIL that waited opens the backend and goes to
  // it) leaves in one write each way.
  ++clientCork_;
  BackendConnection* corked = backend_;
  if (corked != nullptr) {
    corked->cork();
  }
  dialogue_->onClientName(name);
  if (corked != nullptr) {
    corked->uncork();
  }
  uncorkClient();
  updateReading();
}

std::optional<std::pair<smtp::ClientLimit, std::uint64_t>> Session::countConnection() {
  ClientLimits* limits = worker_.shared().clientLimits.get();
  if (limits == nullptr || peer_.addr.empty() || limits->exempt(peer_.addr)) {
    return std::nullopt;
  }
  clientLimits_ = limits;
  // The loop's cached time: no system call. A refused connection counts too, as in anvil, so a
  // client that keeps hammering stays refused.
  const ClientLimits::Connected counted =
      limits->connect(worker_.index(), peer_.addr, uv_now(worker_.loop()));
  clientSlot_ = counted.slot;
  if (counted.slot < 0) {
    clientTableFull();
    return std::nullopt;
  }
  const config::Limits& l = config_.limits;
  std::optional<std::pair<smtp::ClientLimit, std::uint64_t>> over;
  Limit metric = Limit::ClientConnections;
  if (l.clientConnections != 0 && counted.concurrent > l.clientConnections) {
    over.emplace(smtp::ClientLimit::Connections, counted.concurrent);
  } else if (l.clientConnectionRate != 0 && counted.rate > l.clientConnectionRate) {
    over.emplace(smtp::ClientLimit::ConnectionRate, counted.rate);
    metric = Limit::ClientConnectionRate;
  }
  if (over && metrics_ != nullptr) {
    metrics_->limitRefused(metric);
  }
  return over;
}

void Session::clientTableFull() {
  if (metrics_ != nullptr) {
    metrics_->limitRefused(Limit::TableFull);
  }
  // The 1st, 2nd, 4th, 8th... time: enough to be seen, never a flood.
  if (std::has_single_bit(clientLimits_->tableFull())) {
    log::line(log::Level::Warning, id_,
              "per-client limits table full: " + clientLogName(peer_) +
                  " not counted (let through; limits.max_connections still applies)");
  }
}

std::uint64_t Session::countRate(smtp::RateEvent event, bool identity, std::string_view key) {
  if (clientLimits_ == nullptr) {
    return 0;  // no limits, or an exempt client
  }
  const bool message = event == smtp::RateEvent::Message;
  const std::uint64_t count =
      clientLimits_->count(worker_.index(), message ? RateCounter::Message : RateCounter::Recipient,
                           identity, key, uv_now(worker_.loop()));
  if (count == 0) {
    clientTableFull();
    return 0;
  }
  const std::size_t limit =
      message ? config_.limits.clientMessageRate : config_.limits.clientRecipientRate;
  if (limit != 0 && count > limit && metrics_ != nullptr) {
    metrics_->limitRefused(message ? Limit::ClientMessageRate : Limit::ClientRecipientRate);
  }
  return count;
}

void Session::onClientRead(ssize_t nread, const uv_buf_t* buf) {
  if (tornDown_) {
    return;
  }
  if (nread < 0) {
    teardown(nread == UV_EOF ? "client closed the connection"
                             : uv_strerror(static_cast<int>(nread)));
    return;
  }
  if (nread == 0) {
    return;
  }
  const std::string_view bytes(buf->base, static_cast<std::size_t>(nread));
  ++clientCork_;
  if (awaitingProxyHeader_) {
    onProxyHeaderBytes(bytes);
  } else {
    consumeClientBytes(bytes);
  }
  uncorkClient();  // the session lives at least until a later loop turn, even if torn down
}

void Session::consumeClientBytes(std::string_view bytes) {
  if (tls_) {
    pumpTls(bytes);
  } else {
    onPlaintext(bytes);
  }
}

void Session::onPlaintext(std::string_view bytes) {
  if (closeAfterFlush_) {
    return;  // nothing more is read once the session decided to close
  }
  // Everything this read produces for the backend leaves in one write (see cork()). The
  // connection stays valid until a later loop turn even if the dialogue drops it meanwhile.
  BackendConnection* corked = backend_;
  if (corked != nullptr) {
    corked->cork();
  }
  dialogue_->onClientBytes(bytes);
  if (corked != nullptr) {
    corked->uncork();
  }
  updateReading();
}

void Session::pumpTls(std::string_view ciphertext) {
  // Read in place: the engine copies only what it leaves unread (the read buffer is shared).
  const tls::Engine::State state = tls_->pump(ciphertext);
  tls_->takeCiphertext(out_);
  startClientWrite();
  if (tls_->handshakeJustCompleted()) {
    handshakeEnded(true);
    dialogue_->onTlsEstablished(tls_->facts());
  }
  if (state == tls::Engine::State::Failed) {
    handshakeEnded(false);
    log::line(log::Level::Warning, id_,
              "SSL_accept error from " + clientLogName(peer_) + ": " + tls_->error());
    closeClient();  // the alert, if any, is already in out_
    return;
  }
  // Parsed where it was decrypted. Its buffer is kept while a message is in flight (the next
  // records are more of it) and given back otherwise (idle connections dominate memory).
  const std::string_view plaintext = tls_->holdPlaintext();
  if (!plaintext.empty()) {
    onPlaintext(plaintext);
  }
  tls_->releasePlaintext(dialogue_->messageInFlight());
  if (state == tls::Engine::State::Closed && !tornDown_) {
    teardown("client sent close_notify");
  }
}

void Session::sendToClient(std::string_view wire) {
  // Every reply leaves through here (the dialogue sends whole replies): counted once each.
  if (metrics_ != nullptr) {
    metrics_->countReplies(wire);
  }
  if (tls_) {
    tls_->queuePlaintext(wire);
    tls_->pump();
    tls_->takeCiphertext(out_);
  } else {
    out_.append(wire.data(), wire.size());
  }
  startClientWrite();
}

void Session::startTls() {
  // The 220 to STARTTLS is already in out_ as plaintext (implicit TLS: nothing was sent):
  // everything from here on is the engine's.
  tls_ = std::make_unique<tls::Engine>(tlsContext_, listener_.clientCert);
  tlsStarted_ = uv_hrtime();
  handshakeOpen_ = true;
}

void Session::handshakeEnded(bool ok) {
  if (!handshakeOpen_) {
    return;  // counted already (a failure after completion, e.g. client_cert = require)
  }
  handshakeOpen_ = false;
  if (listenerMetrics_ != nullptr) {
    const double seconds = static_cast<double>(uv_hrtime() - tlsStarted_) / 1e9;
    metrics_->tlsHandshake(*listenerMetrics_, tls_->facts().summary.resumed, ok, seconds);
  }
}

void Session::startClientWrite() {
  if (!inflight_.empty() || out_.empty() || tornDown_ || clientCork_ > 0) {
    return;
  }
  if (!closeAfterFlush_ && tryWriteNow(reinterpret_cast<uv_stream_t*>(&client_), out_)) {
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

void Session::uncorkClient() {
  if (--clientCork_ > 0) {
    return;
  }
  startClientWrite();
}

void Session::onClientWriteDone(int status) {
  // One write in flight at a time (writeReq_ is reused): its bytes are inflight_ until now.
  if (!CERTRELAY_ASSERT(!inflight_.empty())) {
    teardown("write completed twice");
    return;
  }
  releaseIdleBuffer(inflight_);
  if (tornDown_) {
    return;
  }
  if (status != 0) {
    teardown("write failed");
    return;
  }
  startClientWrite();
  if (inflight_.empty() && out_.empty() && closeAfterFlush_) {
    teardown("closed by the proxy");
    return;
  }
  updateReading();
}

void Session::updateReading() {
  if (tornDown_) {
    return;
  }
  // Before the greeting, only a PROXY header is read.
  bool want = !closeAfterFlush_ && (dialogue_ ? dialogue_->wantsInput() : awaitingProxyHeader_);
  // Backpressure: a client that does not read its replies, or a backend that does not take the
  // message as fast as it comes, stops the reading of this client.
  if (out_.size() + inflight_.size() > config_.limits.highWatermark) {
    want = false;
  }
  if (dialogue_ && dialogue_->inContent() && backend_ != nullptr &&
      backend_->queuedBytes() > config_.limits.highWatermark) {
    want = false;
  }
  if (want == reading_) {
    return;
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(&client_);
  const int rc = want
                     ? uv_read_start(
                           stream, [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = readBuffer(); },
                           [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
                             static_cast<Session*>(s->data)->onClientRead(nread, buf);
                           })
                     : uv_read_stop(stream);
  if (rc != 0) {
    teardown(uv_strerror(rc));
    return;
  }
  reading_ = want;
}

void Session::armTimer(std::chrono::milliseconds timeout) {
  const int rc = uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<Session*>(t->data)->onTimer(); },
      static_cast<std::uint64_t>(timeout.count()), 0);
  // uv_timer_start fails only on a closing handle, which a live session never has.
  if (!CERTRELAY_ASSERT(rc == 0)) {
    teardown("timer failed");
  }
}

void Session::onTimer() {
  if (tornDown_) {
    return;
  }
  if (closeAfterFlush_) {
    teardown("timeout while closing");
    return;
  }
  if (awaitingProxyHeader_) {
    refuseProxyConnection("timeout waiting for the header");
    return;
  }
  dialogue_->onTimer();
  updateReading();
}

void Session::closeClient() {
  if (closeAfterFlush_ || tornDown_) {
    return;
  }
  closeAfterFlush_ = true;
  if (tls_ && tls_->state() == tls::Engine::State::Established) {
    // End TLS properly (close_notify) after the last reply, as Postfix does.
    tls_->shutdown();
    tls_->takeCiphertext(out_);
    startClientWrite();
  }
  armTimer(kCloseFlushTimeout);
  updateReading();
  if (inflight_.empty() && out_.empty()) {
    teardown("closed by the proxy");
  }
}

void Session::drain(bool fast) {
  if (awaitingProxyHeader_) {
    teardown("shutting down before the PROXY header");
    return;
  }
  if (tornDown_ || !dialogue_) {
    return;
  }
  ++clientCork_;
  dialogue_->drain(fast);
  uncorkClient();
  updateReading();
}

void Session::forceClose() {
  teardown("shutdown deadline");
}

void Session::teardown(const char* reason) {
  if (tornDown_) {
    return;
  }
  tornDown_ = true;
  handshakeEnded(false);  // a handshake still running is abandoned (timeout, client gone)
  if (lookup_ != nullptr) {
    worker_.reverseDns()->cancel(std::exchange(lookup_, nullptr));
  }
  closeBackend();
  const std::string client = clientLogName(peer_);
  const std::size_t messages = dialogue_ ? dialogue_->messages() : 0;
  log::line(log::Level::Info, id_,
            "disconnect from " + client + " (" + reason + ") messages=" + std::to_string(messages),
            {{"event", "disconnect"},
             {"client", client},
             {"client_address", peer_.addr},
             {"client_port", peer_.port},
             {"reason", std::string_view(reason)},
             {"messages", messages}});
  auto onClose = [](uv_handle_t* handle) { static_cast<Session*>(handle->data)->onHandleClosed(); };
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), onClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&client_), onClose);
}

void Session::onHandleClosed() {
  if (--openHandles_ == 0) {
    delete this;
  }
}

// --- the dialogue's backend actions ---

bool Session::openBackend(const smtp::ClientIdentity& identity, bool early) {
  if (!CERTRELAY_ASSERT(backend_ == nullptr)) {
    closeBackend();
  }
  // backend.max_connections: reserve a place first (one atomic add, no lock), give it back if
  // over. Early set-ups (ahead of MAIL) keep the last 20% for sessions that are at MAIL.
  std::atomic<std::size_t>& open = worker_.shared().backendSessions;
  const std::size_t cap = config_.backend.maxConnections;
  const std::size_t allowed = early ? cap - cap / 5 : cap;
  if (cap != 0 && open.fetch_add(1, std::memory_order_relaxed) >= allowed) {
    open.fetch_sub(1, std::memory_order_relaxed);
    if (!early && metrics_ != nullptr) {
      metrics_->limitRefused(Limit::BackendConnections);
    }
    return false;
  }
  std::vector<BackendAddress> order;
  if (const auto backends = worker_.shared().backends.load()) {
    order = connectOrder(*backends, config_.backend.balance, worker_.nextBackendTurn());
  }
  backend_ = BackendConnection::start(
      worker_.loop(), config_, this, BackendConnection::Mode::Session, std::move(order), identity,
      id_, metrics_, &worker_.shared().identityInForce, worker_.shared().backendTls.load());
  if (cap != 0) {
    backend_->countIn(&open);
  }
  return true;
}

void Session::closeBackend() {
  if (backend_ != nullptr) {
    std::exchange(backend_, nullptr)->detachAndClose();
  }
}

void Session::backendCommand(std::string_view line, smtp::BackendPurpose purpose,
                             smtp::Ticket ticket) {
  if (CERTRELAY_ASSERT(backend_ != nullptr)) {
    backend_->sendCommand(line, purpose, ticket);
  }
}

void Session::backendMail(std::string_view line, smtp::Ticket ticket, std::string_view ident,
                          std::string_view proto) {
  if (CERTRELAY_ASSERT(backend_ != nullptr)) {
    backend_->sendMail(line, ticket, ident, proto);
  }
}

void Session::backendContent(std::string_view bytes, smtp::ContentTiming timing) {
  if (!CERTRELAY_ASSERT(backend_ != nullptr)) {
    return;
  }
  if (timing == smtp::ContentTiming::Now) {
    backend_->sendContent(bytes);
  } else {
    backend_->holdContent(bytes);
  }
}

std::string* Session::backendContentBuffer() {
  return backend_ != nullptr ? backend_->contentBuffer() : nullptr;
}

void Session::backendContentAppended(std::size_t bytes) {
  if (CERTRELAY_ASSERT(backend_ != nullptr)) {
    backend_->contentAppended(bytes);
  }
}

void Session::backendEndContent(std::string_view lastBytes, smtp::Ticket ticket) {
  if (CERTRELAY_ASSERT(backend_ != nullptr)) {
    backend_->endContent(lastBytes, ticket);
  }
}

// --- environment ---

void Session::log(log::Level level, std::string_view message, std::span<const log::Field> fields) {
  log::line(level, id_, message, fields);
}

std::shared_ptr<const policy::Policy> Session::policy() {
  return worker_.shared().policy.load();
}

std::shared_ptr<const smtp::Capabilities> Session::backendCapabilities() {
  return worker_.shared().backendCapabilities.load();
}

bool Session::underStress() {
  // One relaxed atomic load per command: over 80% of limits.max_connections.
  const std::size_t open = worker_.shared().connections.load(std::memory_order_relaxed);
  return open * 5 > config_.limits.maxConnections * 4;
}

std::uint64_t Session::monotonicMs() {
  return uv_now(worker_.loop());  // the loop's cached time: no system call
}

std::time_t Session::wallClock() {
  return std::time(nullptr);
}

void Session::outcome(smtp::Outcome what, std::string_view identity, std::uint64_t bytes) {
  if (metrics_ != nullptr) {
    metrics_->outcome(what, identity, bytes);
  }
}

// --- backend events ---

void Session::onBackendReady(const smtp::Capabilities& capabilities) {
  dialogue_->onBackendReady(capabilities, backend_ != nullptr ? backend_->address() : "");
}

void Session::onBackendReply(smtp::BackendPurpose purpose, smtp::Ticket ticket,
                             const smtp::Reply& reply) {
  if (!CERTRELAY_ASSERT(!tornDown_)) {
    return;
  }
  dialogue_->onBackendReply(purpose, ticket, reply);
  updateReading();
}

void Session::onBackendFailure(smtp::BackendFailure failure, const std::string& detail) {
  // Still alive during this call (it is destroyed in a later loop turn): the address it tried.
  const std::string address = backend_ != nullptr ? backend_->address() : std::string();
  backend_ = nullptr;  // it is closing and owns itself now
  if (!CERTRELAY_ASSERT(!tornDown_)) {
    return;
  }
  dialogue_->onBackendFailure(failure, detail, address);
  updateReading();
}

void Session::onBackendWritable() {
  updateReading();
}

void Session::onBackendIdle() {
  dialogue_->onBackendIdle();
  updateReading();
}

}  // namespace certrelay::proxy
