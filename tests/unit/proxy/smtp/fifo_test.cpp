// proxy/smtp/fifo: FIFO order, push_front, no storage while empty, bounded by live elements.

#include "proxy/smtp/fifo.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <string>

namespace certrelay::smtp {

TEST_CASE("fifo: elements leave in the order they came, push_front goes first") {
  Fifo<std::string> q;
  CHECK(q.empty());
  q.push_back("b");
  q.push_back("c");
  q.push_front("a");
  REQUIRE(q.size() == 3);
  CHECK(q.front() == "a");
  CHECK(q.back() == "c");
  CHECK(q[1] == "b");
  std::string seen;
  for (const auto& s : q) {
    seen += s;
  }
  CHECK(seen == "abc");
  q.pop_front();
  q.push_front("z");  // reuses the consumed slot
  CHECK(q.front() == "z");
  q.pop_front();
  q.pop_front();
  q.pop_front();
  CHECK(q.empty());
}

TEST_CASE("fifo: behaves like std::deque under a random mix of operations") {
  std::mt19937 rng(20261121);
  Fifo<int> q;
  std::deque<int> ref;
  for (int step = 0; step < 20000; ++step) {
    const auto op = rng() % 10;
    if (op < 5) {
      q.push_back(step);
      ref.push_back(step);
    } else if (op == 5) {
      q.push_front(-step);
      ref.push_front(-step);
    } else if (!ref.empty()) {
      CHECK(q.front() == ref.front());
      q.pop_front();
      ref.pop_front();
    }
    REQUIRE(q.size() == ref.size());
    if (!ref.empty()) {
      REQUIRE(q.front() == ref.front());
      REQUIRE(q.back() == ref.back());
    }
  }
  CHECK(std::equal(q.begin(), q.end(), ref.begin(), ref.end()));
}

// The point of the class (fifo.h): an idle session's empty queues hold no heap memory.
TEST_CASE("fifo: holds no storage while empty, and gives it back once emptied") {
  Fifo<std::string> q;
  CHECK(q.capacity() == 0);
  for (int i = 0; i < 100; ++i) {
    q.push_back(std::string(100, 'x'));
  }
  CHECK(q.capacity() >= 100);
  while (!q.empty()) {
    q.pop_front();
  }
  CHECK(q.capacity() == 0);
  q.push_back("y");
  q.clear();
  CHECK(q.capacity() == 0);
}

TEST_CASE("fifo: a queue that never empties stays bounded by its live elements") {
  Fifo<int> q;
  q.push_back(0);
  for (int i = 1; i < 100000; ++i) {
    q.push_back(i);
    q.pop_front();
    REQUIRE(q.size() == 1);
    REQUIRE(q.front() == i);
    REQUIRE(q.capacity() <= 128);
  }
}

}  // namespace certrelay::smtp
