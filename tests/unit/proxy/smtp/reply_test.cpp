#include "proxy/smtp/reply.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace certrelay::smtp {
namespace {

using R = ReplyParser::Result;

std::vector<std::string> linesOf(std::initializer_list<const char*> lines) {
  return {lines.begin(), lines.end()};
}

TEST_SUITE("smtp") {
  TEST_CASE("reply: single line") {
    ReplyParser parser;
    parser.feed("250 2.1.0 Ok\r\n");
    Reply r;
    REQUIRE(parser.next(r) == R::Reply);
    CHECK(r.code == 250);
    CHECK(r.lines == linesOf({"2.1.0 Ok"}));
    CHECK(r.positive());
    CHECK(r.wire() == "250 2.1.0 Ok\r\n");
    CHECK(parser.next(r) == R::NeedMore);
    CHECK(parser.buffered() == 0);
  }

  TEST_CASE("reply: multi-line") {
    ReplyParser parser;
    parser.feed("250-mx.lab.example\r\n250-PIPELINING\r\n250 DSN\r\n354 go\r\n");
    Reply r;
    REQUIRE(parser.next(r) == R::Reply);
    CHECK(r.code == 250);
    CHECK(r.lines == linesOf({"mx.lab.example", "PIPELINING", "DSN"}));
    CHECK(r.wire() == "250-mx.lab.example\r\n250-PIPELINING\r\n250 DSN\r\n");
    CHECK(r.text() == "mx.lab.example PIPELINING DSN");
    REQUIRE(parser.next(r) == R::Reply);
    CHECK(r.code == 354);
    CHECK(r.positive());
  }

  TEST_CASE("reply: bare code and code with empty text") {
    ReplyParser parser;
    parser.feed("250\r\n250 \r\n250-x\r\n250 \r\n");
    Reply r;
    REQUIRE(parser.next(r) == R::Reply);
    CHECK(r.lines == linesOf({""}));
    CHECK(r.wire() == "250\r\n");
    REQUIRE(parser.next(r) == R::Reply);
    CHECK(r.lines == linesOf({""}));
    CHECK(r.wire() == "250\r\n");
    REQUIRE(parser.next(r) == R::Reply);  // smtp-sink's EHLO ends with "250 "
    CHECK(r.lines == linesOf({"x", ""}));
    CHECK(r.wire() == "250-x\r\n250\r\n");
  }

  TEST_CASE("reply: wire() of built replies") {
    Reply r;
    r.code = 451;
    CHECK(r.wire() == "451\r\n");
    CHECK_FALSE(r.positive());
    r.lines = linesOf({"", "4.3.0 Error"});
    CHECK(r.wire() == "451-\r\n451 4.3.0 Error\r\n");
  }

  TEST_CASE("reply: bare LF line ends from the backend") {
    ReplyParser parser;
    parser.feed("220-a\n220 b\n");
    Reply r;
    REQUIRE(parser.next(r) == R::Reply);
    CHECK(r.code == 220);
    CHECK(r.lines == linesOf({"a", "b"}));
  }

  TEST_CASE("reply: mismatched codes within one reply are Malformed, and it sticks") {
    ReplyParser parser;
    parser.feed("250-a\r\n251 b\r\n");
    Reply r;
    CHECK(parser.next(r) == R::Malformed);
    parser.feed("250 ok\r\n");
    CHECK(parser.next(r) == R::Malformed);
  }

  TEST_CASE("reply: garbage lines are Malformed") {
    const char* bad[] = {
        "hello\r\n", "25\r\n",     "2500 x\r\n",   "250x\r\n",      "150 x\r\n",
        "650 x\r\n", "050 x\r\n",  "2a0 x\r\n",    "25a x\r\n",     "\r\n",
        "250_x\r\n", " 250 x\r\n", "250 a\rb\r\n", "250 a\x01\r\n", "250-a\r\nxyz\r\n",
    };
    for (const char* b : bad) {
      CAPTURE(b);
      ReplyParser parser;
      parser.feed(b);
      Reply r;
      CHECK(parser.next(r) == R::Malformed);
    }
    ReplyParser parser;
    parser.feed(std::string("250 a\0b\r\n", 9));
    Reply r;
    CHECK(parser.next(r) == R::Malformed);
  }

  TEST_CASE("reply: tab and 8-bit text are tolerated") {
    ReplyParser parser;
    parser.feed("250 a\tb \xC3\xA9\r\n");
    Reply r;
    REQUIRE(parser.next(r) == R::Reply);
    CHECK(r.lines == linesOf({"a\tb \xC3\xA9"}));
  }

  TEST_CASE("reply: line over the cap is Malformed, with or without its LF") {
    {
      ReplyParser parser(16, 8);
      parser.feed("250 " + std::string(10, 'x') + "\r\n");  // exactly 16
      Reply r;
      CHECK(parser.next(r) == R::Reply);
      parser.feed("250 " + std::string(11, 'x') + "\r\n");  // 17
      CHECK(parser.next(r) == R::Malformed);
    }
    {
      ReplyParser parser(16, 8);
      parser.feed("250 " + std::string(11, 'x'));
      Reply r;
      CHECK(parser.next(r) == R::NeedMore);
      parser.feed("x");
      CHECK(parser.next(r) == R::Malformed);
      CHECK(parser.buffered() == 0);
    }
  }

  TEST_CASE("reply: more than maxLines lines is Malformed") {
    ReplyParser ok(2048, 3);
    ok.feed("250-a\r\n250-b\r\n250 c\r\n");
    Reply r;
    CHECK(ok.next(r) == R::Reply);
    ReplyParser parser(2048, 3);
    parser.feed("250-a\r\n250-b\r\n250-c\r\n250 d\r\n");
    CHECK(parser.next(r) == R::Malformed);
  }

  TEST_CASE("reply: split across feeds at every boundary gives the same replies") {
    const std::string wire =
        "250-mx.lab.example\r\n250-PIPELINING\n250 SIZE 10240000\r\n220 2.0.0 Ready\r\n";
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
      CAPTURE(cut);
      ReplyParser parser;
      std::vector<Reply> got;
      Reply r;
      parser.feed(wire.substr(0, cut));
      while (parser.next(r) == R::Reply) {
        got.push_back(r);
      }
      parser.feed(wire.substr(cut));
      R last;
      while ((last = parser.next(r)) == R::Reply) {
        got.push_back(r);
      }
      CHECK(last == R::NeedMore);
      REQUIRE(got.size() == 2);
      CHECK(got[0].code == 250);
      CHECK(got[0].lines == linesOf({"mx.lab.example", "PIPELINING", "SIZE 10240000"}));
      CHECK(got[1].code == 220);
      CHECK(got[1].lines == linesOf({"2.0.0 Ready"}));
    }
  }

  TEST_CASE("reply: byte by byte") {
    const std::string wire = "421-4.3.2 a\r\n421 4.3.2 b\r\n";
    ReplyParser parser;
    Reply r;
    int replies = 0;
    for (char c : wire) {
      parser.feed(std::string_view(&c, 1));
      if (parser.next(r) == R::Reply) {
        ++replies;
      }
    }
    CHECK(replies == 1);
    CHECK(r.wire() == wire);
  }
}

}  // namespace
}  // namespace certrelay::smtp
