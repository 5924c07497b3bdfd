#include "proxy/smtp/command.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>

namespace certrelay::smtp {
namespace {

Command parseOk(std::string_view line) {
  Command cmd;
  REQUIRE(parseCommand(line, cmd) == CommandError::None);
  return cmd;
}

TEST_SUITE("smtp") {
  TEST_CASE("command: every verb is recognised in upper, lower and mixed case") {
    const std::pair<const char*, Verb> verbs[] = {
        {"EHLO", Verb::Ehlo},       {"HELO", Verb::Helo},         {"STARTTLS", Verb::Starttls},
        {"MAIL", Verb::Mail},       {"RCPT", Verb::Rcpt},         {"DATA", Verb::Data},
        {"BDAT", Verb::Bdat},       {"RSET", Verb::Rset},         {"NOOP", Verb::Noop},
        {"QUIT", Verb::Quit},       {"VRFY", Verb::Vrfy},         {"HELP", Verb::Help},
        {"XCLIENT", Verb::Xclient}, {"XFORWARD", Verb::Xforward}, {"AUTH", Verb::Auth},
        {"EXPN", Verb::Expn},       {"ETRN", Verb::Etrn},         {"TURN", Verb::Turn},
    };
    for (const auto& [name, verb] : verbs) {
      std::string upper = name;
      std::string lower = upper;
      for (char& c : lower) {
        c = static_cast<char>(c - 'A' + 'a');
      }
      std::string mixed = upper;
      for (std::size_t i = 1; i < mixed.size(); i += 2) {
        mixed[i] = lower[i];
      }
      for (const std::string& form : {upper, lower, mixed}) {
        CAPTURE(form);
        const Command cmd = parseOk(form);
        CHECK(cmd.verb == verb);
        CHECK(cmd.verbText == form);
        CHECK(cmd.argument.empty());
      }
    }
  }

  TEST_CASE("command: unknown verbs and verb prefixes are Unknown") {
    CHECK(parseOk("FOO bar").verb == Verb::Unknown);
    CHECK(parseOk("MAI FROM:<a@b>").verb == Verb::Unknown);
    CHECK(parseOk("MAILFROM:<a@b>").verb == Verb::Unknown);
    CHECK(parseOk("EHLOX").verb == Verb::Unknown);
    CHECK(parseOk("XEXCH50 1 2").verb == Verb::Unknown);
  }

  TEST_CASE("command: verbText is capped at 32 bytes") {
    const std::string verb(100, 'Z');
    const Command cmd = parseOk(verb + " arg");
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.verbText == std::string(32, 'Z'));
    CHECK(cmd.argument == "arg");
  }

  TEST_CASE("command: argument after spaces and tabs, trailing blanks cut") {
    CHECK(parseOk("EHLO client.example").argument == "client.example");
    CHECK(parseOk("EHLO    client.example").argument == "client.example");
    CHECK(parseOk("EHLO\tclient.example").argument == "client.example");
    CHECK(parseOk("EHLO \t client.example \t ").argument == "client.example");
    CHECK(parseOk("MAIL FROM:<a@b>  SIZE=10").argument == "FROM:<a@b>  SIZE=10");
    CHECK(parseOk("NOOP   ").argument.empty());
  }

  TEST_CASE("command: leading blanks before the verb are tolerated") {
    const Command cmd = parseOk("   QUIT");
    CHECK(cmd.verb == Verb::Quit);
    CHECK(cmd.verbText == "QUIT");
    CHECK(parseOk("\tNOOP x").verb == Verb::Noop);
  }

  TEST_CASE("command: 8-bit bytes are allowed (SMTPUTF8)") {
    const Command cmd = parseOk("RCPT TO:<j\xC3\xB6rg@example.org>");
    CHECK(cmd.verb == Verb::Rcpt);
    CHECK(cmd.argument == "TO:<j\xC3\xB6rg@example.org>");
  }

  TEST_CASE("command: NUL anywhere is BadCharacter, never truncation") {
    Command cmd;
    using namespace std::string_literals;
    CHECK(parseCommand("MAIL FROM:<a\0@local.example>"s, cmd) == CommandError::BadCharacter);
    CHECK(parseCommand("\0NOOP"s, cmd) == CommandError::BadCharacter);
    CHECK(parseCommand("NOOP\0"s, cmd) == CommandError::BadCharacter);
    CHECK(parseCommand("\0"s, cmd) == CommandError::BadCharacter);
  }

  TEST_CASE("command: bare CR is BadCharacter (a CR never ends a command)") {
    Command cmd;
    CHECK(parseCommand("RCPT TO:<u@local.example>\rNOOP", cmd) == CommandError::BadCharacter);
    CHECK(parseCommand("NOOP\r", cmd) == CommandError::BadCharacter);
    CHECK(parseCommand("\r", cmd) == CommandError::BadCharacter);
  }

