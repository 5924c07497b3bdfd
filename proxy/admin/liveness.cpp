#include "proxy/admin/liveness.h"

namespace certrelay::admin {

static_assert(std::atomic<std::int64_t>::is_always_lock_free,
              "the admin thread reads the heartbeat while the loop writes it");

LoopHeartbeat::LoopHeartbeat(std::chrono::milliseconds interval)
    : interval_(interval), lastBeatNs_(nowNs()) {}

std::int64_t LoopHeartbeat::nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int LoopHeartbeat::start(uv_loop_t* loop) {
  if (started_) {
    return UV_EALREADY;
  }
  int rc = uv_timer_init(loop, &timer_);
  if (rc != 0) {
    return rc;
  }
  timer_.data = this;
  started_ = true;
  beat();
  const auto every = static_cast<std::uint64_t>(interval_.count());
  rc = uv_timer_start(
      &timer_, [](uv_timer_t* timer) { static_cast<LoopHeartbeat*>(timer->data)->beat(); }, every,
      every);
  if (rc != 0) {
    stop();
    return rc;
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
  return 0;
}

void LoopHeartbeat::stop() {
  auto* handle = reinterpret_cast<uv_handle_t*>(&timer_);
  if (started_ && uv_is_closing(handle) == 0) {
    uv_close(handle, nullptr);
  }
}

void LoopHeartbeat::beat() {
  lastBeatNs_.store(nowNs(), std::memory_order_relaxed);
}

std::chrono::milliseconds LoopHeartbeat::sinceLastBeat() const {
  const std::int64_t elapsed = nowNs() - lastBeatNs_.load(std::memory_order_relaxed);
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::nanoseconds(elapsed < 0 ? 0 : elapsed));
}

}  // namespace certrelay::admin
