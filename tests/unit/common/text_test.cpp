// common/text: case folding, hex, colon fingerprints, sanitizers, domain and literal checks.

#include "common/text.h"

#include <doctest/doctest.h>

#include <array>
#include <string>
#include <string_view>

namespace certrelay::text {

TEST_CASE("text: toLower and toUpper fold ASCII letters only") {
  CHECK(toLower("MiXeD-Case.Example 09") == "mixed-case.example 09");
  CHECK(toUpper("MiXeD-Case.Example 09") == "MIXED-CASE.EXAMPLE 09");
  CHECK(toLower('Q') == 'q');
  CHECK(toUpper('q') == 'Q');
  CHECK(toUpper('@') == '@');
  // UTF-8 bytes are not letters: "É" (C3 89) and "é" (C3 A9) stay as they are.
  CHECK(toLower("\xc3\x89") == "\xc3\x89");
  CHECK(toUpper("\xc3\xa9") == "\xc3\xa9");
  CHECK(toLower("").empty());
}

TEST_CASE("text: equalsIgnoreCase compares ASCII case-insensitively, lengths must match") {
  CHECK(equalsIgnoreCase("8BITMIME", "8bitmime"));
  CHECK(equalsIgnoreCase("", ""));
  CHECK_FALSE(equalsIgnoreCase("LAST", "LAS"));
  CHECK_FALSE(equalsIgnoreCase("LAST", "LASTX"));
  CHECK_FALSE(equalsIgnoreCase("[", "{"));  // 0x5B and 0x7B differ by the case bit, not letters
  CHECK_FALSE(equalsIgnoreCase("\xc3\xa9", "\xc3\x89"));
}

TEST_CASE("text: upperHex and lowerHex write two digits per byte") {
  const std::array<unsigned char, 4> bytes{0x00, 0x3e, 0xf8, 0xff};
  CHECK(upperHex(bytes) == "003EF8FF");
  CHECK(lowerHex(bytes) == "003ef8ff");
  CHECK(upperHex({}).empty());
}

TEST_CASE("text: appendUpperHex appends one byte's two digits") {
  std::string out = "+";
  appendUpperHex(out, 0x0a);
  appendUpperHex(out, 0xd0);
  CHECK(out == "+0AD0");
}

TEST_CASE("text: hexValue reads one hex digit of either case") {
  CHECK(hexValue('0') == 0);
  CHECK(hexValue('9') == 9);
  CHECK(hexValue('a') == 10);
  CHECK(hexValue('F') == 15);
  for (const char c : {'g', 'G', ':', ' ', '\0', '/', '@', '`'}) {
    CAPTURE(c);
    CHECK(hexValue(c) == -1);
  }
}

TEST_CASE("text: withColons puts a colon between bytes") {
  CHECK(withColons("") == "");
  CHECK(withColons("AB") == "AB");
  CHECK(withColons("AABBCC") == "AA:BB:CC");
  CHECK(withColons("ABC") == "AB:C");  // an odd last digit stands alone
}

TEST_CASE("text: withColons upper-cases and neuters what is not hex") {
  CHECK(withColons("3ef8") == "3E:F8");
  CHECK(withColons("3G\r\n") == "3?:??");
  CHECK(withColons("AB:CD") == "AB:?C:D");  // already colon form: not hex either
}

TEST_CASE("text: sanitizePrintable keeps printable ASCII, quotes and parentheses included") {
  CHECK(sanitizePrintable("bad key \"x\" (y) \\z") == "bad key \"x\" (y) \\z");
  CHECK(sanitizePrintable("a\r\nb\tc") == "a??b?c");
  CHECK(sanitizePrintable(std::string_view("a\0b\x7f", 4)) == "a?b?");
  CHECK(sanitizePrintable("caf\xc3\xa9") == "caf??");
}

TEST_CASE("text: sanitizeComment also neuters what ends a quoted string or a comment") {
  CHECK(sanitizeComment("client1.lab.example") == "client1.lab.example");
  CHECK(sanitizeComment("A-Z a-z 0-9 !#$%&'*+,-./:;<=>?@[]^_`{|}~") ==
        "A-Z a-z 0-9 !#$%&'*+,-./:;<=>?@[]^_`{|}~");
  CHECK(sanitizeComment("quote\"back\\slash") == "quote?back?slash");
  CHECK(sanitizeComment("(Client CN \"x\")") == "?Client CN ?x??");
  CHECK(sanitizeComment("evil\r\nX-Injected: yes") == "evil??X-Injected: yes");
  CHECK(sanitizeComment("\x7f\x1b[31m") == "??[31m");
  CHECK(sanitizeComment("a\tb") == "a?b");
  CHECK(sanitizeComment("\xff\xfe") == "??");
  CHECK(sanitizeComment("").empty());
}

TEST_CASE("text: sanitizeToken also neuters space, angle brackets, semicolon and at-sign") {
  CHECK(sanitizeToken("TLS_AES_256_GCM_SHA384") == "TLS_AES_256_GCM_SHA384");
  CHECK(sanitizeToken("a b<c>d;e@f") == "a?b?c?d?e?f");
  CHECK(sanitizeToken("x(y)\"z\\") == "x?y??z?");
  CHECK(sanitizeToken("h\xc3\xa9") == "h??");
}

TEST_CASE("text: every sanitizer keeps the first maxLen bytes, one character per byte") {
  const std::string longText(300, 'x');
  CHECK(sanitizePrintable(longText).size() == kMaxText);
  CHECK(sanitizeComment(longText).size() == kMaxText);
  CHECK(sanitizeToken(longText).size() == kMaxText);
  CHECK(kMaxText == 255);
  CHECK(sanitizePrintable("abcdef", 3) == "abc");
  CHECK(sanitizeComment("ab\ncd", 4) == "ab?c");
  CHECK(sanitizeToken("a b c", 2) == "a?");
  CHECK(sanitizeComment("abc", 0).empty());
  // One '?' per byte, cut counted in input bytes: a 2-byte character cut in half is one '?'.
  CHECK(sanitizeComment("ab\xc3\xa9", 3) == "ab?");
}

TEST_CASE("text: checkDomain accepts letters, digits and inner hyphens") {
  CHECK(checkDomain("example.com") == DomainError::None);
  CHECK(checkDomain("a-b.EXAMPLE") == DomainError::None);
  CHECK(checkDomain("x") == DomainError::None);
  CHECK(checkDomain("1.2.3.example") == DomainError::None);
  CHECK(isDomainName("mx1.example"));
}

TEST_CASE("text: checkDomain refuses bad shapes and characters as Syntax") {
  for (const char* name : {"", ".", "a..b", ".a", "a.", "-a.example", "a-.example", "a_b.example",
                           "a b.example", "[192.0.2.1]"}) {
    CAPTURE(name);
    CHECK(checkDomain(name) == DomainError::Syntax);
    CHECK_FALSE(isDomainName(name));
  }
}

TEST_CASE("text: checkDomain refuses an all-numeric name (an address without brackets)") {
  CHECK(checkDomain("192.0.2.1") == DomainError::Syntax);
  CHECK(checkDomain("123") == DomainError::Syntax);
  CHECK(checkDomain("192.0.2.1a") == DomainError::None);
}

TEST_CASE("text: checkDomain limits labels to 63 and names to 255 bytes") {
  const std::string label63(63, 'a');
  CHECK(checkDomain(label63 + ".example") == DomainError::None);
  CHECK(checkDomain(label63 + "a.example") == DomainError::TooLong);
  std::string name255;
  while (name255.size() + 4 <= 255) {
    name255 += "abc.";
  }
  name255 += std::string(255 - name255.size(), 'z');
  REQUIRE(name255.size() == 255);
  CHECK(checkDomain(name255) == DomainError::None);
  CHECK(checkDomain(name255 + "z") == DomainError::TooLong);
  // Shape before length inside a label: a long label with a bad character is a syntax error.
  CHECK(checkDomain(std::string(64, 'a') + "_.example") == DomainError::Syntax);
}

TEST_CASE("text: checkDomain takes 8-bit labels only with utf8") {
  const std::string name =
      "b\xc3\xbc"
      "cher.example";
  CHECK(checkDomain(name) == DomainError::Syntax);
  CHECK(checkDomain(name, true) == DomainError::None);
  CHECK(checkDomain("a_b.example", true) == DomainError::Syntax);
}

TEST_CASE("text: isIpAddress takes strict numeric IPv4 or IPv6 addresses") {
  CHECK(isIpAddress("192.0.2.1", false));
  CHECK(isIpAddress("2001:db8::1", true));
  CHECK_FALSE(isIpAddress("2001:db8::1", false));
  CHECK_FALSE(isIpAddress("192.0.2.1", true));
  CHECK_FALSE(isIpAddress("10.1", false));
  CHECK_FALSE(isIpAddress("", false));
  CHECK_FALSE(isIpAddress("fe80::1%eth0", true));
  CHECK_FALSE(isIpAddress(std::string_view("192.0.2.1\0junk", 14), false));
}

TEST_CASE("text: isAddressLiteral takes bracketed IPv4 and IPv6: literals") {
  CHECK(isAddressLiteral("[192.0.2.1]"));
  CHECK(isAddressLiteral("[IPv6:2001:db8::1]"));
  CHECK(isAddressLiteral("[ipv6:2001:DB8::1]"));
  CHECK(isAddressLiteral("[IPv6:::ffff:192.0.2.1]"));
}

TEST_CASE("text: isAddressLiteral refuses everything else") {
  for (const std::string_view text :
       {std::string_view("192.0.2.1"), std::string_view("[]"), std::string_view("[192.0.2.1"),
        std::string_view("[192.0.2]"), std::string_view("[010.0.2.1]"),
        std::string_view("[2001:db8::1]"), std::string_view("[IPv6:192.0.2.1]"),
        std::string_view("[IPv6:]"), std::string_view("[IPv6:fe80::1%eth0]"),
        std::string_view("[ 192.0.2.1]"), std::string_view("[example.com]"),
        std::string_view("[192.0.2.1\0junk]", 16)}) {
    CAPTURE(text);
    CHECK_FALSE(isAddressLiteral(text));
  }
}

}  // namespace certrelay::text
