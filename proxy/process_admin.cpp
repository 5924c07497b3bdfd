#include "proxy/process_admin.h"

#include <ctime>

#include "proxy/metrics.h"

namespace certrelay::proxy {

std::vector<admin::Check> ProcessAdmin::liveness() {
  // Never the backend: a backend outage must not get the proxy restarted (operations.md).
  std::vector<admin::Check> checks;
  const auto stall = shared_.config->admin.stallTimeout;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const auto silent = workers_[i]->heartbeat().sinceLastBeat();
    const bool ok = silent <= stall;
    checks.push_back({"worker-" + std::to_string(i), ok,
                      ok ? std::string()
                         : "loop stalled for " + std::to_string(silent.count()) + " ms (limit " +
                               std::to_string(stall.count()) + " ms)"});
  }
  return checks;
}

std::vector<admin::Check> ProcessAdmin::readiness() {
  std::vector<admin::Check> checks;
  const auto context = shared_.tls.load();
  const bool expired = context && context->notAfter() < std::time(nullptr);
  checks.push_back({"certificate", context != nullptr && !expired,
                    context == nullptr ? "no certificate loaded"
                                       : (expired ? "the certificate in force has expired" : "")});
  // The listeners are bound before the admin endpoint starts (a bind failure stops start-up).
  checks.push_back({"listeners", true, ""});
  const std::string backend = probe_.lastProblem();
  checks.push_back({"backend", backend.empty(), backend});
  // Ready with one healthy backend; each address is listed, none is required on its own.
  if (const auto backends = shared_.backends.load()) {
    for (const BackendTarget& target : backends->targets) {
      const std::string name =
          "backend " + target.address.toString() +
          (target.name == target.address.toString() ? "" : " (" + target.name + ")");
      checks.push_back({name, target.health == BackendHealth::Healthy,
                        target.problem.empty() ? toString(target.health) : target.problem, true});
    }
    for (const std::string& unresolved : backends->unresolved) {
      checks.push_back(
          {"backend " + unresolved.substr(0, unresolved.find(' ')), false, unresolved, true});
    }
  }
  const bool draining = supervisor_.draining();
  checks.push_back({"draining", !draining, draining ? "draining: no new sessions wanted" : ""});
  return checks;
}

std::string ProcessAdmin::metrics() {
  return shared_.metrics ? shared_.metrics->exposition() : std::string();
}

}  // namespace certrelay::proxy
