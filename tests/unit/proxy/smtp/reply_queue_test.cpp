#include "proxy/smtp/reply_queue.h"

#include <doctest/doctest.h>

#include <string>

namespace certrelay::smtp {
namespace {

TEST_SUITE("smtp") {
  TEST_CASE("reply queue: empty queue drains nothing") {
    ReplyQueue q;
    std::string out;
    CHECK(q.empty());
    CHECK_FALSE(q.drain(out));
    CHECK(out.empty());
    CHECK(q.unfilled() == 0);
  }

  TEST_CASE("reply queue: ready slots drain in push order") {
    ReplyQueue q;
    q.pushReady("250 a\r\n");
    q.pushReady("250 b\r\n");
    CHECK(q.size() == 2);
    std::string out;
    CHECK_FALSE(q.drain(out));
    CHECK(out == "250 a\r\n250 b\r\n");
    CHECK(q.empty());
  }

  TEST_CASE("reply queue: a reserved slot at the front holds back later ready replies") {
    ReplyQueue q;
    const auto mail = q.reserve();              // MAIL forwarded
    q.pushReady("454 4.7.1 relay denied\r\n");  // RCPT refused locally
    const auto rcpt2 = q.reserve();             // RCPT forwarded
    std::string out;
    CHECK_FALSE(q.drain(out));
    CHECK(out.empty());
    CHECK(q.unfilled() == 2);

    REQUIRE(q.fill(rcpt2, "250 2.1.5 Ok\r\n"));
    CHECK_FALSE(q.drain(out));
    CHECK(out.empty());  // still behind MAIL

    REQUIRE(q.fill(mail, "250 2.1.0 Ok\r\n"));
    CHECK_FALSE(q.drain(out));
    CHECK(out == "250 2.1.0 Ok\r\n454 4.7.1 relay denied\r\n250 2.1.5 Ok\r\n");
    CHECK(q.empty());
  }

  TEST_CASE("reply queue: partial drain stops at the first unfilled slot") {
    ReplyQueue q;
    q.pushReady("250 1\r\n");
    const auto t2 = q.reserve();
    q.pushReady("250 3\r\n");
    std::string out;
    CHECK_FALSE(q.drain(out));
    CHECK(out == "250 1\r\n");
    CHECK(q.size() == 2);
    REQUIRE(q.fill(t2, "250 2\r\n"));
    out.clear();
    CHECK_FALSE(q.drain(out));
    CHECK(out == "250 2\r\n250 3\r\n");
  }

  TEST_CASE("reply queue: LM-04 mixed accept/reject pipeline keeps command order") {
    ReplyQueue q;
    const auto mail = q.reserve();
    q.pushReady("454 4.7.1 <r@remote.example>: Relay access denied\r\n");
    const auto rcpt = q.reserve();
    const auto data = q.reserve();
    std::string out;
    // Backend replies arrive in order, each drained as it comes.
    REQUIRE(q.fill(mail, "250 2.1.0 Ok\r\n"));
    CHECK_FALSE(q.drain(out));
    CHECK(out == "250 2.1.0 Ok\r\n454 4.7.1 <r@remote.example>: Relay access denied\r\n");
    REQUIRE(q.fill(rcpt, "250 2.1.5 Ok\r\n"));
    REQUIRE(q.fill(data, "354 End data with <CR><LF>.<CR><LF>\r\n"));
    CHECK_FALSE(q.drain(out));
    CHECK(out ==
          "250 2.1.0 Ok\r\n454 4.7.1 <r@remote.example>: Relay access denied\r\n"
          "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  }

  TEST_CASE("reply queue: fills in reverse order still drain in ticket order") {
    ReplyQueue q;
    ReplyQueue::Ticket t[6];
    for (int i = 0; i < 6; ++i) {
      t[i] = q.reserve();
    }
    std::string out;
    for (int i = 5; i >= 0; --i) {
      REQUIRE(q.fill(t[i], std::string("250 ") + static_cast<char>('0' + i) + "\r\n"));
      CHECK_FALSE(q.drain(out));
      if (i > 0) {
        CHECK(out.empty());
      }
    }
    CHECK(out == "250 0\r\n250 1\r\n250 2\r\n250 3\r\n250 4\r\n250 5\r\n");
  }

  TEST_CASE("reply queue: closeAfter stops draining, now and later") {
    ReplyQueue q;
    q.pushReady("250 a\r\n");
    const auto t = q.reserve();
    q.pushReady("250 c\r\n");
    REQUIRE(q.fill(t, "421 4.3.0 bye\r\n", true));
    std::string out;
    CHECK(q.drain(out));
    CHECK(out == "250 a\r\n421 4.3.0 bye\r\n");
    CHECK(q.size() == 1);
    q.pushReady("250 d\r\n");
    CHECK(q.drain(out));
    CHECK(out == "250 a\r\n421 4.3.0 bye\r\n");
  }

  TEST_CASE("reply queue: pushReady with closeAfter") {
    ReplyQueue q;
    q.pushReady("221 2.0.0 Bye\r\n", true);
    q.pushReady("250 never\r\n");
    std::string out;
    CHECK(q.drain(out));
    CHECK(out == "221 2.0.0 Bye\r\n");
  }

  TEST_CASE("reply queue: bogus tickets are refused") {
    ReplyQueue q;
    std::string out;
    CHECK_FALSE(q.fill(0, "250 x\r\n"));
    CHECK_FALSE(q.fill(1, "250 x\r\n"));  // nothing issued yet
    const auto ready = q.pushReady("250 r\r\n");
    const auto t = q.reserve();
    CHECK_FALSE(q.fill(ready, "250 x\r\n"));  // already filled
    CHECK_FALSE(q.fill(t + 1, "250 x\r\n"));  // not issued
    CHECK_FALSE(q.fill(t + 1000, "250 x\r\n"));
    REQUIRE(q.fill(t, "250 t\r\n"));
    CHECK_FALSE(q.fill(t, "250 again\r\n"));  // double fill
    CHECK_FALSE(q.drain(out));
    CHECK(out == "250 r\r\n250 t\r\n");
    CHECK_FALSE(q.fill(t, "250 late\r\n"));  // already drained
    CHECK_FALSE(q.fill(ready, "250 late\r\n"));
  }

  TEST_CASE("reply queue: tickets stay valid after earlier slots were drained") {
    ReplyQueue q;
    q.pushReady("250 1\r\n");
    std::string out;
    CHECK_FALSE(q.drain(out));
    const auto a = q.reserve();
    const auto b = q.reserve();
    q.pushReady("250 4\r\n");
    REQUIRE(q.fill(b, "250 3\r\n"));
    CHECK_FALSE(q.drain(out));
    CHECK(out == "250 1\r\n");
    REQUIRE(q.fill(a, "250 2\r\n"));
    CHECK_FALSE(q.drain(out));
    CHECK(out == "250 1\r\n250 2\r\n250 3\r\n250 4\r\n");
    CHECK(q.unfilled() == 0);
  }

  TEST_CASE("reply queue: tickets are unique and increasing") {
    ReplyQueue q;
    const auto a = q.pushReady("250 a\r\n");
    const auto b = q.reserve();
    const auto c = q.pushReady("250 c\r\n");
    CHECK(a < b);
    CHECK(b < c);
    CHECK(q.unfilled() == 1);
  }
}

}  // namespace
}  // namespace certrelay::smtp
