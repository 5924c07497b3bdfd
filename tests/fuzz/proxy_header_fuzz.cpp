// Fuzz target: smtp::parseProxyHeader (the PROXY protocol header a load balancer sends first),
// fed as a session feeds it: the bytes buffered so far, growing piece by piece.
//
// Input: byte 0 = how to split (fuzz_support.h), then the connection's first bytes.
//
// Oracles:
//  * Done: length <= what was buffered, within the version's maximum; with addresses, both are
//    numeric IPv4/IPv6 text without control bytes; the header parsed again from exactly its
//    bytes gives the same header and length;
//  * NeedMore never with more than the maximum header size buffered;
//  * the result does not depend on how the input was split: once a prefix is Done or Invalid,
//    every longer buffer gives the same answer.

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/smtp/proxy_header.h"
#include "tests/fuzz/fuzz_support.h"

namespace certrelay::smtp {
namespace {

bool numericAddress(const std::string& text) {
  unsigned char storage[16];
  return inet_pton(AF_INET, text.c_str(), storage) == 1 ||
         inet_pton(AF_INET6, text.c_str(), storage) == 1;
}

bool sameHeader(const ProxyHeader& a, const ProxyHeader& b) {
  return a.hasAddresses == b.hasAddresses && a.version == b.version &&
         a.source.addr == b.source.addr && a.source.port == b.source.port &&
         a.destination.addr == b.destination.addr && a.destination.port == b.destination.port;
}

void checkDone(std::string_view buffered, const ProxyHeader& header, std::size_t length) {
  FUZZ_CHECK(length > 0 && length <= buffered.size());
  FUZZ_CHECK(length <= (header.version == 1 ? kMaxV1Length : kMaxV2Length));
  if (header.hasAddresses) {
    FUZZ_CHECK(numericAddress(header.source.addr) && numericAddress(header.destination.addr));
    FUZZ_CHECK(!fuzz::hasControl(header.source.addr));
  }
  ProxyHeader again;
  std::size_t againLength = 0;
  std::string error;
  FUZZ_CHECK(parseProxyHeader(buffered.substr(0, length), again, againLength, error) ==
             ProxyParse::Done);
  FUZZ_CHECK(againLength == length && sameHeader(again, header));
}

}  // namespace
}  // namespace certrelay::smtp

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace certrelay::smtp;
  if (size < 1) {
    return 0;
  }
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string buffered;
  bool decided = false;
  ProxyParse first = ProxyParse::NeedMore;
  ProxyHeader firstHeader;
  std::size_t firstLength = 0;
  for (const std::string_view piece : certrelay::fuzz::split(input, data[0])) {
    buffered.append(piece);
    ProxyHeader header;
    std::size_t length = 0;
    std::string error;
    const ProxyParse result = parseProxyHeader(buffered, header, length, error);
    if (result == ProxyParse::NeedMore) {
      FUZZ_CHECK(!decided);
      FUZZ_CHECK(buffered.size() < kMaxV2Length);
      continue;
    }
    if (result == ProxyParse::Invalid) {
      FUZZ_CHECK(!error.empty());
    } else {
      checkDone(buffered, header, length);
    }
    if (decided) {
      FUZZ_CHECK(result == first);
      FUZZ_CHECK(result != ProxyParse::Done ||
                 (length == firstLength && sameHeader(header, firstHeader)));
    } else {
      decided = true;
      first = result;
      firstHeader = header;
      firstLength = length;
    }
  }
  return 0;
}
