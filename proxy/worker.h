#pragma once
// One event loop on its own thread, with its own listening sockets (SO_REUSEPORT), timers and
// sessions. A session lives and dies on one worker: nothing on the data path takes a lock.

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

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

  void startThread();
  // Thread-safe: close the listeners, drain sessions, exit the loop by the shutdown deadline.
  void requestStop();
  void join();

  // Loop-thread only.
  uv_loop_t* loop() { return &loop_; }
  SharedState& shared() { return shared_; }
  const config::Config& config() const { return *shared_.config; }
  std::string nextSessionId();
  // The registry of live sessions (for drain and the shutdown deadline). It owns nothing: a
  // Session owns itself (session.h) and removes itself here when it is destroyed.
  void add(Session* session) { sessions_.insert(session); }
  void remove(Session* session) { sessions_.erase(session); }
  bool draining() const { return draining_; }

 private:
  struct ListenHandle {
    uv_tcp_t tcp;
    const config::Listener* listener;
    Worker* worker;
  };

  void run();
  void onStopRequested();
  void onShutdownDeadline();

  unsigned index_;
  SharedState& shared_;
  std::vector<ListenerSocket> sockets_;
  uv_loop_t loop_{};
  uv_async_t stopAsync_{};
  uv_timer_t shutdownTimer_{};
  uv_prepare_t logFlush_{};
  std::vector<std::unique_ptr<ListenHandle>> listeners_;
  std::unordered_set<Session*> sessions_;  // live sessions, not owned
  bool draining_ = false;
  std::uint32_t sessionCounter_ = 0;
  std::uint32_t sessionSalt_ = 0;
  std::thread thread_;
};

}  // namespace certrelay::proxy
