#pragma once
// The process's lifecycle on the main loop: signals, the graceful drain, reloads, and the end.
//
//   SIGTERM, SIGQUIT, POST /drain  graceful drain: readiness turns 503 at once; listeners stay
//                                  open for shutdown.delay (endpoint removal catches up), then
//                                  close; idle sessions get 421 4.3.2 at their next command
//                                  boundary; a transaction runs to the backend's real reply;
//                                  whatever is left at shutdown.timeout (from the drain's start)
//                                  is closed.
//   SIGINT, a second SIGTERM       fast: no delay; sessions with a message in DATA still get the
//                                  backend's reply, the others close at once.
//   SIGHUP, POST /reload           reload every watched file, also during a drain (never kills).
// The main loop ends when every worker has finished; the signal handlers stay installed until
// then, so no signal ever falls back to its default action (core dump, kill) mid-drain.

#include <uv.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "proxy/material_watcher.h"
#include "proxy/shared_state.h"
#include "proxy/worker.h"

namespace certrelay::proxy {

class Supervisor {
 public:
  Supervisor(uv_loop_t* loop, SharedState& shared);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Installs the signal handlers and the cross-thread wake-up. `stopBackground` closes the main
  // loop's other handles (probe timer, probe, watchers) once the workers are done. Returns "" or
  // why it cannot run. The workers must be running; each must call workerFinished() at its end.
  [[nodiscard]] std::string start(std::vector<std::unique_ptr<Worker>>& workers,
                                  std::vector<std::unique_ptr<MaterialWatcher>>& watchers,
                                  std::function<void()> stopBackground);

  // Thread-safe (the admin thread, any worker): the same as SIGTERM / SIGHUP.
  void requestDrain();
  void requestReload();
  // Thread-safe: a worker's loop has ended.
  void workerFinished();
  // Thread-safe: a drain has begun (readiness fails from then on).
  bool draining() const;

 private:
  enum class Phase { Running, Delaying, Draining, Fast, Finished };

  void onSignal(int signum);
  void onWakeUp();
  void beginDrain(const char* why);
  void closeListeners();  // the end of shutdown.delay
  void goFast(const char* why);
  void reloadAll(const char* why);
  void finish();
  std::chrono::milliseconds remainingUntilHardStop() const;

  uv_loop_t* loop_;
  SharedState& shared_;
  std::vector<std::unique_ptr<Worker>>* workers_ = nullptr;
  std::vector<std::unique_ptr<MaterialWatcher>>* watchers_ = nullptr;
  std::function<void()> stopBackground_;
  Phase phase_ = Phase::Running;
  unsigned sigterms_ = 0;  // received so far
  std::chrono::steady_clock::time_point drainStarted_{};

  uv_signal_t signals_[4]{};  // SIGTERM, SIGQUIT, SIGINT, SIGHUP
  int signalCount_ = 0;
  uv_async_t wakeUp_{};
  uv_timer_t delay_{};
  // Requests from other threads, picked up by onWakeUp().
  std::atomic<bool> drainRequested_{false};
  std::atomic<bool> reloadRequested_{false};
  std::atomic<std::size_t> workersFinished_{0};
  std::atomic<bool> draining_{false};
};

}  // namespace certrelay::proxy
