// CIDR matching for policy.relay_networks. The syntax lives in config::parseCidr so that
// --check-config and the policy refuse exactly the same entries.

#include "policy/networks.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <stdexcept>

namespace certrelay::policy {

namespace {

// True when the first `prefix` bits of `a` and `b` agree.
bool samePrefix(const std::array<unsigned char, 16>& a, const std::array<unsigned char, 16>& b,
                unsigned prefix) {
  const unsigned whole = prefix / 8;
  for (unsigned i = 0; i < whole; ++i) {
    if (a[i] != b[i]) {
      return false;
    }
  }
  const unsigned rest = prefix % 8;
  if (rest == 0) {
    return true;
  }
  const auto mask = static_cast<unsigned char>(0xff00u >> rest);
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

NetworkList NetworkList::parse(const std::vector<std::string>& cidrs) {
  NetworkList list;
  for (std::size_t i = 0; i < cidrs.size(); ++i) {
    config::Cidr cidr;
    try {
      cidr = config::parseCidr(cidrs[i]);
    } catch (const std::invalid_argument& e) {
      throw PolicyError("policy.relay_networks[" + std::to_string(i) + "]: bad CIDR '" + cidrs[i] +
                        "': " + e.what());
    }
    (cidr.v6 ? list.v6_ : list.v4_).push_back(cidr);
  }
  return list;
}

bool NetworkList::contains(std::string_view ip) const {
  // inet_pton stops at a NUL: "192.0.2.7\0junk" must not pass for 192.0.2.7.
  if (empty() || ip.empty() || ip.size() >= INET6_ADDRSTRLEN ||
      ip.find('\0') != std::string_view::npos) {
    return false;
  }
  const std::string text(ip);
  std::array<unsigned char, 16> address{};
  bool v6 = text.find(':') != std::string::npos;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, text.c_str(), address.data()) != 1) {
    return false;
  }
  static constexpr unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (v6 && std::equal(std::begin(kMappedPrefix), std::end(kMappedPrefix), address.begin())) {
    std::copy(address.begin() + 12, address.end(), address.begin());
    std::fill(address.begin() + 4, address.end(), 0);
    v6 = false;
  }
  for (const config::Cidr& network : v6 ? v6_ : v4_) {
    if (samePrefix(network.address, address, network.prefix)) {
      return true;
    }
  }
  return false;
}

}  // namespace certrelay::policy
