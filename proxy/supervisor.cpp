#include "proxy/supervisor.h"

#include <algorithm>
#include <csignal>
#include <string>

#include "common/assert.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/service_notify.h"

namespace certrelay::proxy {

Supervisor::Supervisor(uv_loop_t* loop, SharedState& shared) : loop_(loop), shared_(shared) {}

std::string Supervisor::start(std::vector<std::unique_ptr<Worker>>& workers,
                              std::vector<std::unique_ptr<MaterialWatcher>>& watchers,
                              std::function<void()> stopBackground) {
  workers_ = &workers;
  watchers_ = &watchers;
  stopBackground_ = std::move(stopBackground);
  const auto failed = [](const char* what, int rc) {
    return std::string("supervisor: ") + what + ": " + uv_strerror(rc);
  };
  if (const int rc = uv_async_init(
          loop_, &wakeUp_,
          [](uv_async_t* async) { static_cast<Supervisor*>(async->data)->onWakeUp(); });
      rc != 0) {
    return failed("uv_async_init", rc);
  }
  wakeUp_.data = this;
  if (const int rc = uv_timer_init(loop_, &delay_); rc != 0) {
    return failed("uv_timer_init", rc);
  }
  delay_.data = this;
  for (const int signum : {SIGTERM, SIGQUIT, SIGINT, SIGHUP}) {
    uv_signal_t& handle = signals_[signalCount_];
    if (const int rc = uv_signal_init(loop_, &handle); rc != 0) {
      return failed("uv_signal_init", rc);
    }
    ++signalCount_;
    handle.data = this;
    if (const int rc = uv_signal_start(
            &handle,
            [](uv_signal_t* s, int number) { static_cast<Supervisor*>(s->data)->onSignal(number); },
            signum);
        rc != 0) {
      return failed("uv_signal_start", rc);
    }
  }
  return {};
}

void Supervisor::requestDrain() {
  drainRequested_.store(true);
  static_cast<void>(uv_async_send(&wakeUp_));  // fails only on a closing handle: finished
}

void Supervisor::requestReload() {
  reloadRequested_.store(true);
  static_cast<void>(uv_async_send(&wakeUp_));
}

void Supervisor::workerFinished() {
  workersFinished_.fetch_add(1);
  static_cast<void>(uv_async_send(&wakeUp_));
}

bool Supervisor::draining() const {
  return draining_.load(std::memory_order_relaxed);
}

void Supervisor::onSignal(int signum) {
  switch (signum) {
    case SIGHUP:
      reloadAll("SIGHUP");
      return;
    case SIGINT:
      goFast("SIGINT");
      return;
    case SIGTERM:
      // Only a second SIGTERM is the impatient one. The first may come after a drain began
      // otherwise: the kubelet sends it as soon as a preStop `certrelay ctl drain` returns.
      if (++sigterms_ > 1) {
        goFast("second SIGTERM");
      } else if (phase_ == Phase::Running) {
        beginDrain("SIGTERM");
      } else {
        log::info("SIGTERM: draining already; a second SIGTERM or SIGINT stops fast");
      }
      return;
    default:  // SIGQUIT: graceful, as SIGTERM (nginx's and Kubernetes' graceful signals)
      beginDrain(signum == SIGQUIT ? "SIGQUIT" : "signal");
      return;
  }
}

void Supervisor::onWakeUp() {
  if (reloadRequested_.exchange(false)) {
    reloadAll("admin");
  }
  if (drainRequested_.exchange(false)) {
    beginDrain("admin /drain");
  }
  if (workers_ != nullptr && workersFinished_.load() == workers_->size()) {
    finish();
  }
}

void Supervisor::beginDrain(const char* why) {
  if (phase_ != Phase::Running) {
    return;
  }
  phase_ = Phase::Delaying;
  drainStarted_ = std::chrono::steady_clock::now();
  draining_.store(true, std::memory_order_relaxed);
  if (shared_.metrics) {
    shared_.metrics->setDraining(true);
  }
  // The delay counts against the hard stop: never wait longer than the whole drain may take.
  const auto delay = std::min(shared_.config->shutdown.delay, shared_.config->shutdown.timeout);
  log::info(std::string("stopping (") + why + "): draining; not ready; accepting for " +
            std::to_string(delay.count()) + " ms more, then closing the listeners");
  notifyStopping();
  if (const int rc = uv_timer_start(
          &delay_, [](uv_timer_t* t) { static_cast<Supervisor*>(t->data)->closeListeners(); },
          static_cast<std::uint64_t>(delay.count()), 0);
      rc != 0) {
    log::warning(std::string("drain delay timer: ") + uv_strerror(rc) + "; closing now");
    closeListeners();
  }
}

std::chrono::milliseconds Supervisor::remainingUntilHardStop() const {
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - drainStarted_);
  const auto timeout = shared_.config->shutdown.timeout;
  return elapsed >= timeout ? std::chrono::milliseconds(0) : timeout - elapsed;
}

void Supervisor::closeListeners() {
  if (phase_ != Phase::Delaying) {
    return;
  }
  phase_ = Phase::Draining;
  log::info("stopping: listeners closed, draining sessions");
  const auto remaining = remainingUntilHardStop();
  for (auto& worker : *workers_) {
    worker->requestStop(remaining, false);
  }
}

void Supervisor::goFast(const char* why) {
  if (phase_ == Phase::Fast || phase_ == Phase::Finished) {
    return;
  }
  if (phase_ == Phase::Running) {
    drainStarted_ = std::chrono::steady_clock::now();
  }
  phase_ = Phase::Fast;
  draining_.store(true, std::memory_order_relaxed);
  if (shared_.metrics) {
    shared_.metrics->setDraining(true);
  }
  static_cast<void>(uv_timer_stop(&delay_));
  log::info(std::string("stopping fast (") + why +
            "): listeners closed; messages in DATA get their reply, other sessions close now");
  notifyStopping();
  const auto remaining = remainingUntilHardStop();
  for (auto& worker : *workers_) {
    worker->requestStop(remaining, true);
  }
}

void Supervisor::reloadAll(const char* why) {
  for (auto& watcher : *watchers_) {
    watcher->reloadNow(why);
  }
}

void Supervisor::finish() {
  if (phase_ == Phase::Finished) {
    return;
  }
  phase_ = Phase::Finished;
  stopBackground_();
  for (int i = 0; i < signalCount_; ++i) {
    uv_close(reinterpret_cast<uv_handle_t*>(&signals_[i]), nullptr);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeUp_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&delay_), nullptr);
}

}  // namespace certrelay::proxy
