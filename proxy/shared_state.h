#pragma once
// What every worker reads: published as immutable snapshots behind atomic shared_ptrs, so a
// reload (or a fresh capability probe) swaps a pointer and no lock is ever taken on the data path.

#include <atomic>
#include <cstddef>
#include <memory>

#include "config/config.h"
#include "policy/relay_policy.h"
#include "proxy/backend_set.h"
#include "proxy/client_limits.h"
#include "proxy/smtp/capabilities.h"
#include "tls/client_context.h"
#include "tls/context.h"

namespace certrelay::proxy {

class Metrics;

struct SharedState {
  std::shared_ptr<const config::Config> config;
  // The TLS generation a new session starts with (a session keeps the one it started with).
  std::atomic<std::shared_ptr<const tls::Context>> tls;
  // The backend hop's TLS generation (backend.tls): null when backend.tls is "none". A backend
  // connection keeps the one it started with (and its session cache).
  std::atomic<std::shared_ptr<const tls::ClientContext>> backendTls;
  std::atomic<std::shared_ptr<const policy::Policy>> policy;
  // What every healthy backend announced to the proxy at its last probe (their intersection,
  // backend_set.h): what clients are offered. Null until a backend answered once; kept while
  // none is healthy.
  std::atomic<std::shared_ptr<const smtp::Capabilities>> backendCapabilities;
  // The identity hand-off sessions use: backend.identity, except that "auto" is replaced by
  // what it resolved to at the first answered probe and kept from then on, so a backend that
  // stops offering XCLIENT fails sessions closed instead of silently seeing the proxy's address.
  std::atomic<config::IdentityMode> identityInForce{config::IdentityMode::Auto};
  // Every resolved backend address and its health (the probe's last findings); null until the
  // first resolution. Sessions choose the addresses they try from it (connectOrder).
  std::atomic<std::shared_ptr<const BackendSet>> backends;
  // Open client connections across all workers (limits.max_connections).
  std::atomic<std::size_t> connections{0};
  // Backend connections of sessions (not the probe's), open or still closing
  // (backend.max_connections).
  std::atomic<std::size_t> backendSessions{0};
  // The anvil-style per-client counts (limits.client_*); null when every one of them is 0.
  std::unique_ptr<ClientLimits> clientLimits;
  // The process's metrics (proxy/metrics.h): set once before the workers start, never replaced.
  // Null where nobody counts (unit tests); every user tolerates that.
  std::shared_ptr<Metrics> metrics;
};

}  // namespace certrelay::proxy
