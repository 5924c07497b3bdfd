// planDescriptors: what limits.max_connections needs against RLIMIT_NOFILE, refused when set in
// the file, lowered when left to its default.

#include "proxy/descriptor_budget.h"

#include <doctest/doctest.h>

namespace certrelay::proxy {
namespace {

config::Config withWorkers(unsigned workers) {
  config::Config config;
  config.workers = workers;
  config.listeners.resize(2);
  return config;
}

TEST_SUITE("descriptor_budget") {
  TEST_CASE("two descriptors per session plus an eighth and the process's own") {
    config::Config config = withWorkers(2);
    config.limits.maxConnections = 1000;
    const DescriptorBudget plan = planDescriptors(config, 1'000'000);
    CHECK(plan.error.empty());
    CHECK(plan.warning.empty());
    CHECK(plan.maxConnections == 1000);
    CHECK(plan.needed == plan.fixed + 1000 + 1000 + 125);
    CHECK(plan.fixed > 2 * 2);  // the loops and listeners of both workers at least
  }

  TEST_CASE("backend.max_connections bounds the backend descriptors") {
    config::Config config = withWorkers(1);
    config.limits.maxConnections = 1000;
    config.backend.maxConnections = 100;
    const DescriptorBudget plan = planDescriptors(config, 1'000'000);
    CHECK(plan.needed == plan.fixed + 1000 + 100 + 125);
  }

  TEST_CASE("a max_connections set in the file that does not fit refuses to start") {
    config::Config config = withWorkers(1);
    config.limits.maxConnections = 10'000;
    config.limits.maxConnectionsSet = true;
    const DescriptorBudget plan = planDescriptors(config, 4096);
    REQUIRE_FALSE(plan.error.empty());
    CHECK(plan.error.find("limits.max_connections = 10000") != std::string::npos);
    CHECK(plan.error.find("RLIMIT_NOFILE allows 4096") != std::string::npos);
    CHECK(plan.error.find("LimitNOFILE=") != std::string::npos);
  }

  TEST_CASE("the default max_connections is lowered to the largest count that fits") {
    config::Config config = withWorkers(1);
    const DescriptorBudget plan = planDescriptors(config, 4096);
    CHECK(plan.error.empty());
    REQUIRE_FALSE(plan.warning.empty());
    CHECK(plan.maxConnections < 10'000);
    CHECK(plan.needed <= 4096);
    // One more would not fit.
    config.limits.maxConnections = plan.maxConnections + 1;
    config.limits.maxConnectionsSet = true;
    CHECK_FALSE(planDescriptors(config, 4096).error.empty());
    CHECK(plan.warning.find("using " + std::to_string(plan.maxConnections)) != std::string::npos);
  }

  TEST_CASE("a limit below what the process needs for itself is an error even by default") {
    const config::Config config = withWorkers(4);
    const DescriptorBudget plan = planDescriptors(config, 32);
    CHECK_FALSE(plan.error.empty());
    CHECK(plan.error.find("RLIMIT_NOFILE allows 32") != std::string::npos);
  }

  TEST_CASE("the admin listener counts when configured") {
    config::Config config = withWorkers(1);
    const std::uint64_t without = planDescriptors(config, 1'000'000).fixed;
    config.admin.enabled = true;
    CHECK(planDescriptors(config, 1'000'000).fixed > without);
  }
}

}  // namespace
}  // namespace certrelay::proxy
