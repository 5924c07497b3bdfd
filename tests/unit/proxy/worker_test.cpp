// proxy/worker: session ids, which operators grep across the logs of every replica.

#include "proxy/worker.h"

#include <doctest/doctest.h>

#include <cctype>
#include <memory>
#include <set>
#include <string>

namespace certrelay::proxy {
namespace {

bool isUpperHex(const std::string& text) {
  for (const char c : text) {
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0 ||
        std::islower(static_cast<unsigned char>(c)) != 0) {
      return false;
    }
  }
  return true;
}

TEST_SUITE("proxy") {
  TEST_CASE("worker: session ids are 16 hex digits, unique in a worker and across processes") {
    SharedState shared;
    shared.config = std::make_shared<const config::Config>();
    // Two workers with the same index stand for the same worker of two replicas.
    Worker replicaA(3, shared, {});
    Worker replicaB(3, shared, {});
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
      const std::string id = replicaA.nextSessionId();
      CHECK(id.size() == 16);
      CHECK(isUpperHex(id));
      CHECK(id.substr(0, 2) == "03");
      CHECK(seen.insert(id).second);
    }
    // 32 random bits per worker: the same index and counter in another process differ.
    const std::string first = replicaB.nextSessionId();
    CHECK(first.substr(10) == "000001");
    CHECK(seen.count(first) == 0);
    CHECK(first.substr(2, 8) != std::string(*seen.begin()).substr(2, 8));
  }
}

}  // namespace
}  // namespace certrelay::proxy
