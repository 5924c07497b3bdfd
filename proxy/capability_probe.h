#pragma once
// Finds the backends and what they offer, at start-up and every backend.probe_interval: resolves
// every configured name (uv_getaddrinfo: libuv's thread pool, never a worker loop), probes every
// resolved address (greeting and EHLO), and publishes the result for the workers: the backend
// set (SharedState::backends: which addresses sessions may use) and the capabilities clients are
// offered (what every healthy backend offers). Its findings are what readiness reports: ready
// when at least one backend is healthy.
//
// Security role: "auto" is resolved once, at the first answer, and kept; from then on a backend
// that does not offer the hand-off in force is Unfit (logged) and gets no session.
//
// Loop thread only, except lastProblem() (any thread).

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/backend_connection.h"
#include "proxy/backend_set.h"
#include "proxy/shared_state.h"

namespace certrelay::proxy {

class CapabilityProbe {
 public:
  CapabilityProbe(uv_loop_t* loop, SharedState& shared);
  ~CapabilityProbe();
  CapabilityProbe(const CapabilityProbe&) = delete;
  CapabilityProbe& operator=(const CapabilityProbe&) = delete;

  // One round: resolve, then probe every address. Does nothing while a round runs.
  void start();
  // Cancels what runs (a resolution already in the thread pool finishes, and is ignored).
  void stop();
  // Some backend answered a probe at least once.
  bool answeredOnce() const { return answered_; }
  // Thread-safe: "" while at least one backend is healthy, else why none is.
  std::string lastProblem() const;
  // Loop thread: the first backend that answered without the STARTTLS backend.tls = "starttls"
  // requires ("backend 10.0.0.7:25 does not offer STARTTLS (...)"), "" if none did.
  const std::string& starttlsMissing() const { return starttlsMissing_; }

 private:
  // One entry of backend.address(es) and what it resolved to.
  struct Entry {
    CapabilityProbe* owner = nullptr;
    config::Endpoint configured;
    bool numeric = false;
    bool resolving = false;
    uv_getaddrinfo_t request{};
    std::vector<config::Endpoint> addresses;  // the last good resolution (kept on failure)
    std::string problem;                      // why the last resolution failed ("" when not)
  };
  // One resolved address and its probe.
  struct Target final : BackendEvents {
    CapabilityProbe* owner = nullptr;
    BackendTarget state;
    BackendConnection* connection = nullptr;
    std::string handoff;  // the hand-off it offered at its last answer ("xclient (auto)")
    // An answer not judged yet: "auto" waits for the first backend in the configured order.
    std::optional<smtp::Capabilities> unjudged;

    void onBackendReady(const smtp::Capabilities& capabilities) override;
    void onBackendReply(BackendPurpose, std::uint64_t, const smtp::Reply&) override {}
    void onBackendFailure(BackendFailure failure, const std::string& detail) override;
    void onBackendWritable() override {}
  };

  void resolve(Entry& entry);
  void onResolved(Entry& entry, int status, addrinfo* result);
  // Every resolution of the round is in: the targets follow the addresses, each is probed.
  void probeTargets();
  void probeAnswered(Target& target, const smtp::Capabilities& capabilities);
  void probeFailed(Target& target, BackendFailure failure, const std::string& detail);
  // Judges the answers that can be judged: all of them once the hand-off in force is known.
  // "auto" is resolved from the first backend in the configured order that answers (the ones
  // before it failed their probe), so the choice does not depend on who answers faster.
  void judgeAnswers();
  void judge(Target& target, const smtp::Capabilities& capabilities);
  // The hand-off in force ("auto" resolved from these capabilities if it is not yet).
  config::IdentityMode handoffInForce(const smtp::Capabilities& capabilities,
                                      const std::string& address);
  void probeDone();
  // Builds and stores the backend set, the offered capabilities, readiness and the metrics.
  void publish();

  uv_loop_t* loop_;
  SharedState& shared_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::size_t resolving_ = 0;  // resolutions of this round still out
  std::size_t probing_ = 0;    // probes of this round still out
  bool running_ = false;
  bool stopped_ = false;
  bool answered_ = false;
  std::string starttlsMissing_;
  // Written on the loop thread, read by the admin thread.
  std::atomic<std::shared_ptr<const std::string>> problem_{
      std::make_shared<const std::string>("no probe answered yet")};
};

}  // namespace certrelay::proxy
