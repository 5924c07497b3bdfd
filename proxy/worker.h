#pragma once
// One event loop on its own thread, with its own listening sockets (SO_REUSEPORT), timers and
// sessions. A session lives and dies on one worker: nothing on the data path takes a lock.

#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "policy/networks.h"
#include "proxy/acceptor.h"
#include "proxy/admin/liveness.h"
#include "proxy/reverse_dns.h"
#include "proxy/shared_state.h"

namespace certrelay::proxy {

class Session;

// A bound, listening socket handed to one worker.
struct ListenerSocket {
  const config::Listener* listener;
  int fd;
};

class Worker {
 public:
  Worker(unsigned index, SharedState& shared, std::vector<ListenerSocket> sockets);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // `onFinished` runs on the worker's thread once its loop has ended.
  void startThread(std::function<void()> onFinished = {});
  // Thread-safe: close the listeners, drain the sessions, and close whatever is left after
  // `hardStopIn`. `fast`: sessions without a message in DATA close at once (a message being
  // received, or waiting for its final reply, still gets it). A second call may make it fast.
  void requestStop(std::chrono::milliseconds hardStopIn, bool fast);
  void join();

  // Loop-thread only.
  uv_loop_t* loop() { return &loop_; }
  unsigned index() const { return index_; }
  SharedState& shared() { return shared_; }
  const config::Config& config() const { return *shared_.config; }
  std::string nextSessionId();
  // backend.balance = "round_robin": where this worker's next backend connection starts.
  std::uint64_t nextBackendTurn() { return backendTurn_++; }
  // The registry of live sessions (for drain and the shutdown deadline). It owns nothing: a
  // Session owns itself (session.h) and removes itself here when it is destroyed.
  void add(Session* session) { sessions_.insert(session); }
  void remove(Session* session) { sessions_.erase(session); }
  bool draining() const { return draining_; }
  // The worker's reverse-lookup channel (dns.reverse_lookup); null when the lookups are off.
  ReverseDns* reverseDns() { return reverseDns_.get(); }
  // Any thread: proof that this worker's loop turns (/livez).
  const admin::LoopHeartbeat& heartbeat() const { return heartbeat_; }

 private:
  struct ListenHandle {
    std::unique_ptr<Acceptor> acceptor;
    const config::Listener* listener;
    policy::NetworkList proxyNetworks;  // listener->proxyNetworks, parsed once
  };

  void startAcceptor(const ListenerSocket& socket);
  void run();
  void onStopRequested();
  void drainSessions(bool fast);
  void onLogFlush();
  void onShutdownDeadline();

  unsigned index_;
  SharedState& shared_;
  std::vector<ListenerSocket> sockets_;
  uv_loop_t loop_{};
  uv_async_t stopAsync_{};
  // Set by requestStop() on another thread, read by onStopRequested() on this one.
  std::atomic<std::int64_t> hardStopInMs_{0};
  std::atomic<bool> fastRequested_{false};
  bool fast_ = false;
  std::function<void()> onFinished_;
  uv_timer_t shutdownTimer_{};
  uv_prepare_t logFlush_{};
  uv_timer_t logFlushTimer_{};
  admin::LoopHeartbeat heartbeat_;
  // Given up for a moment at descriptor exhaustion, so that a client can be told 421.
  ReservedDescriptor reserve_;
  std::vector<std::unique_ptr<ListenHandle>> listeners_;
  std::unordered_set<Session*> sessions_;  // live sessions, not owned
  // Closed (close()) when the loop has ended, freed with the worker after the close callbacks.
  std::unique_ptr<ReverseDns> reverseDns_;
  bool draining_ = false;
  std::uint32_t sessionCounter_ = 0;
  std::uint64_t backendTurn_ = 0;
  std::uint32_t sessionSalt_ = 0;
  std::thread thread_;
};

}  // namespace certrelay::proxy
