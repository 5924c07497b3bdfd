#include "proxy/smtp/xforward.h"

#include <doctest/doctest.h>

#include <string>

namespace certrelay::smtp {
namespace {

// Postfix 3.7 announces "XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT" (protocol.md 2.2).
const std::set<std::string> kPostfix = {"NAME", "ADDR", "PROTO", "HELO", "SOURCE", "PORT", "IDENT"};
// smtp-sink announces "XFORWARD NAME ADDR PROTO HELO".
const std::set<std::string> kSmtpSink = {"NAME", "ADDR", "PROTO", "HELO"};

ForwardInfo sample() {
  ForwardInfo info;
  info.addr = "192.0.2.99";
  info.port = 50099;
  info.helo = "client9.example";
  info.proto = "ESMTP";
  info.ident = "ABC123DEF";
  return info;
}

TEST_SUITE("smtp") {
  TEST_CASE("xforward: Postfix's full attribute list in one command") {
    const auto commands = buildXforwardCommands(sample(), kPostfix);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0] ==
          "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.99 PORT=50099 PROTO=ESMTP "
          "HELO=client9.example IDENT=ABC123DEF SOURCE=REMOTE");
  }

  TEST_CASE("xforward: smtp-sink's NAME ADDR PROTO HELO only") {
    const auto commands = buildXforwardCommands(sample(), kSmtpSink);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0] ==
          "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.99 PROTO=ESMTP HELO=client9.example");
  }

  TEST_CASE("xforward: any subset, always in the same order") {
    CHECK(buildXforwardCommands(sample(), {"IDENT", "ADDR"}) ==
          std::vector<std::string>{"XFORWARD ADDR=192.0.2.99 IDENT=ABC123DEF"});
    CHECK(buildXforwardCommands(sample(), {"SOURCE"}) ==
          std::vector<std::string>{"XFORWARD SOURCE=REMOTE"});
    CHECK(buildXforwardCommands(sample(), {"PORT", "NAME"}) ==
          std::vector<std::string>{"XFORWARD NAME=[UNAVAILABLE] PORT=50099"});
  }

  TEST_CASE("xforward: a forward-confirmed name, and never [TEMPUNAVAIL]") {
    ForwardInfo info = sample();
    info.name = afterForward("192.0.2.99", "client9.example", DnsAnswer::Found, {"192.0.2.99"}, "");
    CHECK(buildXforwardCommands(info, {"NAME", "ADDR"}) ==
          std::vector<std::string>{"XFORWARD NAME=client9.example ADDR=192.0.2.99"});
    // XFORWARD's NAME has no temporary value: Postfix answers [TEMPUNAVAIL] "501 Bad NAME syntax".
    info.name = afterForward("192.0.2.99", "slow.example", DnsAnswer::TempFail, {}, "");
    CHECK(buildXforwardCommands(info, {"NAME"}) ==
          std::vector<std::string>{"XFORWARD NAME=[UNAVAILABLE]"});
    info.name = afterForward("192.0.2.99", "liar.example", DnsAnswer::Found, {"192.0.2.1"}, "");
    CHECK(buildXforwardCommands(info, {"NAME"}) ==
          std::vector<std::string>{"XFORWARD NAME=[UNAVAILABLE]"});
  }

  TEST_CASE("xforward: nothing offered (or only unknown names), nothing sent") {
    CHECK(buildXforwardCommands(sample(), {}).empty());
    CHECK(buildXforwardCommands(sample(), {"LOGIN", "DESTADDR", "name"}).empty());
  }

  TEST_CASE("xforward: IPv6 address gets the IPV6: prefix, no brackets") {
    ForwardInfo info = sample();
    info.addr = "2001:db8::99";
    CHECK(buildXforwardCommands(info, {"ADDR"}) ==
          std::vector<std::string>{"XFORWARD ADDR=IPV6:2001:db8::99"});
  }

  TEST_CASE("xforward: unknown values are [UNAVAILABLE]") {
    const ForwardInfo info;  // everything empty or 0
    const auto commands = buildXforwardCommands(info, kPostfix);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0] ==
          "XFORWARD NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE] PROTO=[UNAVAILABLE] "
          "HELO=[UNAVAILABLE] IDENT=[UNAVAILABLE] SOURCE=REMOTE");
  }

  TEST_CASE("xforward: values are xtext") {
    ForwardInfo info = sample();
    info.helo = "two words+plus=eq\x01\xc3\xa9";
    info.ident = "id with space";
    info.proto = "E=SMTP";
    const auto commands = buildXforwardCommands(info, {"HELO", "IDENT", "PROTO"});
    REQUIRE(commands.size() == 1);
    CHECK(commands[0] ==
          "XFORWARD PROTO=E+3DSMTP HELO=two+20words+2Bplus+3Deq+01+C3+A9 IDENT=id+20with+20space");
  }

  TEST_CASE("xforward: PROTO over 64 characters, HELO and IDENT over 255 are [UNAVAILABLE]") {
    ForwardInfo info = sample();
    info.proto = std::string(64, 'P');
    info.helo = std::string(255, 'h');
    info.ident = std::string(255, 'i');
    std::string all;
    for (const auto& c : buildXforwardCommands(info, {"PROTO", "HELO", "IDENT"})) {
      all += c + "\n";
    }
    CHECK(all.find("PROTO=" + std::string(64, 'P')) != std::string::npos);
    CHECK(all.find("HELO=" + std::string(255, 'h')) != std::string::npos);
    CHECK(all.find("IDENT=" + std::string(255, 'i')) != std::string::npos);

    info.proto = std::string(65, 'P');
    info.helo = std::string(256, 'h');
    info.ident = std::string(86, ' ');  // 86 * 3 = 258 encoded characters
    CHECK(buildXforwardCommands(info, {"PROTO", "HELO", "IDENT"}) ==
          std::vector<std::string>{
              "XFORWARD PROTO=[UNAVAILABLE] HELO=[UNAVAILABLE] IDENT=[UNAVAILABLE]"});
  }

  TEST_CASE("xforward: long values split into commands of at most 512 octets") {
    ForwardInfo info = sample();
    info.addr = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff";
    info.helo = std::string(255, 'h');
    info.ident = std::string(255, 'i');
    info.proto = std::string(64, 'p');
    const auto commands = buildXforwardCommands(info, kPostfix);
    REQUIRE(commands.size() == 2);
    std::string joined;
    for (const auto& c : commands) {
      CAPTURE(c);
      CHECK(c.size() + 2 <= 512);
      CHECK(c.rfind("XFORWARD ", 0) == 0);
      CHECK(c.find("  ") == std::string::npos);
      joined += c.substr(8);
    }
    // Nothing lost, nothing repeated, order kept across the split.
    CHECK(joined ==
          " NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff PORT=50099 PROTO=" +
              std::string(64, 'p') + " HELO=" + std::string(255, 'h') +
              " IDENT=" + std::string(255, 'i') + " SOURCE=REMOTE");
    CHECK(commands[0].size() > 400);  // the first command was filled before splitting
  }

  TEST_CASE("xforward: a command exactly at 510 characters is not split") {
    // "XFORWARD" (8) + " HELO=" (6) + 241 + " IDENT=" (7) + 248 = 510.
    ForwardInfo info = sample();
    info.helo = std::string(241, 'h');
    info.ident = std::string(248, 'i');
    auto commands = buildXforwardCommands(info, {"HELO", "IDENT"});
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].size() == 510);
    info.ident = std::string(249, 'i');  // one more: 511, split
    commands = buildXforwardCommands(info, {"HELO", "IDENT"});
    REQUIRE(commands.size() == 2);
    CHECK(commands[0] == "XFORWARD HELO=" + std::string(241, 'h'));
    CHECK(commands[1] == "XFORWARD IDENT=" + std::string(249, 'i'));
  }
}

}  // namespace
}  // namespace certrelay::smtp
