#include "proxy/smtp/xtext.h"

#include <doctest/doctest.h>

#include <string>

namespace certrelay::smtp {
namespace {

TEST_SUITE("smtp") {
  TEST_CASE("xtext: plain xchars pass unchanged") {
    CHECK(xtextEncode("client1.lab.example") == "client1.lab.example");
    CHECK(xtextEncode("!~") == "!~");
    CHECK(xtextDecode("client1.lab.example") == std::optional<std::string>("client1.lab.example"));
  }

  TEST_CASE("xtext: '+', '=', space and controls are encoded with upper-case hex") {
    CHECK(xtextEncode("a+b") == "a+2Bb");
    CHECK(xtextEncode("a=b") == "a+3Db");
    CHECK(xtextEncode("a b") == "a+20b");
    CHECK(xtextEncode(std::string_view("\0", 1)) == "+00");
    CHECK(xtextEncode("\r\n") == "+0D+0A");
    CHECK(xtextEncode("\x7f") == "+7F");
    CHECK(xtextEncode("\xff") == "+FF");
  }

  TEST_CASE("xtext: every byte value round-trips and only xchars stay literal") {
    for (int b = 0; b < 256; ++b) {
      const std::string raw(1, static_cast<char>(b));
      const std::string enc = xtextEncode(raw);
      CAPTURE(b);
      const bool xchar = b >= '!' && b <= '~' && b != '+' && b != '=';
      CHECK(enc.size() == (xchar ? 1U : 3U));
      CHECK(xtextDecode(enc) == std::optional<std::string>(raw));
    }
  }

  TEST_CASE("xtext: non-ASCII (UTF-8) round trip") {
    const std::string raw = "j\xC3\xB6rg@\xE4\xBE\x8B.example";
    const std::string enc = xtextEncode(raw);
    CHECK(enc == "j+C3+B6rg@+E4+BE+8B.example");
    CHECK(xtextDecode(enc) == std::optional<std::string>(raw));
  }

  TEST_CASE("xtext: decode accepts needless escapes") {
    CHECK(xtextDecode("+41+42c") == std::optional<std::string>("ABc"));
  }

  TEST_CASE("xtext: bad decodes are refused") {
    CHECK_FALSE(xtextDecode("+"));
    CHECK_FALSE(xtextDecode("a+4"));
    CHECK_FALSE(xtextDecode("+4G"));
    CHECK_FALSE(xtextDecode("+2b"));  // lower-case hex is not xtext
    CHECK_FALSE(xtextDecode("a=b"));
    CHECK_FALSE(xtextDecode("a b"));
    CHECK_FALSE(xtextDecode("a\tb"));
    CHECK_FALSE(xtextDecode("\xC3\xB6"));
    CHECK_FALSE(xtextDecode(std::string_view("a\0", 2)));
    CHECK(xtextDecode("") == std::optional<std::string>(""));
  }
}

}  // namespace
}  // namespace certrelay::smtp
