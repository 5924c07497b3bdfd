// policy.relay_networks: CIDR matching for IPv4, IPv6 and IPv4-mapped client addresses, the
// edges of the prefix range, and what parse() refuses.

#include "policy/networks.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace certrelay::policy {
namespace {

// The PolicyError text, or "" when the list was accepted.
std::string parseError(const std::vector<std::string>& cidrs) {
  try {
    NetworkList::parse(cidrs);
  } catch (const PolicyError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("networks: an empty list contains nothing") {
    const NetworkList none = NetworkList::parse({});
    CHECK(none.empty());
    CHECK(none.size() == 0);
    CHECK_FALSE(none.contains("127.0.0.1"));
    CHECK_FALSE(none.contains("::1"));
    CHECK(NetworkList().empty());
  }

  TEST_CASE("networks: IPv4 network boundaries") {
    const NetworkList list = NetworkList::parse({"192.0.2.0/24", "10.128.0.0/9"});
    CHECK_FALSE(list.empty());
    CHECK(list.size() == 2);
    CHECK(list.contains("192.0.2.0"));
    CHECK(list.contains("192.0.2.7"));
    CHECK(list.contains("192.0.2.255"));
    CHECK_FALSE(list.contains("192.0.1.255"));
    CHECK_FALSE(list.contains("192.0.3.0"));
    // /9: the top bit of the second byte is part of the network.
    CHECK(list.contains("10.128.0.0"));
    CHECK(list.contains("10.255.255.255"));
    CHECK_FALSE(list.contains("10.127.255.255"));
    CHECK_FALSE(list.contains("11.128.0.0"));
  }

  TEST_CASE("networks: IPv4 /32, bare address and /0") {
    const NetworkList host = NetworkList::parse({"198.51.100.7/32", "203.0.113.9"});
    CHECK(host.contains("198.51.100.7"));
    CHECK_FALSE(host.contains("198.51.100.6"));
    CHECK_FALSE(host.contains("198.51.100.8"));
    CHECK(host.contains("203.0.113.9"));
    CHECK_FALSE(host.contains("203.0.113.8"));
    const NetworkList all = NetworkList::parse({"0.0.0.0/0"});
    CHECK(all.contains("0.0.0.0"));
    CHECK(all.contains("255.255.255.255"));
    CHECK(all.contains("192.0.2.7"));
    CHECK_FALSE(all.contains("2001:db8::7"));  // an IPv4 network never holds an IPv6 client
  }

  TEST_CASE("networks: IPv6 networks, bracketed or not") {
    const NetworkList list = NetworkList::parse({"2001:db8::/32", "[fd00:1:2::]/48"});
    CHECK(list.contains("2001:db8::7"));
    CHECK(list.contains("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    CHECK(list.contains("2001:DB8::1"));
    CHECK_FALSE(list.contains("2001:db9::"));
    CHECK_FALSE(list.contains("2001:db7:ffff::1"));
    CHECK(list.contains("fd00:1:2:3::1"));
    CHECK_FALSE(list.contains("fd00:1:3::1"));
    CHECK_FALSE(list.contains("192.0.2.7"));
  }

  TEST_CASE("networks: IPv6 /128, bare address, /127 and /0") {
    const NetworkList host = NetworkList::parse({"2001:db8::7/128", "[::1]"});
    CHECK(host.contains("2001:db8::7"));
    CHECK(host.contains("2001:0db8:0000::0007"));
    CHECK_FALSE(host.contains("2001:db8::6"));
    CHECK_FALSE(host.contains("2001:db8::8"));
    CHECK(host.contains("::1"));
    CHECK_FALSE(host.contains("::"));
    const NetworkList pair = NetworkList::parse({"2001:db8::6/127"});
    CHECK(pair.contains("2001:db8::6"));
    CHECK(pair.contains("2001:db8::7"));
    CHECK_FALSE(pair.contains("2001:db8::8"));
    const NetworkList all = NetworkList::parse({"::/0"});
    CHECK(all.contains("::"));
    CHECK(all.contains("2001:db8::7"));
    CHECK(all.contains("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  }

  TEST_CASE("networks: an IPv4-mapped client address is compared as IPv4") {
    const NetworkList v4 = NetworkList::parse({"192.0.2.0/24"});
    CHECK(v4.contains("::ffff:192.0.2.7"));
    CHECK(v4.contains("::FFFF:192.0.2.255"));
    CHECK(v4.contains("::ffff:c000:207"));  // the same address in hex form
    CHECK_FALSE(v4.contains("::ffff:192.0.3.7"));
    // IPv4-compatible (deprecated ::a.b.c.d) and NAT64 forms are not mapped: IPv6.
    CHECK_FALSE(v4.contains("::192.0.2.7"));
    CHECK_FALSE(v4.contains("64:ff9b::192.0.2.7"));
    // ::/0 holds every IPv6 address but no IPv4 client, mapped or not.
    const NetworkList v6all = NetworkList::parse({"::/0"});
    CHECK_FALSE(v6all.contains("::ffff:192.0.2.7"));
    CHECK_FALSE(v6all.contains("192.0.2.7"));
    CHECK(v6all.contains("::192.0.2.7"));
  }

  TEST_CASE("networks: an IPv4-mapped network entry matches IPv4 clients") {
    const NetworkList list = NetworkList::parse({"[::ffff:127.0.0.0]/104"});
    CHECK(list.contains("127.0.0.1"));
    CHECK(list.contains("::ffff:127.1.2.3"));
    CHECK_FALSE(list.contains("128.0.0.1"));
    CHECK_FALSE(list.contains("::1"));
  }

  TEST_CASE("networks: what is not a plain numeric address is never contained") {
    const NetworkList all = NetworkList::parse({"0.0.0.0/0", "::/0"});
    for (const char* text : {"", "192.0.2.7:25", "[2001:db8::7]", "[192.0.2.7]", "fe80::1%eth0",
                             "192.0.2", " 192.0.2.7", "192.0.2.7 ", "192.0.2.7/32", "localhost",
                             "0x7f.1", "unknown", "1111:2222:3333:4444:5555:6666:7777:8888:9999"}) {
      const std::string ip = text;
      CAPTURE(ip);
      CHECK_FALSE(all.contains(ip));
    }
    CHECK_FALSE(all.contains(std::string(100, '1')));
    CHECK_FALSE(all.contains(std::string_view("192.0.2.7\0junk", 14)));
  }

  TEST_CASE("networks: a bad entry is a PolicyError naming its index and reason") {
    CHECK(parseError({"10.0.0.0/8", "192.0.2.1/24"}) ==
          "policy.relay_networks[1]: bad CIDR '192.0.2.1/24': host bits set beyond /24 (use "
          "'192.0.2.0/24')");
    CHECK(parseError({"2001:db8::1/32"}) ==
          "policy.relay_networks[0]: bad CIDR '2001:db8::1/32': host bits set beyond /32 (use "
          "'2001:db8::/32')");
    CHECK(parseError({"10.0.0.0/8", "::/0", "mail.example.com"}) ==
          "policy.relay_networks[2]: bad CIDR 'mail.example.com': not an IPv4 or IPv6 address");
    CHECK(parseError({"192.0.2.0/33"}) ==
          "policy.relay_networks[0]: bad CIDR '192.0.2.0/33': prefix length must be a number "
          "from 0 to 32");
    CHECK(parseError({"[192.0.2.0]/24"}) ==
          "policy.relay_networks[0]: bad CIDR '[192.0.2.0]/24': brackets are only for IPv6 "
          "addresses");
    CHECK(parseError({""}) == "policy.relay_networks[0]: bad CIDR '': empty");
    CHECK(parseError({"192.0.2.0/24", "::1"}).empty());
  }
}

}  // namespace certrelay::policy
