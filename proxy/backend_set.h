#pragma once
// The backends sessions may use, as the capability probe last found them: every resolved
// address of backend.address / backend.addresses, its health and what it offered. Published by
// the probe (main loop) as an immutable snapshot (SharedState::backends); the workers only read
// it, to choose the addresses a new backend connection tries (connectOrder).
//
// Security role: a backend that does not offer the identity hand-off in force is Unfit and gets
// no session: never a backend with a weaker hand-off than the one in force.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/smtp/capabilities.h"

namespace certrelay::proxy {

enum class BackendHealth : std::uint8_t {
  Unknown,  // resolved, not probed yet
  Healthy,  // answered its last probe and offers the identity hand-off in force
  Down,     // its last probe failed (refused, unreachable, timeout, greeting refused)
  Unfit,    // answered, but does not offer the identity hand-off in force: never used
};

const char* toString(BackendHealth health);

struct BackendTarget {
  config::Endpoint address;  // numeric
  std::string name;          // the configured entry it was resolved from ("mx.example:25")
  // That entry's host: a name, or the address itself. What backend.tls verifies the backend's
  // certificate against when backend.tls_server_name is not set.
  std::string host;
  BackendHealth health = BackendHealth::Unknown;
  std::string problem;  // why it is not Healthy ("" when it is)
  // What it offered at its last answered probe; null until it answered once.
  std::shared_ptr<const smtp::Capabilities> capabilities;
};

// One address a backend connection may use, and the host it was configured as (BackendTarget).
struct BackendAddress {
  config::Endpoint address;  // numeric
  std::string host;          // a name, or address.host

  bool operator==(const BackendAddress&) const = default;
};

struct BackendSet {
  // In the configured order; the addresses of one name in the resolver's order.
  std::vector<BackendTarget> targets;
  // Configured names without any address: "nonexistent.invalid:25 does not resolve: <why>".
  std::vector<std::string> unresolved;

  [[nodiscard]] std::size_t healthyCount() const;
};

// The addresses a new backend connection tries, in order (each one is tried once; a failure to
// connect or a refused greeting moves on to the next). First the healthy targets: in the
// configured order for First, rotated by `turn` (a per-worker counter) for RoundRobin. Then, as a
// last resort, the Unknown and Down ones in the configured order (a backend that came back is
// used before the next probe notices it; one that is still down costs a refused connect). Unfit
// targets only when none is healthy, last: the hand-off is checked again on every connection, so
// such a connection fails closed before any command of the client's, and the client hears the
// configuration error (421) rather than a generic 4xx.
[[nodiscard]] std::vector<BackendAddress> connectOrder(const BackendSet& set,
                                                       config::BalanceMode balance,
                                                       std::uint64_t turn);

// What every healthy target offers (the intersection: a client may use an extension only if
// whichever backend its session goes to has it); null when none is healthy.
[[nodiscard]] std::shared_ptr<const smtp::Capabilities> commonCapabilities(const BackendSet& set);

}  // namespace certrelay::proxy
