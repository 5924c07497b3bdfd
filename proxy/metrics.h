#pragma once
// The process's Prometheus metrics (issue 11), exposed as text by the admin endpoint.
//
// No lock on the data path. prometheus::Family::Add takes the family's mutex, so every child with
// fixed labels (per listener, per result, per material) is created once, in the constructor, and
// kept as a pointer; an increment is then one atomic operation. Children with open-ended labels
// (reply codes, identities) are added on first use and their pointers cached per thread, so only
// the first use of a code (or identity) on a worker thread takes the mutex. Histograms are
// LockFreeHistogram below, not prometheus::Histogram, whose Observe() takes a mutex (1.0.1).
//
// Threads: the data-path methods run on the worker threads, the setters on the main loop, and
// exposition() on the admin thread; all of them may run at once.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/smtp/dialogue.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
template <typename T>
class Family;
struct MetricFamily;
}  // namespace prometheus

namespace certrelay::proxy {

// A histogram whose observe() takes no lock: one relaxed atomic per bucket and an atomic sum, read
// at scrape time. A scrape may see an observation in its bucket before it is in the sum (harmless
// for rate() and histogram_quantile()); the count is the total of the buckets, so the buckets and
// the count always agree.
class LockFreeHistogram {
 public:
  // `bounds`: upper bounds, strictly increasing; +Inf is implied.
  LockFreeHistogram(std::string name, std::string help, std::vector<double> bounds);
  void observe(double value);
  [[nodiscard]] prometheus::MetricFamily collect() const;

 private:
  std::string name_;
  std::string help_;
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0.0};
};

// A limit that refused something (certrelay_limit_refusals_total{limit}); the label is
// limitName(). TableFull is not a refusal: a client the per-client table had no room for, let
// through uncounted (proxy/client_limits.h).
enum class Limit : std::uint8_t {
  ClientConnections,
  ClientConnectionRate,
  ClientMessageRate,
  ClientRecipientRate,
  TableFull,
  BackendConnections,
  Descriptors,  // out of file descriptors at accept (proxy/acceptor.h)
};
inline constexpr std::size_t kLimits = 7;
std::string_view limitName(Limit limit);

// How a TLS handshake with the backend ended (certrelay_backend_tls_handshakes_total{result});
// the label is backendTlsResultName().
enum class BackendTlsResult : std::uint8_t {
  Full,          // established with a full handshake
  Resumed,       // established by resuming the session of an earlier connection
  VerifyFailed,  // the backend's certificate did not verify (chain or name)
  Failed,        // any other failure (protocol, alert, no common cipher, STARTTLS refused)
};
inline constexpr std::size_t kBackendTlsResults = 4;
std::string_view backendTlsResultName(BackendTlsResult result);

class Metrics {
 public:
  // The children of one listener, all created by the constructor.
  struct Listener {
    std::string name;
    prometheus::Counter* connections = nullptr;
    prometheus::Gauge* sessionsActive = nullptr;
    std::array<prometheus::Counter*, 4> handshakes{};  // index: resumed * 2 + ok
  };

  // Creates every fixed child (one set per configured listener) and sets certrelay_build_info.
  // config.metrics.perIdentity adds the per-identity families.
  explicit Metrics(const config::Config& config);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // --- data path (worker threads) ---
  // The listener's children; nullptr for a name the configuration did not have.
  [[nodiscard]] const Listener* listener(std::string_view name) const;
  void sessionOpened(const Listener& listener);
  void sessionClosed(const Listener& listener);
  // A handshake ended: established (`ok`, then `seconds` from STARTTLS or accept to established
  // goes to the histogram) or failed / abandoned.
  void tlsHandshake(const Listener& listener, bool resumed, bool ok, double seconds);
  // A backend connection became ready (session or probe): `seconds` from connect to ready.
  void backendConnected(double seconds);
  // A TLS handshake with the backend ended (sessions and probe).
  void backendTlsHandshake(BackendTlsResult result);
  // A recipient's or a message's result (smtp::DialogueHost::outcome). `identity`: the listed
  // identity of a trusted client ("" otherwise), counted only with metrics.per_identity.
  // `bytes`: the message's content bytes (counted for an accepted message).
  void outcome(smtp::Outcome what, std::string_view identity, std::uint64_t bytes);
  // Counts the code of every final reply line in `wire` (bytes for the client, whole replies).
  void countReplies(std::string_view wire);
  void limitRefused(Limit limit);
  // A reverse lookup of a client address ended (certrelay_dns_lookups_total{result}).
  void dnsLookup(smtp::LookupResult result);

