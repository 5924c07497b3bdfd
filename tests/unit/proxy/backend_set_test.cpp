// proxy/backend_set: which backend addresses a new connection tries, in which order, and what
// clients are offered when several backends answer. No network: snapshots built by hand.

#include "proxy/backend_set.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace certrelay::proxy {
namespace {

using config::BalanceMode;

BackendTarget target(const std::string& host, BackendHealth health) {
  BackendTarget t;
  t.address = config::Endpoint{host, 25};
  t.name = t.address.toString();
  t.health = health;
  return t;
}

BackendSet setOf(std::vector<BackendTarget> targets) {
  BackendSet set;
  set.targets = std::move(targets);
  return set;
}

std::vector<std::string> hosts(const std::vector<BackendAddress>& order) {
  std::vector<std::string> out;
  out.reserve(order.size());
  for (const auto& entry : order) {
    out.push_back(entry.address.host);
  }
  return out;
}

using Hosts = std::vector<std::string>;

TEST_SUITE("proxy") {
  TEST_CASE("backend set: first takes the healthy ones in the configured order") {
    const BackendSet set = setOf({target("10.0.0.1", BackendHealth::Healthy),
                                  target("10.0.0.2", BackendHealth::Healthy),
                                  target("10.0.0.3", BackendHealth::Healthy)});
    for (std::uint64_t turn = 0; turn < 5; ++turn) {
      CHECK(hosts(connectOrder(set, BalanceMode::First, turn)) ==
            Hosts{"10.0.0.1", "10.0.0.2", "10.0.0.3"});
    }
  }

  TEST_CASE("backend set: round_robin starts each turn at the next healthy one") {
    const BackendSet set =
        setOf({target("10.0.0.1", BackendHealth::Healthy), target("10.0.0.2", BackendHealth::Down),
               target("10.0.0.3", BackendHealth::Healthy)});
    // The down one is skipped in the rotation and kept as a last resort, after the healthy ones.
    CHECK(hosts(connectOrder(set, BalanceMode::RoundRobin, 0)) ==
          Hosts{"10.0.0.1", "10.0.0.3", "10.0.0.2"});
    CHECK(hosts(connectOrder(set, BalanceMode::RoundRobin, 1)) ==
          Hosts{"10.0.0.3", "10.0.0.1", "10.0.0.2"});
    CHECK(hosts(connectOrder(set, BalanceMode::RoundRobin, 2)) ==
          Hosts{"10.0.0.1", "10.0.0.3", "10.0.0.2"});
    int first = 0;
    for (std::uint64_t turn = 0; turn < 100; ++turn) {
      first += connectOrder(set, BalanceMode::RoundRobin, turn).front().address.host == "10.0.0.1";
    }
    CHECK(first == 50);  // spread evenly over the healthy ones
  }

  TEST_CASE("backend set: unhealthy backends are skipped, failover order keeps the config order") {
    const BackendSet set =
        setOf({target("10.0.0.1", BackendHealth::Down), target("10.0.0.2", BackendHealth::Unknown),
               target("10.0.0.3", BackendHealth::Healthy), target("10.0.0.4", BackendHealth::Unfit),
               target("10.0.0.5", BackendHealth::Healthy)});
    // Healthy first; then, as a last resort, the down and not yet probed ones; never the unfit
    // one while another is healthy.
    CHECK(hosts(connectOrder(set, BalanceMode::First, 7)) ==
          Hosts{"10.0.0.3", "10.0.0.5", "10.0.0.1", "10.0.0.2"});
  }

  TEST_CASE("backend set: with none healthy, the unfit ones come last and fail closed") {
    const BackendSet set =
        setOf({target("10.0.0.1", BackendHealth::Unfit), target("10.0.0.2", BackendHealth::Down)});
    CHECK(hosts(connectOrder(set, BalanceMode::RoundRobin, 1)) == Hosts{"10.0.0.2", "10.0.0.1"});
    CHECK(connectOrder(BackendSet{}, BalanceMode::First, 0).empty());  // nothing resolved
    CHECK(setOf({target("10.0.0.1", BackendHealth::Healthy)}).healthyCount() == 1);
  }

  TEST_CASE("backend set: each address carries the host it was configured as") {
    BackendTarget named = target("10.0.0.1", BackendHealth::Healthy);
    named.host = "mx.example";  // resolved from a name: backend.tls verifies that name
    BackendTarget numeric = target("10.0.0.2", BackendHealth::Down);
    numeric.host = "10.0.0.2";
    BackendTarget unset = target("10.0.0.3", BackendHealth::Unknown);  // host left empty
    const auto order = connectOrder(setOf({named, numeric, unset}), BalanceMode::First, 0);
    REQUIRE(order.size() == 3);
    CHECK(order[0] == BackendAddress{config::Endpoint{"10.0.0.1", 25}, "mx.example"});
    CHECK(order[1] == BackendAddress{config::Endpoint{"10.0.0.2", 25}, "10.0.0.2"});
    CHECK(order[2] == BackendAddress{config::Endpoint{"10.0.0.3", 25}, "10.0.0.3"});
  }

  TEST_CASE("backend set: clients are offered what every healthy backend offers") {
    smtp::Capabilities a;
    a.pipelining = true;
    a.size = 10'000'000;
    a.chunking = true;
    a.eightBitMime = true;
    a.xclient = true;
    a.xclientAttributes = {"ADDR", "NAME", "LOGIN"};
    smtp::Capabilities b = a;
    b.size = 5'000'000;
    b.chunking = false;
    b.xclientAttributes = {"ADDR", "NAME"};
    BackendTarget ta = target("10.0.0.1", BackendHealth::Healthy);
    ta.capabilities = std::make_shared<const smtp::Capabilities>(a);
    BackendTarget tb = target("10.0.0.2", BackendHealth::Healthy);
    tb.capabilities = std::make_shared<const smtp::Capabilities>(b);
    BackendTarget down = target("10.0.0.3", BackendHealth::Down);
    down.capabilities = std::make_shared<const smtp::Capabilities>();  // offers nothing

    const auto common = commonCapabilities(setOf({ta, tb, down}));
    REQUIRE(common != nullptr);
    CHECK(common->pipelining);
    CHECK(common->eightBitMime);
    CHECK_FALSE(common->chunking);
    CHECK(common->size == std::optional<std::uint64_t>(5'000'000));
    CHECK(common->xclientAttributes == std::set<std::string>{"ADDR", "NAME"});
    // Only the healthy ones count; none healthy: nothing to offer (the last set stays).
    CHECK(commonCapabilities(setOf({ta}))->chunking);
    CHECK(commonCapabilities(setOf({down})) == nullptr);
    // SIZE 0 (no fixed limit) gives way to a limit; a backend without SIZE drops it.
    b.size = 0;
    tb.capabilities = std::make_shared<const smtp::Capabilities>(b);
    CHECK(commonCapabilities(setOf({ta, tb}))->size == std::optional<std::uint64_t>(10'000'000));
    b.size.reset();
    tb.capabilities = std::make_shared<const smtp::Capabilities>(b);
    CHECK_FALSE(commonCapabilities(setOf({ta, tb}))->size.has_value());
  }
}

}  // namespace
}  // namespace certrelay::proxy
