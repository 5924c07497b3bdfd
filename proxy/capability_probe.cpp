#include "proxy/capability_probe.h"

#include <netdb.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/assert.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/net_util.h"
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

std::string joined(const std::vector<config::Endpoint>& addresses) {
  std::string text;
  for (const auto& address : addresses) {
    text += (text.empty() ? "" : ", ") + address.toString();
  }
  return text;
}

// The IPv4 and IPv6 addresses of a resolver answer, each once, in its order, with `port`.
std::vector<config::Endpoint> addressesOf(const addrinfo* result, std::uint16_t port) {
  std::vector<config::Endpoint> found;
  for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof(sockaddr_storage)) {
      continue;
    }
    sockaddr_storage storage{};
    std::memcpy(&storage, ai->ai_addr, ai->ai_addrlen);
    config::Endpoint endpoint{fromSockaddr(storage).addr, port};
    if (std::none_of(found.begin(), found.end(),
                     [&](const config::Endpoint& known) { return known.host == endpoint.host; })) {
      found.push_back(std::move(endpoint));
    }
  }
  return found;
}

}  // namespace

CapabilityProbe::CapabilityProbe(uv_loop_t* loop, SharedState& shared)
    : loop_(loop), shared_(shared) {
  for (const config::Endpoint& configured : shared_.config->backend.addresses) {
    auto entry = std::make_unique<Entry>();
    entry->owner = this;
    entry->configured = configured;
    entry->numeric = config::isNumericHost(configured);
    if (entry->numeric) {
      entry->addresses.push_back(configured);
    }
    entry->request.data = entry.get();
    entries_.push_back(std::move(entry));
  }
}

CapabilityProbe::~CapabilityProbe() {
  stop();
}

void CapabilityProbe::start() {
  if (running_ || stopped_) {
    return;  // the previous round is still running
  }
  running_ = true;
  resolving_ = 0;
  for (auto& entry : entries_) {
    if (!entry->numeric) {
      ++resolving_;
    }
  }
  if (resolving_ == 0) {
    probeTargets();
    return;
  }
  for (auto& entry : entries_) {
    if (!entry->numeric) {
      resolve(*entry);
    }
  }
}

void CapabilityProbe::stop() {
  stopped_ = true;
  for (auto& entry : entries_) {
    if (entry->resolving) {
      // Fails for a request the thread pool runs already: its callback comes, and is ignored.
      static_cast<void>(uv_cancel(reinterpret_cast<uv_req_t*>(&entry->request)));
    }
  }
  for (auto& target : targets_) {
    if (target->connection != nullptr) {
      std::exchange(target->connection, nullptr)->detachAndClose();
    }
  }
}

std::string CapabilityProbe::lastProblem() const {
  return *problem_.load();
}

void CapabilityProbe::resolve(Entry& entry) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  entry.resolving = true;
  const int rc = uv_getaddrinfo(
      loop_, &entry.request,
      [](uv_getaddrinfo_t* request, int status, addrinfo* result) {
        auto* self = static_cast<Entry*>(request->data);
        self->owner->onResolved(*self, status, result);
      },
      entry.configured.host.c_str(), nullptr, &hints);
  if (rc != 0) {
    onResolved(entry, rc, nullptr);
  }
}

void CapabilityProbe::onResolved(Entry& entry, int status, addrinfo* result) {
  entry.resolving = false;
  const std::vector<config::Endpoint> found =
      status == 0 ? addressesOf(result, entry.configured.port) : std::vector<config::Endpoint>{};
  uv_freeaddrinfo(result);  // null is fine
  if (stopped_) {
    return;
  }
  const std::string name = entry.configured.toString();
  if (found.empty()) {
    const std::string why = status != 0 ? uv_strerror(status) : "no IPv4 or IPv6 address";
    if (entry.problem.empty()) {
      // A name that stops resolving keeps its last addresses: a DNS hiccup is not an outage.
      log::warning("backend name " + name + " does not resolve: " + why +
                   (entry.addresses.empty()
                        ? std::string()
                        : "; keeping its last addresses (" + joined(entry.addresses) + ")"));
    }
    entry.problem = why;
  } else {
    if (found != entry.addresses || !entry.problem.empty()) {
      log::info("backend name " + name + " resolves to " + joined(found));
    }
    entry.addresses = found;
    entry.problem.clear();
  }
  if (CERTRELAY_ASSERT(resolving_ > 0) && --resolving_ == 0) {
    probeTargets();
  }
}

