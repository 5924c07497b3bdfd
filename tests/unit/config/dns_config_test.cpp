// config::parse of [dns] (dns.reverse_lookup, dns.servers, dns.timeout): defaults, values, the
// environment override, and every refusal with its `file:line: key: reason` text.

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "tests/support/config_files.h"

namespace certrelay::config {
namespace {

using std::chrono::milliseconds;

// The smallest valid file: eight lines, then "[dns]" on line 9, so a key is on line 10.
const std::string kHead =
    "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:2525\"\n[backend]\n"
    "address = \"127.0.0.1:10025\"\n[tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n[dns]\n";

class Files : public test::ConfigFiles {
 public:
  Config parse(const std::string& dns, const EnvironmentVariables& environment = {}) const {
    return parseText(kHead + dns, environment);
  }
  std::string error(const std::string& dns) const { return textError(kHead + dns); }
};

TEST_SUITE("config dns") {
  TEST_CASE("dns: off by default, the system's resolvers, a 2s deadline") {
    Files f;
    const std::string withoutDns = kHead.substr(0, kHead.size() - 6);
    for (const Config& c : {f.parse(""), f.parseText(withoutDns)}) {
      CHECK_FALSE(c.dns.reverseLookup);
      CHECK(c.dns.servers.empty());
      CHECK(c.dns.timeout == milliseconds(2'000));
    }
  }

  TEST_CASE("dns: every key read, a bare address gets port 53") {
    Files f;
    const Config c = f.parse(
        "reverse_lookup = true\n"
        "servers = [\"127.0.0.1:5353\", \"192.0.2.53\", \"[2001:db8::53]:53\", \"2001:db8::54\"]\n"
        "timeout = \"750ms\"\n");
    CHECK(c.dns.reverseLookup);
    REQUIRE(c.dns.servers.size() == 4);
    CHECK(c.dns.servers[0] == Endpoint{"127.0.0.1", 5353});
    CHECK(c.dns.servers[1] == Endpoint{"192.0.2.53", 53});
    CHECK(c.dns.servers[2] == Endpoint{"2001:db8::53", 53});
    CHECK(c.dns.servers[3] == Endpoint{"2001:db8::54", 53});
    CHECK(c.dns.servers[2].toString() == "[2001:db8::53]:53");
    CHECK(c.dns.timeout == milliseconds(750));
    CHECK(f.parse("timeout = 5\n").dns.timeout == milliseconds(5'000));
    CHECK(f.parse("timeout = \"60s\"\n").dns.timeout == milliseconds(60'000));
  }

  TEST_CASE("dns: CERTRELAY_DNS_<KEY> overrides, as for every section") {
    Files f;
    const Config c = f.parse("", {{"CERTRELAY_DNS_REVERSE_LOOKUP", "true"},
                                  {"CERTRELAY_DNS_TIMEOUT", "3s"},
                                  {"CERTRELAY_DNS_SERVERS", "[\"10.96.0.10\"]"}});
    CHECK(c.dns.reverseLookup);
    CHECK(c.dns.timeout == milliseconds(3'000));
    REQUIRE(c.dns.servers.size() == 1);
    CHECK(c.dns.servers[0] == Endpoint{"10.96.0.10", 53});
  }

  TEST_CASE("dns: refusals name the key and the line") {
    Files f;
    CHECK(f.error("reverse_lookup = \"yes\"\n") ==
          f.at(10, "dns.reverse_lookup: expected boolean, got string"));
    CHECK(f.error("timeout = \"61s\"\n") ==
          f.at(10,
               "dns.timeout: must be at most 60s: only MAIL waits for the name, but it does "
               "wait"));
    CHECK(f.error("timeout = 0\n") == f.at(10, "dns.timeout: must be greater than 0"));
    CHECK(f.error("timeout = \"2 s\"\n").find("dns.timeout: expected a duration") !=
          std::string::npos);
    CHECK(f.error("servers = \"127.0.0.1\"\n") ==
          f.at(10, "dns.servers: expected array of strings, got string"));
    CHECK(f.error("servers = []\n") ==
          f.at(10, "dns.servers: must not be empty (leave it out to use the system's resolvers)"));
    CHECK(f.error("servers = [53]\n") == f.at(10, "dns.servers[0]: expected string, got integer"));
    CHECK(f.error("servers = [\"ns.example.com:53\"]\n") ==
          f.at(10, "dns.servers[0]: 'ns.example.com' is not an IPv4 or IPv6 address"));
    CHECK(f.error("servers = [\"ns.example.com\"]\n") ==
          f.at(10,
               "dns.servers[0]: expected an address, address:port or [IPv6]:port (missing port), "
               "got \"ns.example.com\""));
    CHECK(f.error("servers = [\"127.0.0.1:0\"]\n") ==
          f.at(10, "dns.servers[0]: port must be from 1 to 65535"));
    CHECK(
        f.error("servers = [\"127.0.0.1:70000\"]\n").find("dns.servers[0]: expected an address") !=
        std::string::npos);
    CHECK(f.error("servers = [\"127.0.0.1\",\n  \"127.0.0.1:53\"]\n") ==
          f.at(11, "dns.servers[1]: '127.0.0.1:53' is listed twice (also dns.servers[0])"));
    CHECK(f.error("reverse_lookups = true\n") == f.at(10, "dns.reverse_lookups: unknown key"));
    CHECK(f.error("").empty());
  }

  TEST_CASE("dns: must be a table") {
    Files f;
    CHECK(f.textError("dns = true\n" + kHead.substr(0, kHead.size() - 6)) ==
          f.at(1, "dns: expected table, got boolean"));
  }
}

}  // namespace
}  // namespace certrelay::config
