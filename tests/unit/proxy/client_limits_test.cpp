// ClientLimits: counting per key, summed across workers, with windows on an injected clock, slot
// reuse, exemptions and what happens when a probe sequence is full.

#include "proxy/client_limits.h"

#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

namespace certrelay::proxy {
namespace {

using std::chrono::milliseconds;

const std::vector<std::string> kNoExempt;

TEST_SUITE("client_limits") {
  TEST_CASE("concurrent connections: counted per address until disconnect") {
    ClientLimits limits(1, milliseconds(60'000), kNoExempt);
    const auto a = limits.connect(0, "192.0.2.1", 1000);
    const auto b = limits.connect(0, "192.0.2.1", 1001);
    const auto other = limits.connect(0, "192.0.2.2", 1002);
    CHECK(a.concurrent == 1);
    CHECK(b.concurrent == 2);
    CHECK(other.concurrent == 1);
    limits.disconnect(0, a.slot);
    CHECK(limits.connect(0, "192.0.2.1", 1003).concurrent == 2);
  }

  TEST_CASE("connection rate: a fixed window that restarts at the first event after it") {
    ClientLimits limits(1, milliseconds(1000), kNoExempt);
    auto c = limits.connect(0, "192.0.2.1", 10'000);
    limits.disconnect(0, c.slot);
    CHECK(c.rate == 1);
    c = limits.connect(0, "192.0.2.1", 10'500);
    limits.disconnect(0, c.slot);
    CHECK(c.rate == 2);
    c = limits.connect(0, "192.0.2.1", 10'999);
    limits.disconnect(0, c.slot);
    CHECK(c.rate == 3);
    // 1000 ms after the window's first event: a new window.
    c = limits.connect(0, "192.0.2.1", 11'000);
    CHECK(c.rate == 1);
    CHECK(c.concurrent == 1);
  }

  TEST_CASE("messages and recipients: identities and addresses are different keys") {
    ClientLimits limits(1, milliseconds(60'000), kNoExempt);
    CHECK(limits.count(0, RateCounter::Message, true, "relay.example", 5) == 1);
    CHECK(limits.count(0, RateCounter::Message, true, "relay.example", 6) == 2);
    CHECK(limits.count(0, RateCounter::Message, false, "relay.example", 7) == 1);
    CHECK(limits.count(0, RateCounter::Recipient, true, "relay.example", 8) == 1);
    CHECK(limits.count(0, RateCounter::Message, true, "other.example", 9) == 1);
    CHECK(limits.count(0, RateCounter::Message, true, "relay.example", 60'005) == 1);
  }

  TEST_CASE("sums across workers: each worker counts in its own table") {
    ClientLimits limits(3, milliseconds(60'000), kNoExempt);
    const auto a = limits.connect(0, "192.0.2.1", 100);
    const auto b = limits.connect(1, "192.0.2.1", 100);
    const auto c = limits.connect(2, "192.0.2.1", 101);
    CHECK(a.concurrent == 1);
    CHECK(b.concurrent == 2);
    CHECK(c.concurrent == 3);
    CHECK(c.rate == 3);
    limits.disconnect(1, b.slot);
    CHECK(limits.connect(0, "192.0.2.1", 102).concurrent == 3);
    CHECK(limits.count(2, RateCounter::Message, true, "id", 100) == 1);
    CHECK(limits.count(1, RateCounter::Message, true, "id", 100) == 2);
    // A worker's window that has passed no longer counts in the others' sums.
    CHECK(limits.count(0, RateCounter::Message, true, "id", 60'100) == 1);
  }

  TEST_CASE("slot reuse: an idle key whose windows passed gives its slot up") {
    // One probe sequence's worth of slots: the 17th key must reuse an expired one.
    ClientLimits limits(1, milliseconds(1000), kNoExempt, ClientLimits::kProbe);
    for (int i = 0; i < static_cast<int>(ClientLimits::kProbe); ++i) {
      CHECK(limits.count(0, RateCounter::Message, false, "k" + std::to_string(i), 0) == 1);
    }
    CHECK(limits.count(0, RateCounter::Message, false, "late", 500) == 0);  // all in window
    CHECK(limits.tableFull() == 1);
    CHECK(limits.count(0, RateCounter::Message, false, "late", 1000) == 1);
    CHECK(limits.count(0, RateCounter::Message, false, "late", 1001) == 2);
  }

  TEST_CASE("table full: an open connection keeps its slot, the newcomer is not counted") {
    ClientLimits limits(1, milliseconds(1000), kNoExempt, ClientLimits::kProbe);
    std::vector<ClientLimits::Connected> open;
    open.reserve(ClientLimits::kProbe);
    for (int i = 0; i < static_cast<int>(ClientLimits::kProbe); ++i) {
      open.push_back(limits.connect(0, "198.51.100." + std::to_string(i), 0));
    }
    // Long after every window: the connections still hold their slots.
    const auto refused = limits.connect(0, "203.0.113.1", 100'000);
    CHECK(refused.slot == -1);
    CHECK(refused.concurrent == 0);
    limits.disconnect(0, refused.slot);  // harmless
    limits.disconnect(0, open.front().slot);
    CHECK(limits.connect(0, "203.0.113.1", 100'001).concurrent == 1);
  }

  TEST_CASE("exempt networks: loopback by CIDR, IPv4-mapped addresses as IPv4") {
    ClientLimits limits(1, milliseconds(1000), {"127.0.0.0/8", "::1/128", "10.1.0.0/16"});
    CHECK(limits.exempt("127.0.0.1"));
    CHECK(limits.exempt("::1"));
    CHECK(limits.exempt("::ffff:10.1.2.3"));
    CHECK_FALSE(limits.exempt("10.2.0.1"));
    CHECK_FALSE(limits.exempt("2001:db8::1"));
  }

  TEST_CASE("concurrent writers and readers: every count is seen, nothing lost") {
    constexpr unsigned kWorkers = 4;
    constexpr int kEach = 2000;
    ClientLimits limits(kWorkers, milliseconds(3'600'000), kNoExempt, 256);
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < kWorkers; ++w) {
      threads.emplace_back([&limits, w] {
        for (int i = 0; i < kEach; ++i) {
          // Other keys churn through the same small table meanwhile.
          (void)limits.count(w, RateCounter::Recipient, false, "churn" + std::to_string(i % 50), 1);
          (void)limits.count(w, RateCounter::Message, true, "shared", 1);
        }
      });
    }
    for (auto& thread : threads) {
      thread.join();
    }
    CHECK(limits.count(0, RateCounter::Message, true, "shared", 2) == kWorkers * kEach + 1);
  }
}

}  // namespace
}  // namespace certrelay::proxy