void CapabilityProbe::probeTargets() {
  std::vector<std::unique_ptr<Target>> next;
  for (const auto& entry : entries_) {
    for (const config::Endpoint& address : entry->addresses) {
      const std::string text = address.toString();
      const auto same = [&](const std::unique_ptr<Target>& t) {
        return t != nullptr && t->state.address.toString() == text;
      };
      if (std::any_of(next.begin(), next.end(), same)) {
        continue;  // two names for one address: probed and used once
      }
      auto known = std::find_if(targets_.begin(), targets_.end(), same);
      if (known != targets_.end()) {
        next.push_back(std::move(*known));  // keeps its health and capabilities
      } else {
        next.push_back(std::make_unique<Target>());
        next.back()->owner = this;
        next.back()->state.address = address;
      }
      next.back()->state.name = entry->configured.toString();
      next.back()->state.host = entry->configured.host;
    }
  }
  targets_ = std::move(next);  // the rest are no longer resolved: no probe runs on them
  publish();
  probing_ = targets_.size();
  if (probing_ == 0) {
    running_ = false;
    return;
  }
  for (auto& target : targets_) {
    target->connection = BackendConnection::start(
        loop_, *shared_.config, target.get(), BackendConnection::Mode::Probe,
        {BackendAddress{target->state.address, target->state.host}}, {}, "probe",
        shared_.metrics.get(), nullptr, shared_.backendTls.load());
  }
}

config::IdentityMode CapabilityProbe::handoffInForce(const smtp::Capabilities& capabilities,
                                                     const std::string& address) {
  config::IdentityMode inForce = shared_.identityInForce.load();
  if (inForce == config::IdentityMode::Auto) {
    // "auto" is resolved once, at the first answer, and kept: a backend that does not offer
    // XCLIENT (later, or another one) must fail sessions closed, never downgrade them.
    const smtp::HandoffChoice choice =
        smtp::chooseIdentityHandoff(config::IdentityMode::Auto, capabilities);
    inForce = modeOf(choice.handoff);
    shared_.identityInForce.store(inForce);
    if (const std::string warning = smtp::autoHandoffWarning(choice, capabilities, address);
        !warning.empty()) {
      log::warning(warning);
    }
  }
  return inForce;
}

void CapabilityProbe::Target::onBackendReady(const smtp::Capabilities& capabilities) {
  owner->probeAnswered(*this, capabilities);
}

void CapabilityProbe::Target::onBackendFailure(BackendFailure failure, const std::string& detail) {
  connection = nullptr;  // closing, owns itself
  owner->probeFailed(*this, failure, detail);
}

void CapabilityProbe::probeAnswered(Target& target, const smtp::Capabilities& capabilities) {
  std::exchange(target.connection, nullptr)->detachAndClose();  // QUIT
  answered_ = true;
  target.unjudged = capabilities;
  judgeAnswers();
  probeDone();
}

void CapabilityProbe::judgeAnswers() {
  if (shared_.identityInForce.load() == config::IdentityMode::Auto) {
    for (const auto& target : targets_) {
      if (target->unjudged) {
        handoffInForce(*target->unjudged, target->state.address.toString());
        break;
      }
      if (target->connection != nullptr) {
        return;  // an earlier backend has not answered yet
      }
    }
    if (shared_.identityInForce.load() == config::IdentityMode::Auto) {
      return;  // nobody answered yet
    }
  }
  for (const auto& target : targets_) {
    if (target->unjudged) {
      const smtp::Capabilities capabilities = std::move(*target->unjudged);
      target->unjudged.reset();
      judge(*target, capabilities);
    }
  }
}