  TEST_CASE("command: every control byte except TAB, and DEL, is BadCharacter") {
    for (int c = 0; c < 0x20; ++c) {
      if (c == '\t') {
        continue;
      }
      std::string line = "NOOP a";
      line.push_back(static_cast<char>(c));
      line += "b";
      CAPTURE(c);
      Command cmd;
      CHECK(parseCommand(line, cmd) == CommandError::BadCharacter);
    }
    Command cmd;
    CHECK(parseCommand("NOOP \x7f", cmd) == CommandError::BadCharacter);
    CHECK(parseCommand("NOOP a\tb", cmd) == CommandError::None);
    CHECK(cmd.argument == "a\tb");
  }

  TEST_CASE("command: empty and blank lines are Empty") {
    Command cmd;
    CHECK(parseCommand("", cmd) == CommandError::Empty);
    CHECK(parseCommand("    ", cmd) == CommandError::Empty);
    CHECK(parseCommand(" \t ", cmd) == CommandError::Empty);
  }

  TEST_CASE("command: output is reset between parses") {
    Command cmd;
    REQUIRE(parseCommand("MAIL FROM:<a@b>", cmd) == CommandError::None);
    REQUIRE(parseCommand("", cmd) == CommandError::Empty);
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.argument.empty());
  }

  TEST_CASE("path: canonical MAIL FROM") {
    PathArgument p;
    REQUIRE(parsePathArgument("FROM:<alice@client1.lab.example>", "FROM:", p) == PathError::None);
    CHECK(p.path == "<alice@client1.lab.example>");
    CHECK(p.params.empty());
  }

  TEST_CASE("path: null reverse path") {
    PathArgument p;
    REQUIRE(parsePathArgument("FROM:<>", "FROM:", p) == PathError::None);
    CHECK(p.path == "<>");
  }

  TEST_CASE("path: prefix is case-insensitive, spaces after the colon tolerated") {
    PathArgument p;
    REQUIRE(parsePathArgument("from:<a@b.example>", "FROM:", p) == PathError::None);
    CHECK(p.path == "<a@b.example>");
    REQUIRE(parsePathArgument("To:   <u@local.example>", "TO:", p) == PathError::None);
    CHECK(p.path == "<u@local.example>");
  }

  TEST_CASE("path: bare address") {
    PathArgument p;
    REQUIRE(parsePathArgument("TO:u@local.example NOTIFY=NEVER", "TO:", p) == PathError::None);
    CHECK(p.path == "u@local.example");
    REQUIRE(p.params.size() == 1);
    CHECK(p.params[0].first == "NOTIFY");
    CHECK(p.params[0].second == "NEVER");
  }

  TEST_CASE("path: parameters with and without values, keys upper-cased, values as sent") {
    PathArgument p;
    REQUIRE(parsePathArgument("FROM:<a@b> size=10240 body=8BITMIME smtputf8  RET=hdrs "
                              "ENVID=QQ+2B1",
                              "FROM:", p) == PathError::None);
    using P = std::pair<std::string, std::string>;
    REQUIRE(p.params.size() == 5);
    CHECK(p.params[0] == P{"SIZE", "10240"});
    CHECK(p.params[1] == P{"BODY", "8BITMIME"});
    CHECK(p.params[2] == P{"SMTPUTF8", ""});
    CHECK(p.params[3] == P{"RET", "hdrs"});
    CHECK(p.params[4] == P{"ENVID", "QQ+2B1"});
  }

  TEST_CASE("path: duplicate parameters are all returned") {
    PathArgument p;
    REQUIRE(parsePathArgument("FROM:<a@b> SIZE=1 SIZE=2", "FROM:", p) == PathError::None);
    REQUIRE(p.params.size() == 2);
    CHECK(p.params[0].second == "1");
    CHECK(p.params[1].second == "2");
  }

  TEST_CASE("path: quoted local part may hold '>', '<' and spaces") {
    PathArgument p;
    REQUIRE(parsePathArgument("TO:<\"a> <b c\"@x.example> NOTIFY=NEVER", "TO:", p) ==
            PathError::None);
    CHECK(p.path == "<\"a> <b c\"@x.example>");
    REQUIRE(p.params.size() == 1);
    CHECK(p.params[0].first == "NOTIFY");
  }

