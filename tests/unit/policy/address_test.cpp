// parsePath and decideRecipient: the open-relay boundary (hostile-inputs.md RL-01..RL-11).

#include "policy/address.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace certrelay::policy {
namespace {

// local.example is ours; remote.example is not; [192.0.2.1] is the proxy's own address ("[P]"
// in hostile-inputs.md), deliberately not configured unless a test says so.
Policy makePolicy(const std::vector<std::string>& domains = {"local.example"}) {
  Policy policy;
  policy.localDomains = LocalDomains(domains);
  return policy;
}

const char* const kRelayDenied = ": Relay access denied";
const char* const kBadSyntax = "501 5.1.3 Bad recipient address syntax";
const char* const kNeedUtf8 = "553 5.6.7 Must declare SMTPUTF8 to send unicode address";

std::string denied(const std::string& written) {
  return "454 4.7.1 <" + written + ">" + kRelayDenied;
}

const char* verdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::Accept:
      return "Accept";
    case Verdict::RelayDenied:
      return "RelayDenied";
    case Verdict::BadAddress:
      return "BadAddress";
  }
  return "?";
}

struct Probe {
  const char* rcpt;
  Verdict untrusted;             // with [192.0.2.1] not configured
  const char* reply;             // expected reply for the untrusted client
  const char* trustedCanonical;  // forwarded form for a trusted client; nullptr = BadAddress
};