void CapabilityProbe::judge(Target& target, const smtp::Capabilities& capabilities) {
  const std::string address = target.state.address.toString();
  target.state.capabilities = std::make_shared<const smtp::Capabilities>(capabilities);
  const bool automatic = shared_.config->backend.identity == config::IdentityMode::Auto;
  const config::IdentityMode inForce = handoffInForce(capabilities, address);
  const std::string handoff = resolveHandoff(inForce, automatic, capabilities);
  const BackendHealth health = handoff.empty() ? BackendHealth::Unfit : BackendHealth::Healthy;
  const std::string mode =
      std::string(config::identityModeKeyword(inForce)) + (automatic ? ", resolved from auto" : "");
  if (health != target.state.health || handoff != target.handoff) {
    if (health == BackendHealth::Unfit) {
      log::error(
          "backend " + address + " " +
          (target.state.health == BackendHealth::Healthy ? "no longer offers" : "does not offer") +
          " the identity hand-off in force (" + mode + "); it gets no session until it does");
    } else {
      log::info("backend " + address + " answered the capability probe; identity hand-off: " +
                handoff + (capabilities.chunking ? ", CHUNKING relayed" : ""));
    }
  }
  target.state.health = health;
  target.state.problem =
      handoff.empty() ? "does not offer the identity hand-off in force (" + mode + ")" : "";
  target.handoff = handoff;
}

void CapabilityProbe::probeFailed(Target& target, BackendFailure failure,
                                  const std::string& detail) {
  // It answered, but without the STARTTLS backend.tls requires: unfit, as for a missing hand-off
  // (no session goes there; at start-up, the proxy refuses to start).
  const bool unfit = failure == BackendFailure::TlsNotOffered;
  const BackendHealth health = unfit ? BackendHealth::Unfit : BackendHealth::Down;
  if (unfit && starttlsMissing_.empty()) {
    starttlsMissing_ =
        "backend " + target.state.address.toString() + " does not offer STARTTLS (" + detail + ")";
  }
  if (target.state.health != health) {
    log::line(unfit ? log::Level::Error : log::Level::Warning, "",
              "backend probe " + target.state.address.toString() + " " + toString(failure) + ": " +
                  detail);
  }
  target.state.health = health;
  target.state.problem = std::string(toString(failure)) + ": " + detail;
  judgeAnswers();  // a later backend's answer may have waited for this one
  probeDone();
}

void CapabilityProbe::probeDone() {
  publish();
  if (CERTRELAY_ASSERT(probing_ > 0) && --probing_ == 0) {
    running_ = false;
  }
}

void CapabilityProbe::publish() {
  auto set = std::make_shared<BackendSet>();
  std::vector<std::pair<std::string, bool>> up;
  for (const auto& target : targets_) {
    set->targets.push_back(target->state);
    up.emplace_back(target->state.address.toString(),
                    target->state.health == BackendHealth::Healthy);
  }
  for (const auto& entry : entries_) {
    if (entry->addresses.empty() && !entry->problem.empty()) {
      set->unresolved.push_back(entry->configured.toString() +
                                " does not resolve: " + entry->problem);
    }
  }
  const bool anyHealthy = set->healthyCount() > 0;
  if (auto common = commonCapabilities(*set)) {
    shared_.backendCapabilities.store(std::move(common));
  }
  std::string problem;
  if (!anyHealthy) {
    problem = "no healthy backend";
    for (const BackendTarget& target : set->targets) {
      problem += "; " + target.address.toString() + " " +
                 (target.problem.empty() ? toString(target.health) : target.problem);
    }
    for (const std::string& name : set->unresolved) {
      problem += "; " + name;
    }
  }
  shared_.backends.store(std::move(set));
  // Readiness first, the log line after: whoever reads the line sees the state it reports.
  problem_.store(std::make_shared<const std::string>(problem));
  if (shared_.metrics) {
    shared_.metrics->setBackendUp(anyHealthy);
    shared_.metrics->setBackendAddresses(up);
  }
}

}  // namespace certrelay::proxy
