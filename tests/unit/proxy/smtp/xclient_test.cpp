#include "proxy/smtp/xclient.h"

#include <doctest/doctest.h>

#include <string>

using certrelay::smtp::buildXclientCommands;
using certrelay::smtp::ClientIdentity;

namespace {

const std::set<std::string> kPostfixAttributes = {
    "NAME", "ADDR", "PROTO", "HELO", "REVERSE_NAME", "PORT", "LOGIN", "DESTADDR", "DESTPORT"};

ClientIdentity sampleIdentity() {
  ClientIdentity id;
  id.addr = "192.0.2.10";
  id.port = 40001;
  id.destAddr = "198.51.100.25";
  id.destPort = 25;
  id.helo = "client1.lab.example";
  id.login = "client1";
  return id;
}

}  // namespace

TEST_SUITE("smtp") {
  TEST_CASE("xclient: one command, every offered attribute, ADDR last") {
    const auto commands = buildXclientCommands(sampleIdentity(), kPostfixAttributes);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0] ==
          "XCLIENT PORT=40001 PROTO=ESMTP HELO=client1.lab.example LOGIN=client1 "
          "DESTADDR=198.51.100.25 DESTPORT=25 NAME=[UNAVAILABLE] REVERSE_NAME=[UNAVAILABLE] "
          "ADDR=192.0.2.10");
  }

  TEST_CASE("xclient: only attributes the backend offers (smtp-sink: NAME HELO)") {
    const auto commands = buildXclientCommands(sampleIdentity(), {"NAME", "HELO"});
    REQUIRE(commands.size() == 1);
    CHECK(commands[0] == "XCLIENT HELO=client1.lab.example NAME=[UNAVAILABLE]");
  }

  TEST_CASE("xclient: no LOGIN for an untrusted client") {
    ClientIdentity id = sampleIdentity();
    id.login.clear();
    const auto commands = buildXclientCommands(id, kPostfixAttributes);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].find("LOGIN=") == std::string::npos);
  }

  TEST_CASE("xclient: values are xtext, IPv6 gets the IPV6: prefix") {
    ClientIdentity id = sampleIdentity();
    id.addr = "2001:db8::7";
    id.helo = "a+b=c";
    id.login = "id with space";
    const auto commands = buildXclientCommands(id, kPostfixAttributes);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].find("HELO=a+2Bb+3Dc ") != std::string::npos);
    CHECK(commands[0].find("LOGIN=id+20with+20space ") != std::string::npos);
    CHECK(commands[0].size() >= 22);
    CHECK(commands[0].substr(commands[0].size() - 22) == " ADDR=IPV6:2001:db8::7");
  }

  TEST_CASE("xclient: HELO protocol and a missing HELO") {
    ClientIdentity id = sampleIdentity();
    id.esmtp = false;
    id.helo.clear();
    const auto commands = buildXclientCommands(id, kPostfixAttributes);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].find("PROTO=SMTP ") != std::string::npos);
    CHECK(commands[0].find("HELO=[UNAVAILABLE] ") != std::string::npos);
  }

  TEST_CASE("xclient: a value over 255 characters becomes [UNAVAILABLE]") {
    ClientIdentity id = sampleIdentity();
    id.helo = std::string(300, 'h');
    const auto commands = buildXclientCommands(id, kPostfixAttributes);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].find("HELO=[UNAVAILABLE]") != std::string::npos);
  }

  TEST_CASE("xclient: long values split into commands of at most 512 octets, NAME+ADDR last") {
    ClientIdentity id = sampleIdentity();
    id.helo = std::string(250, 'h');
    id.login = std::string(250, 'l');
    const auto commands = buildXclientCommands(id, kPostfixAttributes);
    REQUIRE(commands.size() == 2);
    for (const auto& c : commands) {
      CHECK(c.size() + 2 <= 512);
      CHECK(c.rfind("XCLIENT ", 0) == 0);
    }
    CHECK(commands[0].find("ADDR=") == std::string::npos);
    CHECK(commands[0].find("NAME=") == std::string::npos);
    CHECK(commands[1].find("NAME=[UNAVAILABLE] ADDR=192.0.2.10") != std::string::npos);
  }

  TEST_CASE("xclient: nothing offered, nothing sent") {
    CHECK(buildXclientCommands(sampleIdentity(), {"FORWARD_NAME", "name"}).empty());
  }

  TEST_CASE("xclient: a forward-confirmed name is NAME, and NAME alone sets the reverse name") {
    ClientIdentity id = sampleIdentity();
    id.name = certrelay::smtp::afterForward("192.0.2.10", "client1.lab.example",
                                            certrelay::smtp::DnsAnswer::Found, {"192.0.2.10"}, "");
    const auto commands = buildXclientCommands(id, kPostfixAttributes);
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].substr(commands[0].find(" NAME=")) ==
          " NAME=client1.lab.example ADDR=192.0.2.10");
  }

  TEST_CASE("xclient: unconfirmed, temporary failure and no lookup: NAME and REVERSE_NAME") {
    using certrelay::smtp::DnsAnswer;
    ClientIdentity id = sampleIdentity();
    SUBCASE("a PTR name that does not resolve back") {
      id.name = certrelay::smtp::afterForward("192.0.2.10", "liar.example", DnsAnswer::Found,
                                              {"192.0.2.99"}, "");
      const auto commands = buildXclientCommands(id, kPostfixAttributes);
      REQUIRE(commands.size() == 1);
      CHECK(commands[0].substr(commands[0].find(" NAME=")) ==
            " NAME=[UNAVAILABLE] REVERSE_NAME=liar.example ADDR=192.0.2.10");
    }
    SUBCASE("the forward lookup failed for now") {
      id.name =
          certrelay::smtp::afterForward("192.0.2.10", "slow.example", DnsAnswer::TempFail, {}, "");
      const auto commands = buildXclientCommands(id, kPostfixAttributes);
      REQUIRE(commands.size() == 1);
      CHECK(commands[0].substr(commands[0].find(" NAME=")) ==
            " NAME=[TEMPUNAVAIL] REVERSE_NAME=slow.example ADDR=192.0.2.10");
    }
    SUBCASE("the deadline") {
      id.name = certrelay::smtp::timedOut("192.0.2.10", "", std::chrono::milliseconds(2000));
      const auto commands = buildXclientCommands(id, kPostfixAttributes);
      REQUIRE(commands.size() == 1);
      CHECK(commands[0].substr(commands[0].find(" NAME=")) ==
            " NAME=[TEMPUNAVAIL] REVERSE_NAME=[TEMPUNAVAIL] ADDR=192.0.2.10");
    }
    SUBCASE("a backend without REVERSE_NAME (smtp-sink) gets NAME only") {
      id.name = certrelay::smtp::timedOut("192.0.2.10", "", std::chrono::milliseconds(2000));
      const auto commands = buildXclientCommands(id, {"NAME", "ADDR"});
      REQUIRE(commands.size() == 1);
      CHECK(commands[0] == "XCLIENT NAME=[TEMPUNAVAIL] ADDR=192.0.2.10");
    }
  }

  TEST_CASE("xclient: the longest names still leave NAME, REVERSE_NAME and ADDR in one command") {
    ClientIdentity id = sampleIdentity();
    const std::string label(63, 'a');
    const std::string longName = label + "." + label + "." + label + "." + std::string(61, 'b');
    id.addr = "2001:db8:1234:5678:9abc:def0:1234:5678";
    id.helo = std::string(255, 'h');
    id.login = std::string(255, 'l');
    id.name = certrelay::smtp::afterForward(id.addr, longName, certrelay::smtp::DnsAnswer::TempFail,
                                            {}, "");
    const auto commands = buildXclientCommands(id, kPostfixAttributes);
    REQUIRE_FALSE(commands.empty());
    for (const auto& c : commands) {
      CHECK(c.size() + 2 <= 512);
    }
    CHECK(commands.back() == "XCLIENT NAME=[TEMPUNAVAIL] REVERSE_NAME=" + longName +
                                 " ADDR=IPV6:2001:db8:1234:5678:9abc:def0:1234:5678");
  }
}

