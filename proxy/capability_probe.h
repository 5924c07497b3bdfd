#pragma once
// Asks the backend for its EHLO keywords (at start-up and every backend.probe_interval) and
// publishes them for every worker's EHLO replies. Its last outcome is what readiness reports.

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "proxy/backend_connection.h"
#include "proxy/shared_state.h"

namespace certrelay::proxy {

class CapabilityProbe final : public BackendEvents {
 public:
  CapabilityProbe(uv_loop_t* loop, SharedState& shared) : loop_(loop), shared_(shared) {}

  // Loop thread. start() does nothing while a probe runs.
  void start();
  void stop();
  bool answeredOnce() const { return answered_; }
  // Thread-safe: did the backend answer the last probe (and offer the configured hand-off)?
  // "" when it did, else why not.
  std::string lastProblem() const;

  void onBackendReady(const smtp::Capabilities& capabilities) override;
  void onBackendReply(BackendPurpose, std::uint64_t, const smtp::Reply&) override {}
  void onBackendFailure(BackendFailure failure, const std::string& detail) override;
  void onBackendWritable() override {}

 private:
  void setProblem(std::string problem);

  uv_loop_t* loop_;
  SharedState& shared_;
  BackendConnection* connection_ = nullptr;
  bool answered_ = false;
  bool healthy_ = false;
  std::string handoff_;
  bool reportedFailure_ = false;
  // Written on the loop thread, read by the admin thread.
  std::atomic<std::shared_ptr<const std::string>> problem_{
      std::make_shared<const std::string>("no probe answered yet")};
};

}  // namespace certrelay::proxy