  TEST_CASE("path: escaped quote inside a quoted local part does not end the quote") {
    PathArgument p;
    REQUIRE(parsePathArgument(R"(TO:<"a\">b"@x.example>)", "TO:", p) == PathError::None);
    CHECK(p.path == R"(<"a\">b"@x.example>)");
    CHECK(p.params.empty());
    CHECK(parsePathArgument(R"(TO:<"a\">)", "TO:", p) == PathError::Syntax);
    CHECK(parsePathArgument(R"(TO:<"a\)", "TO:", p) == PathError::Syntax);
  }

  TEST_CASE("path: unbalanced brackets and quotes are Syntax") {
    PathArgument p;
    CHECK(parsePathArgument("FROM:<a@b", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM:a@b>", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM:<<a@b>>", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM:<a@b>>", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM:<a@b>x", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM:<a b@c>", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM:<\"a@b>", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM:<", "FROM:", p) == PathError::Syntax);
  }

  TEST_CASE("path: missing or wrong prefix is Syntax") {
    PathArgument p;
    CHECK(parsePathArgument("<a@b>", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM <a@b>", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("TO:<a@b>", "FROM:", p) == PathError::Syntax);
    CHECK(parsePathArgument("FROM:<a@b>", "TO:", p) == PathError::Syntax);
    CHECK(parsePathArgument("", "TO:", p) == PathError::Syntax);
    CHECK(parsePathArgument("TO:", "TO:", p) == PathError::Syntax);
    CHECK(parsePathArgument("TO:   ", "TO:", p) == PathError::Syntax);
  }

  TEST_CASE("path: malformed parameters are BadParameter") {
    PathArgument p;
    CHECK(parsePathArgument("FROM:<a@b> SIZE=", "FROM:", p) == PathError::BadParameter);
    CHECK(parsePathArgument("FROM:<a@b> =1", "FROM:", p) == PathError::BadParameter);
    CHECK(parsePathArgument("FROM:<a@b> -X=1", "FROM:", p) == PathError::BadParameter);
    CHECK(parsePathArgument("FROM:<a@b> S_Z=1", "FROM:", p) == PathError::BadParameter);
    CHECK(parsePathArgument("FROM:<a@b> A=b=c", "FROM:", p) == PathError::BadParameter);
    CHECK(parsePathArgument("FROM:<a@b> A=\x7f", "FROM:", p) == PathError::BadParameter);
    CHECK(parsePathArgument("FROM:<a@b> A=\xC3\xA9", "FROM:", p) == PathError::BadParameter);
    CHECK(parsePathArgument("FROM:<a@b> A=x\ty", "FROM:", p) == PathError::BadParameter);
    CHECK(parsePathArgument("FROM:<a@b> X-FOO-1=ok", "FROM:", p) == PathError::None);
  }

  TEST_CASE("bdat: size alone and size with LAST in any letter case") {
    std::uint64_t size = 99;
    bool last = true;
    CHECK(parseBdatArgument("22", size, last) == BdatError::None);
    CHECK(size == 22);
    CHECK_FALSE(last);
    for (const char* arg : {"22 LAST", "22 last", "22 LaSt"}) {
      CAPTURE(arg);
      size = 0;
      last = false;
      CHECK(parseBdatArgument(arg, size, last) == BdatError::None);
      CHECK(size == 22);
      CHECK(last);
    }
  }

  TEST_CASE("bdat: zero-size chunks and leading zeros") {
    std::uint64_t size = 99;
    bool last = false;
    CHECK(parseBdatArgument("0 LAST", size, last) == BdatError::None);
    CHECK(size == 0);
    CHECK(last);
    CHECK(parseBdatArgument("0", size, last) == BdatError::None);
    CHECK(size == 0);
    CHECK_FALSE(last);
    CHECK(parseBdatArgument("00000000000000000000000000000042", size, last) == BdatError::None);
    CHECK(size == 42);
  }

  TEST_CASE("bdat: size limit is 2^53") {
    std::uint64_t size = 0;
    bool last = false;
    CHECK(parseBdatArgument("9007199254740992 LAST", size, last) == BdatError::None);
    CHECK(size == kMaxBdatChunkSize);
    CHECK(size == 9007199254740992ULL);
    for (const char* arg : {"9007199254740993", "18446744073709551615", "18446744073709551616",
                            "99999999999999999999999999999999 LAST"}) {
      CAPTURE(arg);
      size = 7;
      last = true;
      CHECK(parseBdatArgument(arg, size, last) == BdatError::Syntax);
      CHECK(size == 0);
      CHECK_FALSE(last);
    }
  }

  TEST_CASE("bdat: anything but digits and one SP LAST is Syntax") {
    for (const char* arg :
         {"",         "LAST", " 22",       "22 ",      "22  LAST", "22\tLAST", "+22",
          "-1",       "0x10", "22LAST",    "22 LAST ", "22 LASTX", "22 LAS",   "22 LAST LAST",
          "22 FIRST", "2 2",  "22 last\r", "1e3",      "22,LAST",  "\xd9\xa3"}) {
      CAPTURE(arg);
      std::uint64_t size = 5;
      bool last = true;
      CHECK(parseBdatArgument(arg, size, last) == BdatError::Syntax);
      CHECK(size == 0);
      CHECK_FALSE(last);
    }
  }

  TEST_CASE("bdat: the argument parseCommand produces is what parseBdatArgument takes") {
    const Command cmd = parseOk("bdat 1000 last  ");
    CHECK(cmd.verb == Verb::Bdat);
    std::uint64_t size = 0;
    bool last = false;
    CHECK(parseBdatArgument(cmd.argument, size, last) == BdatError::None);
    CHECK(size == 1000);
    CHECK(last);
  }
}

}  // namespace
}  // namespace certrelay::smtp
