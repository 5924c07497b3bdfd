#include "proxy/watched_material.h"

#include <ctime>
#include <functional>

#include "proxy/log.h"
#include "proxy/metrics.h"
#include "tls/client_context.h"
#include "tls/context.h"
#include "tls/material.h"

namespace certrelay::proxy {
namespace {

// certrelay_reloads_total{material,result} and the last success's time.
std::function<void(bool)> countLoads(SharedState& shared, const char* material) {
  return [&shared, material](bool ok) {
    if (shared.metrics) {
      shared.metrics->countReload(material, ok, std::time(nullptr));
    }
  };
}

}  // namespace

MaterialWatcher::Spec policyMaterial(SharedState& shared) {
  const config::Config& config = *shared.config;
  const config::Policy settings = config.policy;
  MaterialWatcher::Spec spec;
  spec.name = "policy";
  spec.subject = settings.fingerprints.string();
  spec.inForce = "the table";
  spec.files = {settings.fingerprints};
  spec.build = [settings](std::vector<std::string> contents) -> MaterialWatcher::Snapshot {
    return policy::buildPolicy(
        settings, policy::FingerprintTable::parse(contents.at(0), settings.fingerprints.string(),
                                                  settings.digest));
  };
  spec.publish = [&shared](const MaterialWatcher::Snapshot& snapshot) {
    auto policy = std::static_pointer_cast<const policy::Policy>(snapshot);
    if (shared.metrics) {
      shared.metrics->setPolicyEntries(policy->table.size());
    }
    shared.policy.store(std::move(policy));
  };
  spec.describe = [](const MaterialWatcher::Snapshot& snapshot) {
    return std::to_string(std::static_pointer_cast<const policy::Policy>(snapshot)->table.size()) +
           " entries";
  };
  spec.debounce = settings.reloadDebounce;
  spec.poll = settings.reloadPollInterval;
  spec.loaded = countLoads(shared, "policy");
  return spec;
}

MaterialWatcher::Spec tlsMaterial(SharedState& shared) {
  const config::Config& config = *shared.config;
  const config::Tls settings = config.tls;
  const config::FingerprintDigest digest = config.policy.digest;
  MaterialWatcher::Spec spec;
  spec.name = "tls";
  spec.inForce = "the certificates";
  spec.files = tls::materialPaths(settings);
  spec.build = [settings, digest](std::vector<std::string> contents) -> MaterialWatcher::Snapshot {
    tls::Material material = tls::materialFromContents(settings, std::move(contents));
    const tls::SecretsWiper wiper(material);
    return tls::Context::create(settings, material, digest);
  };
  spec.publish = [&shared](const MaterialWatcher::Snapshot& snapshot) {
    auto context = std::static_pointer_cast<const tls::Context>(snapshot);
    for (const auto& warning : context->warnings()) {
      log::warning("tls: " + warning);
    }
    if (shared.metrics) {
      shared.metrics->setCertificateNotAfter(context->notAfter());
    }
    // The generation replaced can no longer be resumed on (new connections start on the new
    // one): its cached sessions would only hold memory on top of the new generation's budget.
    if (const auto previous = shared.tls.exchange(std::move(context))) {
      previous->retire();
    }
  };
  spec.describe = [](const MaterialWatcher::Snapshot& snapshot) {
    return std::static_pointer_cast<const tls::Context>(snapshot)->summary();
  };
  spec.debounce = config.policy.reloadDebounce;
  spec.poll = config.policy.reloadPollInterval;
  spec.loaded = countLoads(shared, "tls");
  return spec;
}

MaterialWatcher::Spec backendTlsMaterial(SharedState& shared) {
  const config::Config& config = *shared.config;
  const config::BackendTls settings = config.backend.tls;
  MaterialWatcher::Spec spec;
  spec.name = "backend_tls";
  spec.inForce = "the backend CA and client certificate";
  spec.files = tls::clientMaterialPaths(settings);
  spec.build = [settings](std::vector<std::string> contents) -> MaterialWatcher::Snapshot {
    tls::ClientMaterial material = tls::clientMaterialFromContents(settings, std::move(contents));
    const tls::ClientSecretsWiper wiper(material);
    return tls::ClientContext::create(material);
  };
  spec.publish = [&shared](const MaterialWatcher::Snapshot& snapshot) {
    auto context = std::static_pointer_cast<const tls::ClientContext>(snapshot);
    for (const auto& warning : context->warnings()) {
      log::warning("backend_tls: " + warning);
    }
    shared.backendTls.store(std::move(context));
  };
  spec.describe = [](const MaterialWatcher::Snapshot& snapshot) {
    return std::static_pointer_cast<const tls::ClientContext>(snapshot)->summary();
  };
  spec.debounce = config.policy.reloadDebounce;
  spec.poll = config.policy.reloadPollInterval;
  spec.loaded = countLoads(shared, "backend_tls");
  return spec;
}

}  // namespace certrelay::proxy
