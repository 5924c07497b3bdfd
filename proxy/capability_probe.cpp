#include "proxy/capability_probe.h"

#include <utility>

#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/smtp/identity_handoff.h"

namespace certrelay::proxy {
namespace {

// What backend.identity resolves to with these capabilities; "" when an explicit mode is not
// offered (a configuration error: the proxy must not carry on under its own address).
[[nodiscard]] std::string resolveHandoff(config::IdentityMode mode,
                                         const smtp::Capabilities& caps) {
  const smtp::HandoffChoice choice = smtp::chooseIdentityHandoff(mode, caps);
  return choice.offered ? choice.describe() : std::string();
}

}  // namespace

void CapabilityProbe::start() {
  if (connection_ != nullptr) {
    return;  // the previous probe is still running
  }
  connection_ =
      BackendConnection::start(loop_, *shared_.config, this, BackendConnection::Mode::Probe, {},
                               "probe", shared_.metrics.get());
}

void CapabilityProbe::stop() {
  if (connection_ != nullptr) {
    std::exchange(connection_, nullptr)->detachAndClose();
  }
}

std::string CapabilityProbe::lastProblem() const {
  return *problem_.load();
}

void CapabilityProbe::setProblem(std::string problem) {
  problem_.store(std::make_shared<const std::string>(std::move(problem)));
}

void CapabilityProbe::onBackendReady(const smtp::Capabilities& capabilities) {
  auto published = std::make_shared<const smtp::Capabilities>(capabilities);
  shared_.backendCapabilities.store(published);
  const std::string address = shared_.config->backend.address.toString();
  const std::string handoff = resolveHandoff(shared_.config->backend.identity, capabilities);
  if (!answered_ || !healthy_ || handoff != handoff_) {
    if (handoff.empty()) {
      log::error("backend " + address +
                 " does not offer the configured backend.identity; sessions will be refused "
                 "with 421 4.3.0 until it does");
    } else {
      log::info("backend " + address + " answered the capability probe; identity hand-off: " +
                handoff + (capabilities.chunking ? ", CHUNKING relayed" : ""));
    }
  }
  setProblem(handoff.empty() ? "backend " + address +
                                   " does not offer the configured identity "
                                   "hand-off"
                             : std::string());
  handoff_ = handoff;
  answered_ = true;
  healthy_ = true;
  if (shared_.metrics) {
    shared_.metrics->setBackendUp(!handoff.empty());
  }
  stop();
}

void CapabilityProbe::onBackendFailure(BackendFailure failure, const std::string& detail) {
  connection_ = nullptr;
  const std::string address = shared_.config->backend.address.toString();
  if (healthy_ || !reportedFailure_) {
    log::warning("backend probe " + address + " " + toString(failure) + ": " + detail);
  }
  setProblem("backend " + address + " " + toString(failure) + ": " + detail);
  reportedFailure_ = true;
  healthy_ = false;
  if (shared_.metrics) {
    shared_.metrics->setBackendUp(false);
  }
}

}  // namespace certrelay::proxy
