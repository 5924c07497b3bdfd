// The client name's decisions (Postfix's forward confirmation, smtpd_peer.c) and the values each
// outcome gives XCLIENT NAME / REVERSE_NAME, XFORWARD NAME, the logs and the Received header.

#include "proxy/smtp/client_name.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace certrelay::smtp {
namespace {

using std::chrono::milliseconds;
using Addresses = std::vector<std::string>;

// The name a PTR answer `ptr` for `addr` and a forward answer give, both found.
ClientName lookedUp(const std::string& addr, const std::string& ptr, const Addresses& forward) {
  const auto reverse = afterReverse(addr, DnsAnswer::Found, ptr, "");
  REQUIRE_FALSE(reverse.has_value());  // a usable name: on to the forward lookup
  return afterForward(addr, ptr, DnsAnswer::Found, forward, "");
}

TEST_SUITE("smtp") {
  TEST_CASE("client name: PTR query names, IPv4 and IPv6 nibbles") {
    CHECK(reverseQueryName("192.0.2.7") == "7.2.0.192.in-addr.arpa");
    CHECK(reverseQueryName("127.0.0.2") == "2.0.0.127.in-addr.arpa");
    CHECK(reverseQueryName("2001:db8::567:89ab") ==
          "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    CHECK(reverseQueryName("") == "");
    CHECK(reverseQueryName("mx.example.com") == "");
    CHECK(reverseQueryName(std::string("192.0.2.7\0x", 11)) == "");
  }

  TEST_CASE("client name: forward-confirmed, the name is used everywhere") {
    const ClientName name = lookedUp("192.0.2.7", "mx.example.com", {"198.51.100.1", "192.0.2.7"});
    CHECK(name.verified());
    CHECK(name.result == LookupResult::Confirmed);
    CHECK(name.name == "mx.example.com");
    CHECK(name.reverseName == "mx.example.com");
    CHECK_FALSE(name.warning);
    CHECK(xclientName(name) == "mx.example.com");
    CHECK_FALSE(xclientReverseName(name).has_value());  // NAME sets Postfix's reverse name too
    CHECK(xforwardName(name) == "mx.example.com");
    CHECK(logName(name) == "mx.example.com");
  }

  TEST_CASE("client name: IPv6 is compared as an address, not as text") {
    const ClientName name =
        lookedUp("2001:db8::7", "v6.example.com", {"2001:0db8:0000:0000:0000:0000:0000:0007"});
    CHECK(name.verified());
    // An IPv4 answer never confirms an IPv6 client (and the other way round).
    CHECK_FALSE(lookedUp("2001:db8::7", "v6.example.com", {"192.0.2.7"}).verified());
    CHECK_FALSE(lookedUp("192.0.2.7", "v4.example.com", {"::ffff:192.0.2.7"}).verified());
  }

  TEST_CASE("client name: a PTR name that does not list the address is not the name") {
    const ClientName name = lookedUp("192.0.2.8", "liar.example.com", {"192.0.2.80"});
    CHECK_FALSE(name.verified());
    CHECK(name.status == NameStatus::Forged);
    CHECK(name.result == LookupResult::Unconfirmed);
    CHECK(name.warning);
    CHECK(name.detail == "hostname liar.example.com does not resolve to address 192.0.2.8");
    CHECK(xclientName(name) == "[UNAVAILABLE]");
    // The PTR name is still the reverse name (reject_unknown_reverse_client_hostname passes).
    CHECK(xclientReverseName(name) == "liar.example.com");
    CHECK(xforwardName(name) == "[UNAVAILABLE]");
    CHECK(logName(name) == "unknown");
    CHECK_FALSE(lookedUp("192.0.2.8", "liar.example.com", {}).verified());
  }

  TEST_CASE("client name: forward lookup finds nothing (permanent) or fails (temporary)") {
    const ClientName gone =
        afterForward("192.0.2.9", "gone.example.com", DnsAnswer::NotFound, {}, "");
    CHECK(gone.status == NameStatus::Forged);
    CHECK(gone.result == LookupResult::Unconfirmed);
    CHECK(gone.detail ==
          "hostname gone.example.com does not resolve to address 192.0.2.9: Name or service not "
          "known");
    CHECK(xclientName(gone) == "[UNAVAILABLE]");

    const ClientName later =
        afterForward("192.0.2.9", "slow.example.com", DnsAnswer::TempFail, {}, "SERVFAIL");
    CHECK(later.status == NameStatus::TempFail);
    CHECK(later.result == LookupResult::TempFail);
    CHECK(later.detail ==
          "hostname slow.example.com does not resolve to address 192.0.2.9: Temporary failure in "
          "name resolution (SERVFAIL)");
    CHECK(xclientName(later) == "[TEMPUNAVAIL]");
    CHECK(xclientReverseName(later) == "slow.example.com");
    CHECK(xforwardName(later) == "[UNAVAILABLE]");  // XFORWARD has no [TEMPUNAVAIL]
    CHECK(logName(later) == "unknown");
  }

  TEST_CASE("client name: no PTR record is a permanent unknown, and not worth a warning") {
    const auto name = afterReverse("192.0.2.10", DnsAnswer::NotFound, "", "Domain name not found");
    REQUIRE(name.has_value());
    CHECK(name->status == NameStatus::PermFail);
    CHECK(name->reverseStatus == NameStatus::PermFail);
    CHECK(name->result == LookupResult::NoName);
    CHECK_FALSE(name->warning);
    CHECK(xclientName(*name) == "[UNAVAILABLE]");
    CHECK(xclientReverseName(*name) == "[UNAVAILABLE]");
    CHECK(logName(*name) == "unknown");
  }

  TEST_CASE("client name: the PTR lookup failing is temporary for both names") {
    const auto name = afterReverse("192.0.2.11", DnsAnswer::TempFail, "", "Connection refused");
    REQUIRE(name.has_value());
    CHECK(name->status == NameStatus::TempFail);
    CHECK(name->result == LookupResult::TempFail);
    CHECK(name->warning);
    CHECK(name->detail ==
          "cannot find the name of 192.0.2.11: Temporary failure in name resolution (Connection "
          "refused)");
    CHECK(xclientName(*name) == "[TEMPUNAVAIL]");
    CHECK(xclientReverseName(*name) == "[TEMPUNAVAIL]");
  }

  TEST_CASE("client name: malformed or numeric PTR names count as no name, with a warning") {
    for (const char* bad : {"1.2.3.4", "", "bad_name.example", "x..example", "-a.example",
                            "evil.example\r\nX", "a b.example"}) {
      CAPTURE(bad);
      const auto name = afterReverse("192.0.2.12", DnsAnswer::Found, bad, "");
      REQUIRE(name.has_value());
      CHECK(name->status == NameStatus::PermFail);
      CHECK(name->reverseStatus == NameStatus::PermFail);
      CHECK(name->result == LookupResult::NoName);
      CHECK(name->warning);
      CHECK(name->detail.find('\r') == std::string::npos);
      CHECK(xclientReverseName(*name) == "[UNAVAILABLE]");
    }
    CHECK(usablePtrName("mail-1.example.com"));
    CHECK(usablePtrName("localhost"));
    CHECK_FALSE(usablePtrName(std::string(254, 'a')));
  }

  TEST_CASE("client name: the deadline, before and after the PTR answer") {
    const ClientName early = timedOut("192.0.2.13", "", milliseconds(2000));
    CHECK(early.status == NameStatus::TempFail);
    CHECK(early.reverseStatus == NameStatus::TempFail);
    CHECK(early.result == LookupResult::Timeout);
    CHECK(early.detail ==
          "cannot find the name of 192.0.2.13: Temporary failure in name resolution (no answer "
          "within dns.timeout 2000ms)");
    CHECK(xclientName(early) == "[TEMPUNAVAIL]");
    CHECK(xclientReverseName(early) == "[TEMPUNAVAIL]");

    const ClientName late = timedOut("192.0.2.13", "slow.example.com", milliseconds(500));
    CHECK(late.status == NameStatus::TempFail);
    CHECK(late.reverseStatus == NameStatus::Ok);
    CHECK(late.result == LookupResult::Timeout);
    CHECK(xclientName(late) == "[TEMPUNAVAIL]");
    CHECK(xclientReverseName(late) == "slow.example.com");
  }

  TEST_CASE("client name: no lookup at all is Postfix's smtpd_peername_lookup = no") {
    const ClientName name = noLookup();
    CHECK(name.status == NameStatus::PermFail);
    CHECK(xclientName(name) == "[UNAVAILABLE]");
    CHECK(xclientReverseName(name) == "[UNAVAILABLE]");
    CHECK(xforwardName(name) == "[UNAVAILABLE]");
    CHECK(logName(name) == "unknown");
  }

  TEST_CASE("client name: metric and log keywords") {
    CHECK(lookupResultKeyword(LookupResult::Confirmed) == "confirmed");
    CHECK(lookupResultKeyword(LookupResult::Unconfirmed) == "unconfirmed");
    CHECK(lookupResultKeyword(LookupResult::NoName) == "no_name");
    CHECK(lookupResultKeyword(LookupResult::TempFail) == "tempfail");
    CHECK(lookupResultKeyword(LookupResult::Timeout) == "timeout");
  }
}

}  // namespace
}  // namespace certrelay::smtp
