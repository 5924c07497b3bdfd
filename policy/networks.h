#pragma once
// Client networks allowed to relay without a certificate (`policy.relay_networks`, like
// Postfix's mynetworks with permit_mynetworks).
//
// Security role: an entry here turns every client in that network into a trusted relay client,
// so parsing is strict (see config::parseCidr: no host bits beyond the prefix, no zone ids) and
// an address that cannot be parsed is never contained. IPv4-mapped IPv6 client addresses
// ("::ffff:192.0.2.7", what a dual-stack socket reports for an IPv4 client) are compared as the
// IPv4 address they carry; an IPv6 network never matches an IPv4 client, ::/0 included.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "policy/error.h"

namespace certrelay::policy {

class NetworkList {
 public:
  // Each entry as in config::parseCidr. Throws PolicyError
  // "policy.relay_networks[<i>]: bad CIDR '<entry>': <reason>".
  static NetworkList parse(const std::vector<std::string>& cidrs);

  // `ip`: numeric "192.0.2.7", "2001:db8::7" or "::ffff:192.0.2.7" (no brackets, no port).
  // False for anything else.
  bool contains(std::string_view ip) const;
  bool empty() const { return v4_.empty() && v6_.empty(); }
  std::size_t size() const { return v4_.size() + v6_.size(); }

 private:
  std::vector<config::Cidr> v4_;
  std::vector<config::Cidr> v6_;
};

}  // namespace certrelay::policy
