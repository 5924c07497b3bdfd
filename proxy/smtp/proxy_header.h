#pragma once
// The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load balancer sends before
// anything else on a connection, naming the client it accepted.
//
// Security role: the header's source address becomes the client address for every decision
// (relay_networks, limits, XCLIENT ADDR, logs), so parsing is strict: a header that is not
// exactly one of the forms below is refused, never guessed at. Only peers in the listener's
// proxy_networks may send one (checked by the session, not here).
//
// Accepted:
//   v1  "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (TCP6 likewise), at most 107 bytes; addresses
//       in their canonical numeric forms, ports 0-65535 without leading zeros;
//       "PROXY UNKNOWN[ anything]\r\n": a connection the balancer could not describe (used as
//       from the balancer itself, as the spec says).
//   v2  the 12-byte signature, version 2, command LOCAL (a health check: from the balancer
//       itself) or PROXY with family TCP over IPv4 or IPv6 (or UNSPEC: from the balancer);
//       TLVs after the addresses are skipped. At most kMaxV2Length bytes in all.
// Refused: anything else (v2 over UDP or unix sockets, a truncated address block, a v1 line
// without CR LF, extra spaces, out-of-range ports, a v1 line over 107 bytes).

#include <cstddef>
#include <string>
#include <string_view>

#include "proxy/smtp/peer.h"

namespace certrelay::smtp {

struct ProxyHeader {
  // False: LOCAL, UNKNOWN or UNSPEC, the connection is the balancer's own (keep its address).
  bool hasAddresses = false;
  PeerAddress source;       // the client, when hasAddresses
  PeerAddress destination;  // the address the client connected to, when hasAddresses
  int version = 0;          // 1 or 2
};

enum class ProxyParse { NeedMore, Done, Invalid };

// The largest v2 header accepted (16-byte preamble + address block + TLVs): cloud balancers add
// a few TLVs (e.g. AWS's VPC endpoint id); more than this is refused rather than buffered.
constexpr std::size_t kMaxV2Length = 16 + 1024;
constexpr std::size_t kMaxV1Length = 107;

// Parses the start of `buffered` (every byte the connection has sent so far). Done: `header` is
// filled and `length` is the header's size (the bytes after it are the client's). Invalid:
// `error` says why, for the log. NeedMore: nothing is filled; call again with more bytes.
ProxyParse parseProxyHeader(std::string_view buffered, ProxyHeader& header, std::size_t& length,
                            std::string& error);

}  // namespace certrelay::smtp
