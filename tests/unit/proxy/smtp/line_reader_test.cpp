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

  TEST_CASE("line reader: takeBytes() moves raw bytes, then lines resume") {
    LineReader reader(512);
    // 9 bytes of command, 12 bytes of chunk (CR, LF, a lone ".", NUL: nothing is a line there),
    // then the next command.
    reader.feed(std::string("BDAT 12\r\nab\r\n.\n\0\rQUITNOOP\r\n", 27));
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "BDAT 12");
    std::string chunk = "kept:";
    CHECK(reader.takeBytes(12, chunk) == 12);
    CHECK(chunk == std::string("kept:ab\r\n.\n\0\rQUIT", 17));  // appended, bytes unchanged
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "NOOP");
    CHECK(reader.next(line) == R::NeedMore);
  }

  TEST_CASE("line reader: takeBytes() takes what is buffered and the rest after feed()") {
    LineReader reader(512);
    reader.feed("BDAT 10 LAST\r\n0123");
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    std::string chunk;
    CHECK(reader.takeBytes(10, chunk) == 4);
    CHECK(chunk == "0123");
    CHECK(reader.buffered() == 0);
    CHECK(reader.takeBytes(6, chunk) == 0);
    reader.feed("45");
    CHECK(reader.takeBytes(6, chunk) == 2);
    reader.feed("6789RSET\r\n");
    CHECK(reader.takeBytes(4, chunk) == 4);
    CHECK(chunk == "0123456789");
    CHECK(reader.buffered() == 6);
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "RSET");
    CHECK(reader.takeBytes(0, chunk) == 0);
    CHECK(chunk == "0123456789");
  }

  TEST_CASE("line reader: a chunk without LF longer than the line cap is not TooLong") {
    LineReader reader(512);
    reader.feed("BDAT 5000\r\n");
    std::string line;
    REQUIRE(reader.next(line) == R::Line);
    std::string chunk;
    std::size_t taken = 0;
    for (int i = 0; i < 5; ++i) {
      reader.feed(std::string(1000, 'x'));
      taken += reader.takeBytes(5000 - taken, chunk);
    }
    CHECK(taken == 5000);
    CHECK(chunk == std::string(5000, 'x'));
    reader.feed("QUIT\r\n");
    REQUIRE(reader.next(line) == R::Line);
    CHECK(line == "QUIT");
  }

  TEST_CASE("line reader: takeBytes() through a long pipelined burst keeps every chunk intact") {
    LineReader reader(512);
    std::string burst;
    for (int i = 0; i < 2000; ++i) {
      burst += "BDAT 16\r\n0123456789abcdef";
    }
    reader.feed(burst);
    std::string line;
    std::string chunk;
    for (int i = 0; i < 2000; ++i) {
      REQUIRE(reader.next(line) == R::Line);
      REQUIRE(line == "BDAT 16");
      REQUIRE(reader.takeBytes(16, chunk) == 16);
    }
    CHECK(chunk.size() == 32000);
    CHECK(chunk.substr(31984) == "0123456789abcdef");
    CHECK(reader.buffered() == 0);
    CHECK(reader.next(line) == R::NeedMore);
  }
}

}  // namespace
}  // namespace certrelay::smtp
