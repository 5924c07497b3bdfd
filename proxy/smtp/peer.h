#pragma once
// A client's address as the dialogue, the logs and the identity hand-off see it.

#include <cstdint>
#include <string>

namespace certrelay::smtp {

struct PeerAddress {
  std::string addr;  // "192.0.2.1" / "2001:db8::1" (IPv4-mapped IPv6 shown as IPv4)
  std::uint16_t port = 0;
  // The forward-confirmed host name (dns.reverse_lookup); "" while unknown, unconfirmed or not
  // looked up. Never a bare PTR answer.
  std::string name;
};

// Postfix's way of naming a client in logs: "mx.example.com[192.0.2.1]", or "unknown[192.0.2.1]"
// without a verified name.
std::string clientLogName(const PeerAddress& peer);

}  // namespace certrelay::smtp
