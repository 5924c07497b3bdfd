#include "proxy/smtp/line_reader.h"

#include <doctest/doctest.h>

#include <string>

namespace certrelay::smtp {
namespace {

using R = LineReader::Result;

TEST_SUITE("smtp") {
  TEST_CASE("line reader: CRLF lines, several in one feed") {
    LineReader reader(512);
    reader.feed("EHLO a\r\nMAIL FROM:<x@y>\r\nRCPT");
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "EHLO a");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "MAIL FROM:<x@y>");
    CHECK(reader.next(line) == R::NeedMore);
    CHECK(reader.buffered() == 4);
    reader.feed(" TO:<u@v>\r\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "RCPT TO:<u@v>");
    CHECK(reader.next(line) == R::NeedMore);
    CHECK(reader.buffered() == 0);
  }

  TEST_CASE("line reader: bare LF ends a line") {
    LineReader reader(512);
    reader.feed("MAIL FROM:<a@x.example>\nNOOP\n");
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "MAIL FROM:<a@x.example>");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "NOOP");
  }

  TEST_CASE("line reader: bare CR stays in the line, only CR before LF is removed") {
    LineReader reader(512);
    reader.feed("RCPT TO:<u@local.example>\rNOOP\r\n");
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "RCPT TO:<u@local.example>\rNOOP");
    reader.feed("A\r\r\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "A\r");
    reader.feed("\r\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line.empty());
  }

  TEST_CASE("line reader: CR and LF split across feeds") {
    LineReader reader(512);
    reader.feed("NOOP\r");
    std::string line;
    CHECK(reader.next(line) == R::NeedMore);
    reader.feed("\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "NOOP");
  }

  TEST_CASE("line reader: exactly at the cap (CRLF included) is a line") {
    LineReader reader(512);
    const std::string body(510, 'a');
    reader.feed(body + "\r\n");
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == body);
    // Bare LF: 511 + 1.
    const std::string body2(511, 'b');
    reader.feed(body2 + "\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == body2);
  }

  TEST_CASE("line reader: cap + 1 (513 with cap 512) is TooLong, then the next line") {
    LineReader reader(512);
    reader.feed(std::string(511, 'a') + "\r\nNOOP\r\n");
    std::string line = "untouched";
    CHECK(reader.next(line) == R::TooLong);
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "NOOP");
  }

  TEST_CASE("line reader: TooLong is reported before the LF arrives, once") {
    LineReader reader(512);
    std::string line;
    reader.feed(std::string(511, 'a'));
    CHECK(reader.next(line) == R::NeedMore);
    reader.feed("a");
    CHECK(reader.next(line) == R::TooLong);
    CHECK(reader.buffered() == 0);
    reader.feed(std::string(1000, 'a'));
    CHECK(reader.next(line) == R::NeedMore);
    CHECK(reader.buffered() == 0);
    reader.feed("tail\r\nQUIT\r\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "QUIT");
  }

  TEST_CASE("line reader: 1 MiB without LF in 4 KiB pieces stays bounded") {
    LineReader reader(512);
    const std::string piece(4096, 'x');
    std::string line;
    int tooLong = 0;
    for (int i = 0; i < 256; ++i) {
      reader.feed(piece);
      for (;;) {
        const R r = reader.next(line);
        if (r == R::TooLong) {
          ++tooLong;
          continue;
        }
        CHECK(r == R::NeedMore);
        break;
      }
      REQUIRE(reader.buffered() <= 512);
    }
    CHECK(tooLong == 1);
    reader.feed("end of junk\r\nEHLO ok\r\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "EHLO ok");
  }

  TEST_CASE("line reader: a long pipelined burst is compacted as it is consumed") {
    LineReader reader(512);
    std::string burst;
    for (int i = 0; i < 10000; ++i) {
      burst += "NOOP\r\n";
    }
    burst += "RSET";
    reader.feed(burst);
    std::string line;
    int lines = 0;
    while (reader.next(line) == R::Line) {
      ++lines;
    }
    CHECK(lines == 10000);
    CHECK(reader.buffered() == 4);
    reader.feed("\r\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "RSET");
  }

  TEST_CASE("line reader: clear() drops buffered bytes and the too-long state") {
    LineReader reader(512);
    reader.feed("STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "STARTTLS");
    CHECK(reader.buffered() > 0);
    reader.clear();
    CHECK(reader.buffered() == 0);
    CHECK(reader.next(line) == R::NeedMore);

    reader.feed(std::string(600, 'a'));
    CHECK(reader.next(line) == R::TooLong);
    reader.clear();
    reader.feed("EHLO a\r\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "EHLO a");
  }

  TEST_CASE("line reader: takeRemainder() hands over unconsumed bytes and clears") {
    LineReader reader(512);
    reader.feed("DATA\r\nSubject: x\r\n\r\nbody\n");
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "DATA");
    CHECK(reader.takeRemainder() == "Subject: x\r\n\r\nbody\n");
    CHECK(reader.buffered() == 0);
    CHECK(reader.takeRemainder().empty());
    CHECK(reader.next(line) == R::NeedMore);
  }
}

}  // namespace
}  // namespace certrelay::smtp