  // --- set by the server (main loop) ---
  // certrelay_backend_up: 1 when at least one backend is healthy (the aggregate alerts use).
  void setBackendUp(bool up);
  // certrelay_backend_address_up{backend="addr"}: one series per resolved backend address, as
  // `addresses` lists them now (series of addresses no longer listed are removed).
  void setBackendAddresses(const std::vector<std::pair<std::string, bool>>& addresses);
  void setPolicyEntries(std::size_t entries);
  // A load of "policy", "tls" or "backend_tls" (MaterialWatcher::Spec::name) finished; other
  // names are ignored.
  // Success also sets certrelay_last_reload_success_timestamp_seconds{material} to `now`.
  void countReload(std::string_view material, bool ok, std::time_t now);
  // The earliest notAfter of the certificates in force (tls::Context::notAfter()).
  void setCertificateNotAfter(std::time_t notAfter);
  void setDraining(bool draining);

  // The Prometheus text exposition format (version 0.0.4) of every metric.
  [[nodiscard]] std::string exposition() const;

 private:
  struct Reload {
    std::string_view material;
    prometheus::Counter* success = nullptr;
    prometheus::Counter* failure = nullptr;
    prometheus::Gauge* lastSuccess = nullptr;
  };
  static constexpr std::size_t kOutcomes = 8;       // smtp::Outcome's enumerators
  static constexpr std::size_t kLookupResults = 5;  // smtp::LookupResult's enumerators

  void buildProcessMetrics();
  void buildSessionMetrics(const config::Config& config);
  void countIdentity(smtp::Outcome what, std::string_view identity);

  // Distinguishes this instance in the per-thread caches (an address could be reused).
  const std::uint64_t serial_;
  const bool perIdentity_;
  std::unique_ptr<prometheus::Registry> registry_;
  std::vector<Listener> listeners_;
  std::array<prometheus::Counter*, kOutcomes> outcomes_{};
  prometheus::Counter* messageBytes_ = nullptr;
  std::array<prometheus::Counter*, kLimits> limitRefusals_{};
  std::array<prometheus::Counter*, kLookupResults> dnsLookups_{};
  prometheus::Family<prometheus::Counter>* replies_ = nullptr;
  prometheus::Family<prometheus::Counter>* identityRcpt_ = nullptr;      // per_identity only
  prometheus::Family<prometheus::Counter>* identityMessages_ = nullptr;  // per_identity only
  prometheus::Gauge* backendUp_ = nullptr;
  prometheus::Family<prometheus::Gauge>* backendAddressUp_ = nullptr;
  // Main loop only: the children of backendAddressUp_ by address.
  std::vector<std::pair<std::string, prometheus::Gauge*>> backendAddressChildren_;
  prometheus::Gauge* policyEntries_ = nullptr;
  std::array<Reload, 3> reloads_{};
  std::array<prometheus::Counter*, kBackendTlsResults> backendTls_{};
  prometheus::Gauge* certificateNotAfter_ = nullptr;
  prometheus::Gauge* draining_ = nullptr;
  LockFreeHistogram tlsHandshakeDuration_;
  LockFreeHistogram backendConnectDuration_;
};

}  // namespace certrelay::proxy