TEST_SUITE("smtp") {
  TEST_CASE("xclient: a command exactly at 510 characters is not split, one more is") {
    // "XCLIENT" (7) + " HELO=" (6) + 250 + " LOGIN=" (7) + 240 = 510.
    ClientIdentity id = sampleIdentity();
    id.helo = std::string(250, 'h');
    id.login = std::string(240, 'l');
    auto commands = buildXclientCommands(id, {"HELO", "LOGIN"});
    REQUIRE(commands.size() == 1);
    CHECK(commands[0].size() == 510);
    id.login = std::string(241, 'l');
    commands = buildXclientCommands(id, {"HELO", "LOGIN"});
    REQUIRE(commands.size() == 2);
    CHECK(commands[0] == "XCLIENT HELO=" + std::string(250, 'h'));
    CHECK(commands[1] == "XCLIENT LOGIN=" + std::string(241, 'l'));
  }

  TEST_CASE("xclient: NAME and ADDR move together to a new command when they do not fit") {
    // "XCLIENT" (7) + " HELO=" (6) + 255 + " LOGIN=" (7) + 230 = 505; the tail
    // " NAME=[UNAVAILABLE] ADDR=192.0.2.10" (35) would not fit, and is not split either.
    ClientIdentity id = sampleIdentity();
    id.helo = std::string(255, 'h');
    id.login = std::string(230, 'l');
    const auto commands = buildXclientCommands(id, {"HELO", "LOGIN", "NAME", "ADDR"});
    REQUIRE(commands.size() == 2);
    CHECK(commands[1] == "XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.10");
  }
}
