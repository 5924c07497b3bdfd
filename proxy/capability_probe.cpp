#include "proxy/capability_probe.h"

#include <utility>

#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/smtp/identity_handoff.h"

namespace certrelay::proxy {
namespace {

// The explicit mode a hand-off choice amounts to.
config::IdentityMode modeOf(smtp::IdentityHandoff handoff) {
  switch (handoff) {
    case smtp::IdentityHandoff::Xclient:
      return config::IdentityMode::Xclient;
    case smtp::IdentityHandoff::Xforward:
      return config::IdentityMode::Xforward;
    case smtp::IdentityHandoff::None:
      break;
  }
  return config::IdentityMode::None;
}

// What the hand-off in force gives with these capabilities, as the log names it ("xclient
// (auto)"); "" when it is not offered (sessions fail closed: never under the proxy's address).
[[nodiscard]] std::string resolveHandoff(config::IdentityMode inForce, bool automatic,
                                         const smtp::Capabilities& caps) {
  smtp::HandoffChoice choice = smtp::chooseIdentityHandoff(inForce, caps);
  choice.automatic = automatic;
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
  const bool automatic = shared_.config->backend.identity == config::IdentityMode::Auto;
  config::IdentityMode inForce = shared_.identityInForce.load();
  if (inForce == config::IdentityMode::Auto) {
    // "auto" is resolved once, at the first answer, and kept: a backend that later stops
    // offering XCLIENT must fail sessions closed, never downgrade them to the proxy's address.
    const smtp::HandoffChoice choice =
        smtp::chooseIdentityHandoff(config::IdentityMode::Auto, capabilities);
    inForce = modeOf(choice.handoff);
    shared_.identityInForce.store(inForce);
    if (const std::string warning = smtp::autoHandoffWarning(choice, capabilities, address);
        !warning.empty()) {
      log::warning(warning);
    }
  }
  const std::string handoff = resolveHandoff(inForce, automatic, capabilities);
  // Readiness first, the log line after: whoever reads the line sees the state it reports.
  setProblem(handoff.empty()
                 ? "backend " + address + " does not offer the identity hand-off in force"
                 : std::string());
  if (!answered_ || !healthy_ || handoff != handoff_) {
    if (handoff.empty()) {
      log::error("backend " + address + " no longer offers the identity hand-off in force (" +
                 std::string(config::identityModeKeyword(inForce)) +
                 (automatic ? ", resolved from auto" : "") +
                 "); sessions will be refused with 421 4.3.0 until it does");
    } else {
      log::info("backend " + address + " answered the capability probe; identity hand-off: " +
                handoff + (capabilities.chunking ? ", CHUNKING relayed" : ""));
    }
  }
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
