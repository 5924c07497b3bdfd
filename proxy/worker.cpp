#include "proxy/worker.h"

#include <unistd.h>

#include <algorithm>
#include <random>

#include "proxy/log.h"
#include "proxy/session.h"

namespace certrelay::proxy {

Worker::Worker(unsigned index, SharedState& shared, std::vector<ListenerSocket> sockets)
    : index_(index), shared_(shared), sockets_(std::move(sockets)) {
  sessionSalt_ = std::random_device{}();
}

Worker::~Worker() {
  join();
}

void Worker::startThread(std::function<void()> onFinished) {
  onFinished_ = std::move(onFinished);
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &stopAsync_,
                [](uv_async_t* async) { static_cast<Worker*>(async->data)->onStopRequested(); });
  stopAsync_.data = this;
  uv_timer_init(&loop_, &shutdownTimer_);
  shutdownTimer_.data = this;
  // Batched info lines go out when they are ~50 ms old or 4 KiB (log.h): the prepare handle
  // checks once per loop iteration and arms the timer for a batch that is not yet due, so that
  // an idle loop still writes it. Both unreferenced: they must not keep a stopping worker alive.
  uv_prepare_init(&loop_, &logFlush_);
  logFlush_.data = this;
  uv_prepare_start(&logFlush_,
                   [](uv_prepare_t* p) { static_cast<Worker*>(p->data)->onLogFlush(); });
  uv_unref(reinterpret_cast<uv_handle_t*>(&logFlush_));
  uv_timer_init(&loop_, &logFlushTimer_);
  logFlushTimer_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&logFlushTimer_));
  if (config().dns.reverseLookup) {
    std::string error;
    reverseDns_ = ReverseDns::create(&loop_, config().dns, error);
    if (!reverseDns_) {
      // runServer() checked the same settings before any worker started: not expected.
      log::error("worker " + std::to_string(index_) + ": reverse lookups off: " + error);
    }
  }
  if (const int rc = heartbeat_.start(&loop_); rc != 0) {
    log::warning("worker " + std::to_string(index_) + ": heartbeat: " + uv_strerror(rc) +
                 "; /livez will report this loop as stalled");
  }
  for (const auto& socket : sockets_) {
    startAcceptor(socket);
  }
  thread_ = std::thread([this] { run(); });
}

void Worker::startAcceptor(const ListenerSocket& socket) {
  auto handle = std::make_unique<ListenHandle>();
  const config::Listener* listener = socket.listener;
  handle->listener = listener;
  if (listener->proxyProtocol) {
    // Validated by the config already: parse() cannot throw here.
    handle->proxyNetworks = policy::NetworkList::parse(listener->proxyNetworks);
  }
  // An implicit-TLS client cannot read a plaintext line: it is only closed.
  const std::string refusal = listener->tlsMode == config::TlsMode::Implicit
                                  ? ""
                                  : "421 4.3.2 " + config().hostname +
                                        " Service not available: out of file descriptors\r\n";
  ListenHandle* h = handle.get();
  handle->acceptor = std::make_unique<Acceptor>(
      &loop_, socket.fd, listener->name, refusal, reserve_,
      [this, h](int fd) {
        Session::accept(*this, *h->listener,
                        h->listener->proxyProtocol ? &h->proxyNetworks : nullptr, fd);
      },
      [this] {
        if (Metrics* metrics = shared_.metrics.get()) {
          metrics->limitRefused(Limit::Descriptors);
        }
      });
  if (const int rc = handle->acceptor->start(); rc != 0) {
    log::error("listener " + listener->name + ": listen: " + uv_strerror(rc));
  }
  listeners_.push_back(std::move(handle));
}

void Worker::run() {
  log::beginBatching();
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (reverseDns_) {
    reverseDns_->close();  // its queries end and its poll handles close with their own callbacks
  }
  // Only unreferenced handles can be left (the shutdown timer): close them, let callbacks run.
  uv_walk(
      &loop_,
      [](uv_handle_t* handle, void*) {
        if (!uv_is_closing(handle)) {
          uv_close(handle, nullptr);
        }
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  log::endBatching();
  if (onFinished_) {
    onFinished_();
  }
}

void Worker::onLogFlush() {
  const auto dueIn = log::flushIfDue();
  // An armed timer is never later than the batch's deadline: it was armed for the oldest line
  // of a batch no younger than this one (it may fire early, and then re-arms from here).
  if (dueIn && uv_is_active(reinterpret_cast<uv_handle_t*>(&logFlushTimer_)) == 0) {
    uv_timer_start(
        &logFlushTimer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->onLogFlush(); },
        static_cast<std::uint64_t>(dueIn->count()), 0);
  }
}

void Worker::requestStop(std::chrono::milliseconds hardStopIn, bool fast) {
  hardStopInMs_.store(hardStopIn.count());
  if (fast) {
    fastRequested_.store(true);
  }
  uv_async_send(&stopAsync_);
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::string Worker::nextSessionId() {
  // Short, unique within the process, and distinct between restarts and between replicas (32
  // random bits per worker, drawn at start): like a Postfix queue id, but greppable across a
  // fleet's logs. Worker (2 hex), salt (8 hex), counter (6 hex).
  char id[20];
  std::snprintf(id, sizeof id, "%02X%08X%06X", index_ & 0xffU, sessionSalt_,
                ++sessionCounter_ & 0xffffffU);
  return id;
}

void Worker::onStopRequested() {
  const bool fast = fastRequested_.load();
  if (draining_ && (fast_ || !fast)) {
    return;
  }
  fast_ = fast;
  if (!draining_) {
    draining_ = true;
    for (auto& listener : listeners_) {
      listener->acceptor->close();
    }
  }
  drainSessions(fast);
  // (Re)arm the hard stop: a fast stop may shorten it, never lengthen it.
  uv_timer_start(
      &shutdownTimer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->onShutdownDeadline(); },
      static_cast<std::uint64_t>(std::max<std::int64_t>(hardStopInMs_.load(), 0)), 0);
  // Neither the deadline timer nor the wake-up may keep an otherwise finished loop alive.
  uv_unref(reinterpret_cast<uv_handle_t*>(&shutdownTimer_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&stopAsync_));
}

void Worker::drainSessions(bool fast) {
  // Copy: drain() may end a session, which removes it from the set.
  const std::vector<Session*> sessions(sessions_.begin(), sessions_.end());
  for (Session* session : sessions) {
    if (sessions_.count(session) != 0) {
      session->drain(fast);
    }
  }
}

void Worker::onShutdownDeadline() {
  const std::vector<Session*> sessions(sessions_.begin(), sessions_.end());
  for (Session* session : sessions) {
    if (sessions_.count(session) != 0) {
      session->forceClose();
    }
  }
}

}  // namespace certrelay::proxy
