#pragma once
// What the admin endpoint asks of this process: liveness (every worker loop turns), readiness
// (certificate, listeners, backend, not draining), metrics, drain and reload. Called on the admin
// thread; everything it reads is atomic or immutable.

#include <memory>
#include <string>
#include <vector>

#include "proxy/admin/admin_server.h"
#include "proxy/capability_probe.h"
#include "proxy/shared_state.h"
#include "proxy/supervisor.h"
#include "proxy/worker.h"

namespace certrelay::proxy {

class ProcessAdmin final : public admin::AdminHandler {
 public:
  ProcessAdmin(SharedState& shared, const std::vector<std::unique_ptr<Worker>>& workers,
               const CapabilityProbe& probe, Supervisor& supervisor)
      : shared_(shared), workers_(workers), probe_(probe), supervisor_(supervisor) {}

  std::vector<admin::Check> liveness() override;
  std::vector<admin::Check> readiness() override;
  std::string metrics() override;
  void drain() override { supervisor_.requestDrain(); }
  void reload() override { supervisor_.requestReload(); }

 private:
  SharedState& shared_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
  const CapabilityProbe& probe_;
  Supervisor& supervisor_;
};

}  // namespace certrelay::proxy