// nmap smtp-open-relay tests 1-16 (1-4 differ only in MAIL FROM, which does not change the
// decision), plus the RL-03/RL-05/RL-09/RL-11 variants.
const std::vector<Probe> kProbes = {
    // RL-01, nmap 1-4
    {"<relaytest@remote.example>", Verdict::RelayDenied,
     "454 4.7.1 <relaytest@remote.example>: Relay access denied", "<relaytest@remote.example>"},
    // RL-02, nmap 5-6: percent hack
    {"<relaytest%remote.example@[192.0.2.1]>", Verdict::RelayDenied,
     "454 4.7.1 <relaytest%remote.example@[192.0.2.1]>: Relay access denied",
     "<relaytest%remote.example@[192.0.2.1]>"},
    {"<relaytest%remote.example@local.example>", Verdict::RelayDenied,
     "454 4.7.1 <relaytest%remote.example@local.example>: Relay access denied",
     "<relaytest%remote.example@local.example>"},
    // RL-03, nmap 7, 8, 10: quoted local parts
    {"<\"relaytest@remote.example\">", Verdict::BadAddress, kBadSyntax, nullptr},
    {"<\"relaytest%remote.example\">", Verdict::BadAddress, kBadSyntax, nullptr},
    {"<\"relaytest@remote.example\"@[192.0.2.1]>", Verdict::RelayDenied,
     "454 4.7.1 <\"relaytest@remote.example\"@[192.0.2.1]>: Relay access denied",
     "<\"relaytest@remote.example\"@[192.0.2.1]>"},
    {"<\"relaytest@remote.example\"@local.example>", Verdict::RelayDenied,
     "454 4.7.1 <\"relaytest@remote.example\"@local.example>: Relay access denied",
     "<\"relaytest@remote.example\"@local.example>"},
    // RL-04, nmap 9, 11: double @
    {"<relaytest@remote.example@[192.0.2.1]>", Verdict::RelayDenied,
     "454 4.7.1 <relaytest@remote.example@[192.0.2.1]>: Relay access denied",
     "<relaytest@remote.example@[192.0.2.1]>"},
    {"<relaytest@remote.example@local.example>", Verdict::RelayDenied,
     "454 4.7.1 <relaytest@remote.example@local.example>: Relay access denied",
     "<relaytest@remote.example@local.example>"},
    // RL-05, nmap 12-13: source routes (route dropped, final mailbox decides)
    {"<@[192.0.2.1]:relaytest@remote.example>", Verdict::RelayDenied,
     "454 4.7.1 <@[192.0.2.1]:relaytest@remote.example>: Relay access denied",
     "<relaytest@remote.example>"},
    {"<@local.example:relaytest@remote.example>", Verdict::RelayDenied,
     "454 4.7.1 <@local.example:relaytest@remote.example>: Relay access denied",
     "<relaytest@remote.example>"},
    {"<@a.example,@b.example:u@remote.example>", Verdict::RelayDenied,
     "454 4.7.1 <@a.example,@b.example:u@remote.example>: Relay access denied",
     "<u@remote.example>"},
    // RL-06, nmap 14-16: bang paths
    {"<remote.example!relaytest>", Verdict::BadAddress, kBadSyntax, nullptr},
    {"<remote.example!relaytest@[192.0.2.1]>", Verdict::RelayDenied,
     "454 4.7.1 <remote.example!relaytest@[192.0.2.1]>: Relay access denied",
     "<remote.example!relaytest@[192.0.2.1]>"},
    {"<remote.example!relaytest@local.example>", Verdict::RelayDenied,
     "454 4.7.1 <remote.example!relaytest@local.example>: Relay access denied",
     "<remote.example!relaytest@local.example>"},
    // RL-09: address literals
    {"<u@[192.0.2.1]>", Verdict::RelayDenied, "454 4.7.1 <u@[192.0.2.1]>: Relay access denied",
     "<u@[192.0.2.1]>"},
    {"<u@[198.51.100.7]>", Verdict::RelayDenied,
     "454 4.7.1 <u@[198.51.100.7]>: Relay access denied", "<u@[198.51.100.7]>"},
    {"<u@[127.0.0.1]>", Verdict::RelayDenied, "454 4.7.1 <u@[127.0.0.1]>: Relay access denied",
     "<u@[127.0.0.1]>"},
    {"<u@[IPv6:::1]>", Verdict::RelayDenied, "454 4.7.1 <u@[IPv6:::1]>: Relay access denied",
     "<u@[IPv6:::1]>"},
    {"<u@192.0.2.10>", Verdict::BadAddress, kBadSyntax, nullptr},
    // RL-11: degenerate recipients
    {"<>", Verdict::BadAddress, kBadSyntax, nullptr},
    {"<@>", Verdict::BadAddress, kBadSyntax, nullptr},
    {"<u@>", Verdict::BadAddress, kBadSyntax, nullptr},
    {"<@local.example>", Verdict::BadAddress, kBadSyntax, nullptr},
    // RL-10: lax syntax the command parser may hand over unchanged
    {"<Name <u@remote.example>>", Verdict::BadAddress, kBadSyntax, nullptr},
    {"<u@remote.example> (c)", Verdict::BadAddress, kBadSyntax, nullptr},
};

}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("relay probes: untrusted client is never accepted") {
    const Policy policy = makePolicy();
    for (const Probe& probe : kProbes) {
      CAPTURE(probe.rcpt);
      const Decision decision = decideRecipient(policy, false, probe.rcpt, false);
      CHECK(std::string(verdictName(decision.verdict)) == verdictName(probe.untrusted));
      CHECK(decision.reply == probe.reply);
      CHECK(decision.canonical == probe.rcpt);  // refused: the address as given
    }
  }

  TEST_CASE("relay probes: still refused when the proxy's own literal is local") {
    // With [192.0.2.1] configured, only the plain literal address becomes local; every routing
    // form aimed at it stays refused.
    const Policy policy = makePolicy({"local.example", "[192.0.2.1]"});
    for (const Probe& probe : kProbes) {
      CAPTURE(probe.rcpt);
      const Decision decision = decideRecipient(policy, false, probe.rcpt, false);
      if (std::string(probe.rcpt) == "<u@[192.0.2.1]>") {
        CHECK(decision.verdict == Verdict::Accept);
        CHECK(decision.canonical == "<u@[192.0.2.1]>");
      } else {
        CHECK(std::string(verdictName(decision.verdict)) == verdictName(probe.untrusted));
      }
    }
  }

  TEST_CASE("relay probes: trusted client relays, but bad syntax stays bad") {
    const Policy policy = makePolicy();
    for (const Probe& probe : kProbes) {
      CAPTURE(probe.rcpt);
      const Decision decision = decideRecipient(policy, true, probe.rcpt, false);
      if (probe.trustedCanonical == nullptr) {
        CHECK(decision.verdict == Verdict::BadAddress);
        CHECK(decision.reply == kBadSyntax);
      } else {
        CHECK(decision.verdict == Verdict::Accept);
        CHECK(decision.canonical == probe.trustedCanonical);
        CHECK(decision.reply.empty());
      }
    }
  }

  TEST_CASE("legal recipients to a local domain are accepted for anyone") {
    const Policy policy = makePolicy();
    const std::pair<const char*, const char*> cases[] = {
        {"<u@local.example>", "<u@local.example>"},
        {"<U@LOCAL.EXAMPLE>", "<U@LOCAL.EXAMPLE>"},  // case kept as written, match ignores it
        {"<u@Local.Example>", "<u@Local.Example>"},
        {"<u@local.example.>", "<u@local.example>"},  // one trailing dot dropped
        {"<first.last@local.example>", "<first.last@local.example>"},
        {"<a+tag@local.example>", "<a+tag@local.example>"},
        {"<o'brien@local.example>", "<o'brien@local.example>"},
        {"<x#y$z&{}|~^`=?/*@local.example>", "<x#y$z&{}|~^`=?/*@local.example>"},
        {"<\"quoted name\"@local.example>", "<\"quoted name\"@local.example>"},
        {"<\"a\\\"b\"@local.example>", "<\"a\\\"b\"@local.example>"},
        {"<\"\"@local.example>", "<\"\"@local.example>"},
        {"<postmaster@local.example>", "<postmaster@local.example>"},
        {"<postmaster>", "<postmaster>"},
        {"<PostMaster>", "<postmaster>"},
        {"postmaster", "<postmaster>"},
    };
    for (const auto& entry : cases) {
      const auto& rcpt = entry.first;  // not a structured binding: CAPTURE is a lambda
      const auto& canonical = entry.second;
      CAPTURE(rcpt);
      const Decision decision = decideRecipient(policy, false, rcpt, false);
      CHECK(decision.verdict == Verdict::Accept);
      CHECK(decision.canonical == canonical);
      CHECK(decision.reply.empty());
    }
  }

  TEST_CASE("subdomains follow the configured pattern") {
    CHECK(decideRecipient(makePolicy(), false, "<u@sub.local.example>", false).verdict ==
          Verdict::RelayDenied);
    const Policy withSubdomains = makePolicy({"local.example", ".local.example"});
    CHECK(decideRecipient(withSubdomains, false, "<u@sub.local.example>", false).verdict ==
          Verdict::Accept);
    CHECK(decideRecipient(withSubdomains, false, "<u@sublocal.example>", false).verdict ==
          Verdict::RelayDenied);
    CHECK(decideRecipient(makePolicy({".local.example"}), false, "<u@local.example>", false)
              .verdict == Verdict::RelayDenied);
  }

  TEST_CASE("lax forms: bare and routed addresses decide like the canonical form") {
    const Policy policy = makePolicy();
    const std::pair<const char*, const char*> sameAs[] = {
        {"u@remote.example", "<u@remote.example>"},
        {"u@local.example", "<u@local.example>"},
        {"<@a.example:u@local.example>", "<u@local.example>"},
        {"<@a.example,@[192.0.2.1]:u@local.example>", "<u@local.example>"},
        {"@a.example:u@local.example", "<u@local.example>"},
        {"<@local.example:u@remote.example>", "<u@remote.example>"},
        {"u%remote.example@local.example", "<u%remote.example@local.example>"},
        {"PostMaster", "<PostMaster>"},
    };
    for (const auto& entry : sameAs) {
      const auto& lax = entry.first;  // not a structured binding: CAPTURE is a lambda
      const auto& canonical = entry.second;
      CAPTURE(lax);
      const Decision a = decideRecipient(policy, false, lax, false);
      const Decision b = decideRecipient(policy, false, canonical, false);
      CHECK(a.verdict == b.verdict);
      if (a.verdict == Verdict::Accept) {
        CHECK(a.canonical == b.canonical);
      }
    }
    // Only the canonical form is forwarded, and a refusal quotes what the client sent.
    CHECK(decideRecipient(policy, false, "u@local.example", false).canonical ==
          "<u@local.example>");
    CHECK(decideRecipient(policy, false, "<@a.example:u@local.example>", false).canonical ==
          "<u@local.example>");
    CHECK(decideRecipient(policy, false, "u@remote.example", false).reply ==
          denied("u@remote.example"));
  }

  TEST_CASE("refusal quotes the address exactly as written") {
    const Decision decision = decideRecipient(makePolicy(), false, "<U@Remote.Example.>", false);
    CHECK(decision.verdict == Verdict::RelayDenied);
    CHECK(decision.reply == "454 4.7.1 <U@Remote.Example.>: Relay access denied");
    CHECK(decision.canonical == "<U@Remote.Example.>");
  }

  TEST_CASE("decideRecipient: null path and non-ASCII replies") {
    const Policy policy = makePolicy();
    for (bool trusted : {false, true}) {
      CAPTURE(trusted);
      const Decision null = decideRecipient(policy, trusted, "<>", false);
      CHECK(null.verdict == Verdict::BadAddress);
      CHECK(null.reply == kBadSyntax);
      const Decision eightBit =
          decideRecipient(policy, trusted, "<j\xc3\xa9@local.example>", false);
      CHECK(eightBit.verdict == Verdict::BadAddress);
      CHECK(eightBit.reply == kNeedUtf8);
    }
  }

  TEST_CASE("decideRecipient: SMTPUTF8 allows UTF-8 in local part and domain") {
    const Policy policy = makePolicy({"local.example",
                                      "b\xc3\xbc"
                                      "cher.example"});
    const Decision local = decideRecipient(policy, false, "<j\xc3\xa9@local.example>", true);
    CHECK(local.verdict == Verdict::Accept);
    CHECK(local.canonical == "<j\xc3\xa9@local.example>");
    CHECK(decideRecipient(policy, false,
                          "<u@b\xc3\xbc"
                          "cher.example>",
                          true)
              .verdict == Verdict::Accept);
    CHECK(decideRecipient(policy, false, "<j\xc3\xa9@remote.example>", true).reply ==
          "454 4.7.1 <j\xc3\xa9@remote.example>: Relay access denied");
  }

  TEST_CASE("parsePath: mailbox fields") {
    ParsedAddress p = parsePath("<\"a b\"@Example.COM.>", false);
    REQUIRE(p.error == AddressError::None);
    CHECK_FALSE(p.null);
    CHECK(p.mailbox.localPart == "\"a b\"");
    CHECK(p.mailbox.domain == "Example.COM");
    CHECK_FALSE(p.mailbox.routing);
    CHECK_FALSE(p.mailbox.ipLiteral);
    CHECK(p.mailbox.canonical() == "<\"a b\"@Example.COM>");

    p = parsePath("<u@[IPv6:2001:db8::1]>", false);
    REQUIRE(p.error == AddressError::None);
    CHECK(p.mailbox.domain == "[IPv6:2001:db8::1]");
    CHECK(p.mailbox.ipLiteral);

    p = parsePath("<>", false);
    CHECK(p.error == AddressError::None);
    CHECK(p.null);

    p = parsePath("<Postmaster>", false);
    REQUIRE(p.error == AddressError::None);
    CHECK(p.mailbox.domain.empty());
    CHECK(p.mailbox.canonical() == "<postmaster>");
  }

  TEST_CASE("parsePath: routing is flagged for every form, and only for those") {
    const std::pair<const char*, bool> cases[] = {
        {"<u@d.example>", false},
        {"<u%r.example@d.example>", true},
        {"<r.example!u@d.example>", true},
        {"<\"u@r.example\"@d.example>", true},
        {"<\"u%r\"@d.example>", true},
        {"<\"r!u\"@d.example>", true},
        {"<\"u\\@r\"@d.example>", true},
        {"<u@r.example@d.example>", true},
        {"<\"u\"@r.example@d.example>", true},
        {"<\"u.v\"@d.example>", false},
        {"<@r.example:u@d.example>", false},  // source route: dropped, not routing
    };
    for (const auto& entry : cases) {
      const auto& path = entry.first;  // not a structured binding: CAPTURE is a lambda
      const auto& routing = entry.second;
      CAPTURE(path);
      const ParsedAddress p = parsePath(path, false);
      REQUIRE(p.error == AddressError::None);
      CHECK(p.mailbox.routing == routing);
      CHECK(p.mailbox.domain == "d.example");
    }
    // A second '@' splits at the last one; the rest is forwarded as written for trusted clients.
    const ParsedAddress twoAt = parsePath("<a@remote.example@local.example>", false);
    CHECK(twoAt.mailbox.localPart == "a@remote.example");
    CHECK(twoAt.mailbox.canonical() == "<a@remote.example@local.example>");
  }

  TEST_CASE("parsePath: syntax errors") {
    const char* const bad[] = {
        "",
        "<",
        ">",
        "<u@d.example",
        "u@d.example>",
        "<<u@d.example>>",
        "<u@d.example> ",
        " <u@d.example>",
        "<u v@d.example>",
        "<u@d .example>",
        "<.u@d.example>",
        "<u.@d.example>",
        "<u..v@d.example>",
        "<u@.d.example>",
        "<u@d..example>",
        "<u@d.example..>",
        "<u@-d.example>",
        "<u@d-.example>",
        "<u@d_x.example>",
        "<u@d.example:25>",
        "<u@192.0.2.1>",
        "<u@1.2>",
        "<u@[300.1.1.1]>",
        "<u@[1.2.3]>",
        "<u@[IPv6:zz]>",
        "<u@[IPv6:192.0.2.1]>",
        "<u@[tag:content]>",
        "<u@[192.0.2.1].>",
        "<u@[192.0.2.1>",
        "<u@[]>",
        "<\"unterminated@d.example>",
        "<\"a\"b@d.example>",
        "<a\"b\"@d.example>",
        "<\"a\\",
        "<\"a\">",
        "<u>",
        "<@>",
        "<@d.example>",
        "<@d.example:>",
        "<@:u@d.example>",
        "<@d.example;u@d.example>",
        "<@a.example,u@d.example>",
        "<@a.example,@:u@d.example>",
        "<@[1.2.3.4]x:u@d.example>",
        "<@-a.example:u@d.example>",
        "<u@>",
        "<@u>",
        "@",
        "<u@d.example@>",
        "<u@@d.example>",
        "<\"postmaster\">",
        "<postmaster.>",
        "<postmasters>",
        "<u@(comment)d.example>",
        "<u\\@d.example>",
    };
    for (const char* path : bad) {
      CAPTURE(path);
      CHECK(parsePath(path, false).error == AddressError::Syntax);
      CHECK(parsePath(path, true).error == AddressError::Syntax);
      CHECK(decideRecipient(makePolicy(), true, path, false).verdict == Verdict::BadAddress);
    }
  }

  TEST_CASE("parsePath: control characters are syntax errors, even quoted") {
    for (const std::string& path :
         {std::string("<a\0@local.example>", 18), std::string("<a\r@local.example>"),
          std::string("<a@local.example\n>"), std::string("<\"a\tb\"@local.example>"),
          std::string("<a\x7f@local.example>"), std::string("<\"a\\\x01\"@local.example>")}) {
      CAPTURE(path);
      CHECK(parsePath(path, false).error == AddressError::Syntax);
      CHECK(decideRecipient(makePolicy(), false, path, false).reply == kBadSyntax);
    }
  }

  TEST_CASE("parsePath: length limits") {
    const std::string local64(64, 'l');
    const std::string local65(65, 'l');
    CHECK(parsePath("<" + local64 + "@local.example>", false).error == AddressError::None);
    CHECK(parsePath("<" + local65 + "@local.example>", false).error == AddressError::TooLong);
    CHECK(parsePath("<\"" + std::string(63, 'q') + "\"@local.example>", false).error ==
          AddressError::TooLong);  // 65 octets as written, quotes included

    const std::string label63(63, 'a');
    const std::string label64(64, 'a');
    CHECK(parsePath("<u@" + label63 + ".example>", false).error == AddressError::None);
    CHECK(parsePath("<u@" + label64 + ".example>", false).error == AddressError::TooLong);

    // Whole path: 256 octets including the brackets.
    const std::string domain250 =
        label63 + "." + label63 + "." + label63 + "." + std::string(58, 'b');  // 250 octets
    REQUIRE(domain250.size() == 250);
    CHECK(parsePath("<abc@" + domain250 + ">", false).error == AddressError::None);      // 256
    CHECK(parsePath("<abcd@" + domain250 + ">", false).error == AddressError::TooLong);  // 257
    CHECK(parsePath("abc@" + domain250, false).error ==
          AddressError::None);  // bare: counted as 256
    CHECK(parsePath("abcd@" + domain250, false).error == AddressError::TooLong);
    const std::string domain256 = domain250 + ".cccc" + "d";
    CHECK(parsePath("<u@" + domain256 + ">", false).error == AddressError::TooLong);
    CHECK(decideRecipient(makePolicy(), true, "<" + local65 + "@remote.example>", false).reply ==
          kBadSyntax);
  }

  TEST_CASE("parsePath: 8-bit needs SMTPUTF8 and must be well-formed UTF-8") {
    CHECK(parsePath("<j\xc3\xa9@d.example>", false).error == AddressError::NonAscii);
    CHECK(parsePath("<u@d\xc3\xa9.example>", false).error == AddressError::NonAscii);
    CHECK(parsePath("<j\xc3\xa9@d.example>", true).error == AddressError::None);
    CHECK(parsePath("<\"j\xc3\xa9 x\"@d.example>", true).error == AddressError::None);
    CHECK(parsePath("<u@b\xc3\xbc"
                    "cher.example>",
                    true)
              .error == AddressError::None);
    CHECK(parsePath("<\xf0\x9f\x93\xa7@d.example>", true).error == AddressError::None);
    CHECK(parsePath("<j\xff@d.example>", true).error == AddressError::Syntax);
    CHECK(parsePath("<j\xc3@d.example>", true).error == AddressError::Syntax);          // truncated
    CHECK(parsePath("<j\xc0\xaf@d.example>", true).error == AddressError::Syntax);      // overlong
    CHECK(parsePath("<j\xed\xa0\x80@d.example>", true).error == AddressError::Syntax);  // surrogate
    CHECK(parsePath("<j\xf4\x90\x80\x80@d.example>", true).error == AddressError::Syntax);
    CHECK(parsePath("<u@[192.0.2.\xc3\xa9]>", true).error == AddressError::Syntax);
  }

  TEST_CASE("parsePath: source route hosts must be valid, and are dropped") {
    ParsedAddress p = parsePath("<@a.example,@[IPv6:::1],@c.example.:u@d.example>", false);
    REQUIRE(p.error == AddressError::None);
    CHECK(p.mailbox.canonical() == "<u@d.example>");
    CHECK_FALSE(p.mailbox.routing);
    CHECK(parsePath("<@192.0.2.1:u@d.example>", false).error == AddressError::Syntax);
    CHECK(parsePath("<@" + std::string(64, 'a') + ".example:u@d.example>", false).error ==
          AddressError::TooLong);
  }

  TEST_CASE("Mailbox::canonical builds <local@domain> or <postmaster>") {
    Mailbox m;
    m.localPart = "u";
    m.domain = "d.example";
    CHECK(m.canonical() == "<u@d.example>");
    m.localPart = "PostMaster";
    m.domain.clear();
    CHECK(m.canonical() == "<postmaster>");
  }

}  // TEST_SUITE

}  // namespace certrelay::policy
