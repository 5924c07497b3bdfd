#pragma once
// LoopHeartbeat: proof that an event loop still turns, readable from any thread.
//
// A worker loop owns one and starts it on its loop; a repeating timer stores the monotonic time
// of each turn in an atomic. The admin thread reads sinceLastBeat() without touching the loop,
// so judging a stuck loop never waits for it: a loop blocked in a callback (a deadlock, a
// runaway parse) stops beating, and /livez reports it once the silence exceeds
// admin.stall_timeout (which must be well above the beat interval).

#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace certrelay::admin {

class LoopHeartbeat {
 public:
  explicit LoopHeartbeat(std::chrono::milliseconds interval = std::chrono::milliseconds(1'000));
  LoopHeartbeat(const LoopHeartbeat&) = delete;
  LoopHeartbeat& operator=(const LoopHeartbeat&) = delete;

  // Loop thread: beats once and installs the repeating timer. The timer is unreferenced, so it
  // never keeps a stopping loop alive. Returns 0 or the libuv error code.
  [[nodiscard]] int start(uv_loop_t* loop);

  // Loop thread: closes the timer (a no-op if it was never started or is closing already, e.g.
  // closed by a uv_walk at loop teardown). The object must outlive the loop's next turn, which
  // runs the close; in practice it lives as long as the loop does.
  void stop();

  // Records "the loop turned now". Called by the timer; callable from the loop's own code too.
  void beat();

  // Time since the last beat (since construction before the first one). Any thread.
  [[nodiscard]] std::chrono::milliseconds sinceLastBeat() const;

  std::chrono::milliseconds interval() const { return interval_; }

 private:
  static std::int64_t nowNs();

  const std::chrono::milliseconds interval_;
  uv_timer_t timer_{};
  bool started_ = false;
  // steady_clock nanoseconds: lock-free, and relaxed is enough (it publishes nothing else).
  std::atomic<std::int64_t> lastBeatNs_;
};

}  // namespace certrelay::admin
