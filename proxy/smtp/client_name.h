#pragma once
// The client's host name as Postfix establishes it (smtpd_peer.c): a reverse (PTR) lookup of the
// address, then a forward lookup of that name (A for an IPv4 client, AAAA for IPv6); the name is
// used only when the forward lookup lists the client's address. Anything else leaves the name
// `unknown`, with Postfix's status codes telling a temporary failure from a permanent one, so
// that the backend's reject_unknown_client_hostname answers 450 or its configured code exactly
// as it would have if the client had connected to it directly.
//
// Security role: a PTR record is chosen by whoever owns the address block, so an unconfirmed
// name must never reach the backend, the Received header or the logs as the client's name
// ("people would draw false conclusions", smtpd_peer.c). Only the decisions and the values live
// here (no I/O); proxy/reverse_dns.* runs the lookups on the worker's loop.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certrelay::smtp {

// Postfix's SMTPD_PEER_CODE_*: how a lookup ended.
enum class NameStatus : std::uint8_t {
  Ok,        // found (and, for the client name, forward-confirmed)
  TempFail,  // SERVFAIL, REFUSED, a timeout: ask again later
  PermFail,  // no such record (NXDOMAIN, no data), an unusable name, or no lookup at all
  Forged,    // a PTR name whose forward lookup does not list the address
};

// What became of one lookup, for the log and certrelay_dns_lookups_total{result}.
enum class LookupResult : std::uint8_t {
  Confirmed,    // the PTR name lists the address: it is the client's name
  Unconfirmed,  // a PTR name that does not (or whose forward lookup failed for good)
  NoName,       // no usable PTR record
  TempFail,     // a DNS server failed (either lookup)
  Timeout,      // no answer within dns.timeout
};

// "confirmed", "unconfirmed", "no_name", "tempfail", "timeout": metric label and log field.
std::string_view lookupResultKeyword(LookupResult result);

struct ClientName {
  NameStatus status = NameStatus::PermFail;  // of the client name (XCLIENT NAME)
  std::string name;                          // the verified name, when status is Ok
  // The PTR lookup alone (XCLIENT REVERSE_NAME, Postfix's reject_unknown_reverse_client_hostname).
  NameStatus reverseStatus = NameStatus::PermFail;
  std::string reverseName;  // the PTR name, confirmed or not, when reverseStatus is Ok
  LookupResult result = LookupResult::NoName;
  std::string detail;  // why the name is unknown, for the log; "" when confirmed
  // Worth a warning in the log: a name claimed but not shown (unconfirmed, malformed) or DNS
  // trouble. No PTR record at all is the usual case for many clients, and Postfix is silent.
  bool warning = false;

  [[nodiscard]] bool verified() const { return status == NameStatus::Ok; }
};

// How one DNS query ended, as the decisions below need it.
enum class DnsAnswer : std::uint8_t {
  Found,     // records of the type asked for
  NotFound,  // NXDOMAIN, or the name has no such record (Postfix: a permanent failure)
  TempFail,  // SERVFAIL, REFUSED, no server reachable, a malformed answer
};

// The PTR query name of a numeric address: "2.0.0.127.in-addr.arpa", nibbles under "ip6.arpa"
// for IPv6; "" when `addr` is no address.
std::string reverseQueryName(std::string_view addr);

// Whether a PTR answer can be a client name: a plain host name (letters, digits, '-') that is not
// an address in disguise (Postfix refuses numeric names, which would pass address checks).
bool usablePtrName(std::string_view name);

// After the PTR query: the final name when there is nothing to confirm (no record, a failure, an
// unusable name); nullopt when `ptrName` goes on to its forward lookup. `detail` describes a
// failed query (the resolver's words).
std::optional<ClientName> afterReverse(std::string_view addr, DnsAnswer answer,
                                       std::string_view ptrName, std::string_view detail);

// After the forward query of `ptrName`: confirmed when `addresses` (numeric, any spelling of the
// client's family) holds `addr`. Postfix's wording in `detail`: "hostname X does not resolve to
// address Y[: reason]".
ClientName afterForward(std::string_view addr, std::string_view ptrName, DnsAnswer answer,
                        const std::vector<std::string>& addresses, std::string_view detail);

// dns.timeout passed first. `ptrName`: the PTR name when that query had finished, else "".
ClientName timedOut(std::string_view addr, std::string_view ptrName,
                    std::chrono::milliseconds timeout);

// No lookup (dns.reverse_lookup = false, or no address): Postfix's smtpd_peername_lookup = no.
ClientName noLookup();

// XCLIENT NAME=: the verified name, else [TEMPUNAVAIL] or [UNAVAILABLE] (XCLIENT_README).
std::string xclientName(const ClientName& name);
// XCLIENT REVERSE_NAME=, only where NAME does not already set it: Postfix copies a real NAME to
// its reverse name but leaves the reverse name alone for [UNAVAILABLE] and [TEMPUNAVAIL] (it
// would stay the proxy's own). nullopt when NAME carries a verified name.
std::optional<std::string> xclientReverseName(const ClientName& name);
// XFORWARD NAME=: the verified name or [UNAVAILABLE] (Postfix's XFORWARD has no temporary value;
// [TEMPUNAVAIL] there is a syntax error).
std::string xforwardName(const ClientName& name);
// Logs and the Received header: the verified name, else "unknown".
std::string_view logName(const ClientName& name);

}  // namespace certrelay::smtp
