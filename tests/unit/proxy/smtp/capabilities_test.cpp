#include "proxy/smtp/capabilities.h"

#include <doctest/doctest.h>

#include <string>

namespace certrelay::smtp {
namespace {

Reply parseWire(std::string_view wire) {
  ReplyParser parser;
  parser.feed(wire);
  Reply r;
  REQUIRE(parser.next(r) == ReplyParser::Result::Reply);
  return r;
}

// protocol.md 9.1: Postfix 3.7 answering the proxy's EHLO.
const char kPostfixEhlo[] =
    "250-mx.lab.example\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-VRFY\r\n"
    "250-ETRN\r\n"
    "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT\r\n"
    "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n";

// protocol.md 8.1: smtp-sink, last line "250 " with no text.
const char kSinkEhlo[] =
    "250-smtp-sink\r\n"
    "250-PIPELINING\r\n"
    "250-8BITMIME\r\n"
    "250-AUTH PLAIN LOGIN\r\n"
    "250-XCLIENT NAME HELO\r\n"
    "250-XFORWARD NAME ADDR PROTO HELO\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-DSN\r\n"
    "250 \r\n";

TEST_SUITE("smtp") {
  TEST_CASE("capabilities: Postfix 3.7 EHLO") {
    const Capabilities c = Capabilities::fromEhloReply(parseWire(kPostfixEhlo));
    CHECK(c.pipelining);
    REQUIRE(c.size.has_value());
    CHECK(*c.size == 10240000);
    CHECK(c.eightBitMime);
    CHECK(c.smtpUtf8);
    CHECK(c.dsn);
    CHECK(c.enhancedStatusCodes);
    CHECK(c.chunking);
    CHECK(c.xclient);
    CHECK(c.xclientAttributes == std::set<std::string>{"NAME", "ADDR", "PROTO", "HELO",
                                                       "REVERSE_NAME", "PORT", "LOGIN", "DESTADDR",
                                                       "DESTPORT"});
    CHECK(c.xforward);
    CHECK(c.xforwardAttributes ==
          std::set<std::string>{"NAME", "ADDR", "PROTO", "HELO", "SOURCE", "PORT", "IDENT"});
  }

  TEST_CASE("capabilities: smtp-sink EHLO") {
    const Capabilities c = Capabilities::fromEhloReply(parseWire(kSinkEhlo));
    CHECK(c.pipelining);
    CHECK_FALSE(c.size.has_value());
    CHECK(c.eightBitMime);
    CHECK_FALSE(c.smtpUtf8);
    CHECK(c.dsn);
    CHECK(c.enhancedStatusCodes);
    CHECK_FALSE(c.chunking);
    CHECK(c.xclient);
    CHECK(c.xclientAttributes == std::set<std::string>{"NAME", "HELO"});
    CHECK(c.xforward);
    CHECK(c.xforwardAttributes == std::set<std::string>{"NAME", "ADDR", "PROTO", "HELO"});
  }

  TEST_CASE("capabilities: keywords are case-insensitive, attributes upper-cased") {
    const Capabilities c = Capabilities::fromEhloReply(
        parseWire("250-host\r\n250-pipelining\r\n250-Size 100\r\n250-xclient name Addr\r\n"
                  "250 smtputf8\r\n"));
    CHECK(c.pipelining);
    CHECK(c.size == std::optional<std::uint64_t>(100));
    CHECK(c.xclient);
    CHECK(c.xclientAttributes == std::set<std::string>{"NAME", "ADDR"});
    CHECK(c.smtpUtf8);
  }

  TEST_CASE("capabilities: the first line is the server name, never a keyword") {
    const Capabilities c = Capabilities::fromEhloReply(parseWire("250-PIPELINING\r\n250 DSN\r\n"));
    CHECK_FALSE(c.pipelining);
    CHECK(c.dsn);
    const Capabilities single = Capabilities::fromEhloReply(parseWire("250 CHUNKING\r\n"));
    CHECK_FALSE(single.chunking);
  }

  TEST_CASE("capabilities: bare SIZE and SIZE 0 mean no fixed limit") {
    CHECK(Capabilities::fromEhloReply(parseWire("250-h\r\n250 SIZE\r\n")).size ==
          std::optional<std::uint64_t>(0));
    CHECK(Capabilities::fromEhloReply(parseWire("250-h\r\n250 SIZE 0\r\n")).size ==
          std::optional<std::uint64_t>(0));
  }

  TEST_CASE("capabilities: unreadable SIZE is treated as absent") {
    CHECK_FALSE(Capabilities::fromEhloReply(parseWire("250-h\r\n250 SIZE big\r\n")).size);
    CHECK_FALSE(
        Capabilities::fromEhloReply(parseWire("250-h\r\n250 SIZE 99999999999999999999\r\n")).size);
    CHECK_FALSE(Capabilities::fromEhloReply(parseWire("250-h\r\n250 SIZE -1\r\n")).size);
  }

  TEST_CASE("capabilities: a refused EHLO offers nothing") {
    const Capabilities c =
        Capabilities::fromEhloReply(parseWire("550-h\r\n550-PIPELINING\r\n550 DSN\r\n"));
    CHECK_FALSE(c.pipelining);
    CHECK_FALSE(c.dsn);
  }

  TEST_CASE("client EHLO: from Postfix 3.7, before TLS") {
    const Capabilities c = Capabilities::fromEhloReply(parseWire(kPostfixEhlo));
    CHECK(clientEhloReply("relay.example", &c, true) ==
          "250-relay.example\r\n"
          "250-PIPELINING\r\n"
          "250-SIZE 10240000\r\n"
          "250-8BITMIME\r\n"
          "250-SMTPUTF8\r\n"
          "250-DSN\r\n"
          "250-ENHANCEDSTATUSCODES\r\n"
          "250-CHUNKING\r\n"
          "250 STARTTLS\r\n");
  }

  TEST_CASE("client EHLO: from Postfix 3.7, inside TLS (no STARTTLS, no XCLIENT, CHUNKING kept)") {
    const Capabilities c = Capabilities::fromEhloReply(parseWire(kPostfixEhlo));
    CHECK(clientEhloReply("relay.example", &c, false) ==
          "250-relay.example\r\n"
          "250-PIPELINING\r\n"
          "250-SIZE 10240000\r\n"
          "250-8BITMIME\r\n"
          "250-SMTPUTF8\r\n"
          "250-DSN\r\n"
          "250-ENHANCEDSTATUSCODES\r\n"
          "250 CHUNKING\r\n");
  }

  TEST_CASE("client EHLO: from smtp-sink (no AUTH, XCLIENT, XFORWARD)") {
    const Capabilities c = Capabilities::fromEhloReply(parseWire(kSinkEhlo));
    CHECK(clientEhloReply("relay.example", &c, true) ==
          "250-relay.example\r\n"
          "250-PIPELINING\r\n"
          "250-8BITMIME\r\n"
          "250-DSN\r\n"
          "250-ENHANCEDSTATUSCODES\r\n"
          "250 STARTTLS\r\n");
  }

  TEST_CASE("client EHLO: SIZE without a limit is a bare SIZE") {
    Capabilities c;
    c.size = 0;
    CHECK(clientEhloReply("h", &c, false) == "250-h\r\n250-PIPELINING\r\n250 SIZE\r\n");
  }

  TEST_CASE("client EHLO: PIPELINING is shown even if the backend lacks it") {
    const Capabilities none;
    CHECK(clientEhloReply("h", &none, false) == "250-h\r\n250 PIPELINING\r\n");
  }

  TEST_CASE("client EHLO: nothing learned from the backend yet") {
    CHECK(clientEhloReply("relay.example", nullptr, true) ==
          "250-relay.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
    CHECK(clientEhloReply("relay.example", nullptr, false) ==
          "250-relay.example\r\n250 PIPELINING\r\n");
  }

  TEST_CASE("client EHLO: XCLIENT and XFORWARD never shown") {
    Capabilities c;
    c.xclient = true;
    c.xclientAttributes = {"NAME"};
    c.xforward = true;
    const std::string wire = clientEhloReply("h", &c, true);
    CHECK(wire.find("XCLIENT") == std::string::npos);
    CHECK(wire.find("XFORWARD") == std::string::npos);
    CHECK(wire == "250-h\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
  }

  TEST_CASE("client EHLO: CHUNKING exactly when the backend offers it") {
    Capabilities c;
    CHECK(clientEhloReply("h", &c, false).find("CHUNKING") == std::string::npos);
    c.chunking = true;
    CHECK(clientEhloReply("h", &c, false) == "250-h\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
  }
}

}  // namespace
}  // namespace certrelay::smtp
