#include "proxy/smtp/proxy_header.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace certrelay::smtp {
namespace {

struct Outcome {
  ProxyParse result;
  ProxyHeader header;
  std::size_t length = 0;
  std::string error;
};

Outcome parse(std::string_view bytes) {
  Outcome out{};
  out.result = parseProxyHeader(bytes, out.header, out.length, out.error);
  return out;
}

// Every proper prefix of `bytes` asks for more.
void checkPrefixesNeedMore(const std::string& bytes, std::size_t headerLength) {
  for (std::size_t n = 0; n < headerLength; ++n) {
    CAPTURE(n);
    CHECK(parse(std::string_view(bytes).substr(0, n)).result == ProxyParse::NeedMore);
  }
}

std::string v2(unsigned char versionCommand, unsigned char family, const std::string& block) {
  std::string out("\r\n\r\n\0\r\nQUIT\n", 12);
  out.push_back(static_cast<char>(versionCommand));
  out.push_back(static_cast<char>(family));
  out.push_back(static_cast<char>((block.size() >> 8) & 0xff));
  out.push_back(static_cast<char>(block.size() & 0xff));
  return out + block;
}

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) {
    out.push_back(static_cast<char>(v));
  }
  return out;
}

TEST_SUITE("smtp") {
  TEST_CASE("PROXY v1: TCP4 and TCP6 give the client and the destination") {
    const std::string line = "PROXY TCP4 192.0.2.10 198.51.100.1 40123 25\r\n";
    const std::string wire = line + "EHLO x\r\n";
    const Outcome v4 = parse(wire);
    REQUIRE(v4.result == ProxyParse::Done);
    CHECK(v4.length == line.size());
    CHECK(v4.header.version == 1);
    CHECK(v4.header.hasAddresses);
    CHECK(v4.header.source.addr == "192.0.2.10");
    CHECK(v4.header.source.port == 40123);
    CHECK(v4.header.destination.addr == "198.51.100.1");
    CHECK(v4.header.destination.port == 25);
    checkPrefixesNeedMore(wire, line.size());
    const Outcome v6 = parse("PROXY TCP6 2001:db8:0:0::7 2001:db8::1 65535 0\r\n");
    REQUIRE(v6.result == ProxyParse::Done);
    CHECK(v6.header.source.addr == "2001:db8::7");  // canonical
    CHECK(v6.header.source.port == 65535);
    CHECK(v6.header.destination.port == 0);
    const Outcome mapped = parse("PROXY TCP6 ::ffff:192.0.2.9 ::1 1 2\r\n");
    REQUIRE(mapped.result == ProxyParse::Done);
    CHECK(mapped.header.source.addr == "192.0.2.9");
  }

  TEST_CASE("PROXY v1: UNKNOWN is the balancer's own connection") {
    const Outcome unknown = parse("PROXY UNKNOWN\r\n");
    REQUIRE(unknown.result == ProxyParse::Done);
    CHECK_FALSE(unknown.header.hasAddresses);
    CHECK(unknown.length == 15);
    CHECK(parse("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").result == ProxyParse::Done);
  }

  TEST_CASE("PROXY v1: every malformed line is refused") {
    const std::vector<std::string> bad = {
        "PROXY TCP4  192.0.2.10 198.51.100.1 1 2\r\n",      // two spaces
        "PROXY TCP4 192.0.2.10 198.51.100.1 1 2 \r\n",      // trailing space
        "PROXY TCP4 010.0.2.10 198.51.100.1 1 2\r\n",       // leading zero
        "PROXY TCP4 192.0.2.10 198.51.100.1 65536 2\r\n",   // port range
        "PROXY TCP4 192.0.2.10 198.51.100.1 01 2\r\n",      // port with a leading zero
        "PROXY TCP4 192.0.2.10 198.51.100.1 -1 2\r\n",      // sign
        "PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",      // family mismatch
        "PROXY TCP6 192.0.2.10 2001:db8::1 1 2\r\n",        // family mismatch
        "PROXY TCP5 192.0.2.10 198.51.100.1 1 2\r\n",       // protocol
        "PROXY TCP4 192.0.2.10 198.51.100.1 1\r\n",         // a field missing
        "PROXY TCP4 192.0.2.10 198.51.100.1 1 2\n",         // bare LF
        "PROXY tcp4 192.0.2.10 198.51.100.1 1 2\r\n",       // case
        "PROXY TCP4 192.0.2.10%eth0 198.51.100.1 1 2\r\n",  // zone
        "PROXY " + std::string(101, 'x'),                   // no CR LF within 107 bytes
        "EHLO client.example\r\n",                          // not a header at all
        "PROXYTCP4 192.0.2.10 198.51.100.1 1 2\r\n",
    };
    for (const std::string& line : bad) {
      CAPTURE(line);
      const Outcome out = parse(line);
      CHECK(out.result == ProxyParse::Invalid);
      CHECK_FALSE(out.error.empty());
    }
  }

  TEST_CASE("PROXY v2: TCP over IPv4 and IPv6, TLVs skipped") {
    const std::string block4 = bytes({192, 0, 2, 10, 198, 51, 100, 1, 0x9c, 0xbb, 0, 25}) +
                               bytes({0x04, 0, 3, 'a', 'b', 'c'});  // a TLV after the addresses
    const std::string header4 = v2(0x21, 0x11, block4);
    const std::string wire = header4 + "EHLO x\r\n";
    const Outcome v4 = parse(wire);
    REQUIRE(v4.result == ProxyParse::Done);
    CHECK(v4.length == header4.size());
    CHECK(v4.header.version == 2);
    CHECK(v4.header.source.addr == "192.0.2.10");
    CHECK(v4.header.source.port == 40123);
    CHECK(v4.header.destination.addr == "198.51.100.1");
    CHECK(v4.header.destination.port == 25);
    checkPrefixesNeedMore(wire, header4.size());
    std::string block6(16, '\0');
    block6[0] = 0x20;
    block6[1] = 0x01;
    block6[2] = 0x0d;
    block6[3] = static_cast<char>(0xb8);
    block6[15] = 7;
    block6 += std::string(15, '\0') + "\x01" + bytes({0, 1, 0, 2});
    const Outcome v6 = parse(v2(0x21, 0x21, block6));
    REQUIRE(v6.result == ProxyParse::Done);
    CHECK(v6.header.source.addr == "2001:db8::7");
    CHECK(v6.header.destination.addr == "::1");
    CHECK(v6.header.source.port == 1);
  }

  TEST_CASE("PROXY v2: LOCAL and UNSPEC are the balancer's own connection") {
    const Outcome local = parse(v2(0x20, 0x00, ""));
    REQUIRE(local.result == ProxyParse::Done);
    CHECK_FALSE(local.header.hasAddresses);
    CHECK(local.length == 16);
    // LOCAL ignores whatever address block comes with it.
    CHECK(parse(v2(0x20, 0x11, std::string(12, '\0'))).result == ProxyParse::Done);
    const Outcome unspec = parse(v2(0x21, 0x00, ""));
    REQUIRE(unspec.result == ProxyParse::Done);
    CHECK_FALSE(unspec.header.hasAddresses);
  }

  TEST_CASE("PROXY v2: bad versions, commands, families, lengths are refused") {
    CHECK(parse(v2(0x11, 0x11, std::string(12, '\0'))).result == ProxyParse::Invalid);
    CHECK(parse(v2(0x22, 0x11, std::string(12, '\0'))).result == ProxyParse::Invalid);
    CHECK(parse(v2(0x21, 0x12, std::string(12, '\0'))).result == ProxyParse::Invalid);   // UDP
    CHECK(parse(v2(0x21, 0x31, std::string(216, '\0'))).result == ProxyParse::Invalid);  // unix
    CHECK(parse(v2(0x21, 0x11, std::string(8, '\0'))).result == ProxyParse::Invalid);
    CHECK(parse(v2(0x21, 0x21, std::string(35, '\0'))).result == ProxyParse::Invalid);
    // Longer than kMaxV2Length: refused from the preamble, before the rest is buffered.
    const std::string longer = v2(0x21, 0x11, std::string(kMaxV2Length, '\0'));
    CHECK(parse(std::string_view(longer).substr(0, 16)).result == ProxyParse::Invalid);
  }
}

}  // namespace
}  // namespace certrelay::smtp
