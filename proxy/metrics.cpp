// Metrics: the families and their fixed children (created once, here), the per-thread caches of
// the open-ended children, the lock-free histograms and the text exposition.

#include "proxy/metrics.h"

#include "tls/session_cache.h"

#include <openssl/crypto.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <functional>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <utility>

#ifndef CERTRELAY_VERSION
#define CERTRELAY_VERSION "unknown"
#endif
// The build's source revision (e.g. `git describe --always --dirty`), when the build defines it.
#ifndef CERTRELAY_REVISION
#define CERTRELAY_REVISION "unknown"
#endif

namespace certrelay::proxy {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::Counter;

constexpr std::array<std::string_view, 8> kResultNames = {
    "relayed",  "local",    "relay_denied", "backend_rejected",
    "accepted", "rejected", "deferred",     "unknown",
};
constexpr std::size_t kFirstMessageOutcome = 4;  // MessageAccepted: the rest are messages

bool isMessage(smtp::Outcome what) {
  return static_cast<std::size_t>(what) >= kFirstMessageOutcome;
}

std::string resultName(smtp::Outcome what) {
  return std::string(kResultNames[static_cast<std::size_t>(what)]);
}

constexpr const char* kHandshakesHelp =
    "TLS handshakes with clients that ended (failed includes abandoned and timed out).";
constexpr const char* kRcptHelp =
    "Recipients by result: relayed and local (accepted by the backend), relay_denied (the "
    "proxy's 454), backend_rejected (4xx or 5xx).";
constexpr const char* kMessagesHelp =
    "Messages (content sent to its end) by the reply to them: accepted (2xx), rejected (5xx), "
    "deferred (4xx, the backend's or the proxy's), unknown (backend lost after the end of data).";
constexpr const char* kLimitRefusalsHelp =
    "Connections, MAIL and RCPT commands refused by a limit (limits.client_*), by limit; "
    "table_full counts clients let through uncounted because the per-client table was full.";
constexpr const char* kDnsLookupsHelp =
    "Reverse lookups of client addresses (dns.reverse_lookup), by result: confirmed (the PTR "
    "name resolves to the address), unconfirmed, no_name (no usable PTR record), tempfail (a "
    "DNS server failed), timeout (no answer within dns.timeout).";
constexpr const char* kBytesHelp =
    "Content bytes of accepted messages as received from the client, after line-end "
    "canonicalisation and dot-unstuffing (DATA) or as chunked (BDAT); the proxy's Received "
    "header is not counted.";
constexpr const char* kIdentityRcptHelp =
    "Recipients of clients with a listed certificate, by identity (relay_clientcerts) and result.";
constexpr const char* kIdentityMessagesHelp =
    "Messages of clients with a listed certificate, by identity (relay_clientcerts) and result.";

// Latencies from sub-millisecond (a local backend) to the handshake timeout's order of magnitude.
std::vector<double> durationBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

// Reply codes are three digits: one slot per possible code.
constexpr std::size_t kReplyCodes = 1000;

struct StringHash {
  using is_transparent = void;  // find() by string_view: no std::string built per lookup
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

// The children a worker thread has used, so that only their first use takes the family mutex.
struct ThreadCache {
  std::uint64_t owner = 0;  // Metrics::serial_ the pointers belong to
  std::array<Counter*, kReplyCodes> replies{};
  std::unordered_map<std::string, std::array<Counter*, 8>, StringHash, std::equal_to<>> identities;
};

ThreadCache& threadCache(std::uint64_t owner) {
  thread_local ThreadCache cache;
  if (cache.owner != owner) {
    // Another Metrics instance (tests make several): its pointers are not ours.
    cache.replies.fill(nullptr);
    cache.identities.clear();
    cache.owner = owner;
  }
  return cache;
}

std::uint64_t nextSerial() {
  static std::atomic<std::uint64_t> serial{0};
  return serial.fetch_add(1, std::memory_order_relaxed) + 1;
}

// The session cache's gauges and counter, read at scrape time from the process totals (atomics
// the caches keep, tls/session_cache.h): nothing on the data path, no family mutex.
void addSessionCacheFamilies(std::vector<prometheus::MetricFamily>& families) {
  const tls::SessionCacheTotals totals = tls::sessionCacheTotals();
  const auto add = [&families](const char* name, const char* help, prometheus::MetricType type,
                               double value) {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = type;
    prometheus::ClientMetric metric;
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    family.metric.push_back(std::move(metric));
    families.push_back(std::move(family));
  };
  add("certrelay_tls_session_cache_bytes",
      "Bytes the server-side TLS session cache holds (encoded sessions plus a fixed cost per "
      "entry), at most tls.session_cache_memory.",
      prometheus::MetricType::Gauge, static_cast<double>(totals.bytes));
  add("certrelay_tls_session_cache_entries", "Sessions in the server-side TLS session cache.",
      prometheus::MetricType::Gauge, static_cast<double>(totals.entries));
  add("certrelay_tls_session_cache_evictions_total",
      "Sessions dropped from the server-side TLS session cache to make room for new ones "
      "(tls.session_cache_memory or tls.session_cache_size reached).",
      prometheus::MetricType::Counter, static_cast<double>(totals.evictions));
}

}  // namespace

// --- LockFreeHistogram ---

LockFreeHistogram::LockFreeHistogram(std::string name, std::string help, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void LockFreeHistogram::observe(double value) {
  std::size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) {
    ++bucket;
  }
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

prometheus::MetricFamily LockFreeHistogram::collect() const {
  prometheus::MetricFamily family;
  family.name = name_;
  family.help = help_;
  family.type = prometheus::MetricType::Histogram;
  prometheus::ClientMetric metric;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    prometheus::ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity();
    metric.histogram.bucket.push_back(bucket);
  }
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = sum_.load(std::memory_order_relaxed);
  family.metric.push_back(std::move(metric));
  return family;
}

// --- Metrics: construction ---

Metrics::Metrics(const config::Config& config)
    : serial_(nextSerial()),
      perIdentity_(config.metrics.perIdentity),
      registry_(std::make_unique<prometheus::Registry>()),
      tlsHandshakeDuration_("certrelay_tls_handshake_duration_seconds",
                            "Time from the start of TLS (STARTTLS answered, or the connection "
                            "accepted on an implicit-TLS listener) to the established session.",
                            durationBounds()),
      backendConnectDuration_("certrelay_backend_connect_duration_seconds",
                              "Time from connecting to the backend to a ready connection "
                              "(greeting, EHLO and the identity hand-off), sessions and probe.",
                              durationBounds()) {
  buildProcessMetrics();
  buildSessionMetrics(config);
}

Metrics::~Metrics() = default;

void Metrics::buildProcessMetrics() {
  BuildGauge()
      .Name("certrelay_build_info")
      .Help("Always 1; the labels say which certrelay and which OpenSSL run.")
      .Register(*registry_)
      .Add({{"version", CERTRELAY_VERSION},
            {"revision", CERTRELAY_REVISION},
            {"openssl", OpenSSL_version(OPENSSL_VERSION_STRING)}})
      .Set(1);
  backendUp_ = &BuildGauge()
                    .Name("certrelay_backend_up")
                    .Help(
                        "1 when at least one backend address is healthy (answered its last "
                        "capability probe with the identity hand-off in force), else 0.")
                    .Register(*registry_)
                    .Add({});
  backendAddressUp_ = &BuildGauge()
                           .Name("certrelay_backend_address_up")
                           .Help(
                               "Per resolved backend address: 1 when it answered its last "
                               "capability probe with the identity hand-off in force, else 0.")
                           .Register(*registry_);
  policyEntries_ = &BuildGauge()
                        .Name("certrelay_policy_entries")
                        .Help("Entries of the fingerprint table in force.")
                        .Register(*registry_)
                        .Add({});
  auto& reloads = BuildCounter()
                      .Name("certrelay_reloads_total")
                      .Help("Loads of a watched material (start-up and reloads), by result.")
                      .Register(*registry_);
  auto& lastSuccess = BuildGauge()
                          .Name("certrelay_last_reload_success_timestamp_seconds")
                          .Help("Unix time of the last successful load of a watched material.")
                          .Register(*registry_);
  std::size_t i = 0;
  for (const std::string_view material : {"policy", "tls", "backend_tls"}) {
    const std::string name(material);
    reloads_[i++] = Reload{material, &reloads.Add({{"material", name}, {"result", "success"}}),
                           &reloads.Add({{"material", name}, {"result", "failure"}}),
                           &lastSuccess.Add({{"material", name}})};
  }
  auto& backendTls = BuildCounter()
                         .Name("certrelay_backend_tls_handshakes_total")
                         .Help(
                             "TLS handshakes with the backend (backend.tls) by result: full, "
                             "resumed, verify_failed (certificate chain or name), failed.")
                         .Register(*registry_);
  for (std::size_t r = 0; r < kBackendTlsResults; ++r) {
    backendTls_[r] = &backendTls.Add(
        {{"result", std::string(backendTlsResultName(static_cast<BackendTlsResult>(r)))}});
  }
  certificateNotAfter_ =
      &BuildGauge()
           .Name("certrelay_tls_certificate_not_after_timestamp_seconds")
           .Help("Unix time at which the first of the certificates in force expires.")
           .Register(*registry_)
           .Add({});
  draining_ = &BuildGauge()
                   .Name("certrelay_draining")
                   .Help("1 while the process drains its sessions before stopping, else 0.")
                   .Register(*registry_)
                   .Add({});
}

void Metrics::buildSessionMetrics(const config::Config& config) {
  auto& connections = BuildCounter()
                          .Name("certrelay_connections_total")
                          .Help("Client connections accepted.")
                          .Register(*registry_);
  auto& active = BuildGauge()
                     .Name("certrelay_sessions_active")
                     .Help("Client sessions open now.")
                     .Register(*registry_);
  auto& handshakes = BuildCounter()
                         .Name("certrelay_tls_handshakes_total")
                         .Help(kHandshakesHelp)
                         .Register(*registry_);
  for (const config::Listener& listener : config.listeners) {
    Listener children;
    children.name = listener.name;
    children.connections = &connections.Add({{"listener", listener.name}});
    children.sessionsActive = &active.Add({{"listener", listener.name}});
    for (std::size_t k = 0; k < children.handshakes.size(); ++k) {
      children.handshakes[k] = &handshakes.Add({{"listener", listener.name},
                                                {"resumed", k / 2 == 1 ? "true" : "false"},
                                                {"result", k % 2 == 1 ? "ok" : "failed"}});
    }
    listeners_.push_back(std::move(children));
  }
  auto& refusals = BuildCounter()
                       .Name("certrelay_limit_refusals_total")
                       .Help(kLimitRefusalsHelp)
                       .Register(*registry_);
  for (std::size_t i = 0; i < kLimits; ++i) {
    limitRefusals_[i] = &refusals.Add({{"limit", std::string(limitName(static_cast<Limit>(i)))}});
  }
  auto& lookups =
      BuildCounter().Name("certrelay_dns_lookups_total").Help(kDnsLookupsHelp).Register(*registry_);
  for (std::size_t i = 0; i < kLookupResults; ++i) {
    dnsLookups_[i] = &lookups.Add(
        {{"result", std::string(smtp::lookupResultKeyword(static_cast<smtp::LookupResult>(i)))}});
  }
  auto& rcpt = BuildCounter().Name("certrelay_rcpt_total").Help(kRcptHelp).Register(*registry_);
  auto& messages =
      BuildCounter().Name("certrelay_messages_total").Help(kMessagesHelp).Register(*registry_);
  for (std::size_t k = 0; k < kOutcomes; ++k) {
    auto& family = k < kFirstMessageOutcome ? rcpt : messages;
    outcomes_[k] = &family.Add({{"result", std::string(kResultNames[k])}});
  }
  messageBytes_ = &BuildCounter()
                       .Name("certrelay_message_bytes_total")
                       .Help(kBytesHelp)
                       .Register(*registry_)
                       .Add({});
  replies_ = &BuildCounter()
                  .Name("certrelay_smtp_replies_total")
                  .Help("Replies sent to clients, by reply code (the proxy's own and relayed).")
                  .Register(*registry_);
  if (perIdentity_) {
    identityRcpt_ = &BuildCounter()
                         .Name("certrelay_identity_rcpt_total")
                         .Help(kIdentityRcptHelp)
                         .Register(*registry_);
    identityMessages_ = &BuildCounter()
                             .Name("certrelay_identity_messages_total")
                             .Help(kIdentityMessagesHelp)
                             .Register(*registry_);
  }
}

// --- data path ---

const Metrics::Listener* Metrics::listener(std::string_view name) const {
  for (const Listener& listener : listeners_) {
    if (listener.name == name) {
      return &listener;
    }
  }
  return nullptr;
}

void Metrics::sessionOpened(const Listener& listener) {
  listener.connections->Increment();
  listener.sessionsActive->Increment();
}

void Metrics::sessionClosed(const Listener& listener) {
  listener.sessionsActive->Decrement();
}

void Metrics::tlsHandshake(const Listener& listener, bool resumed, bool ok, double seconds) {
  listener.handshakes[(resumed ? 2 : 0) + (ok ? 1 : 0)]->Increment();
  if (ok) {
    tlsHandshakeDuration_.observe(seconds);
  }
}

void Metrics::backendConnected(double seconds) {
  backendConnectDuration_.observe(seconds);
}

void Metrics::backendTlsHandshake(BackendTlsResult result) {
  const auto index = static_cast<std::size_t>(result);
  if (index < kBackendTlsResults) {
    backendTls_[index]->Increment();
  }
}

void Metrics::outcome(smtp::Outcome what, std::string_view identity, std::uint64_t bytes) {
  const auto index = static_cast<std::size_t>(what);
  if (index >= kOutcomes) {
    return;
  }
  outcomes_[index]->Increment();
  if (what == smtp::Outcome::MessageAccepted) {
    messageBytes_->Increment(static_cast<double>(bytes));
  }
  if (perIdentity_ && !identity.empty()) {
    countIdentity(what, identity);
  }
}

void Metrics::countIdentity(smtp::Outcome what, std::string_view identity) {
  ThreadCache& cache = threadCache(serial_);
  auto it = cache.identities.find(identity);
  if (it == cache.identities.end()) {
    it = cache.identities.emplace(std::string(identity), std::array<Counter*, kOutcomes>{}).first;
  }
  Counter*& counter = it->second[static_cast<std::size_t>(what)];
  if (counter == nullptr) {
    // First use of this identity and result on this thread: the only time the mutex is taken.
    auto& family = isMessage(what) ? *identityMessages_ : *identityRcpt_;
    counter = &family.Add({{"identity", std::string(identity)}, {"result", resultName(what)}});
  }
  counter->Increment();
}

std::string_view limitName(Limit limit) {
  static constexpr std::array<std::string_view, kLimits> kNames = {
      "client_connections",  "client_connection_rate",
      "client_message_rate", "client_recipient_rate",
      "table_full",          "backend_connections",
      "descriptors"};
  return kNames[static_cast<std::size_t>(limit)];
}

std::string_view backendTlsResultName(BackendTlsResult result) {
  static constexpr std::array<std::string_view, kBackendTlsResults> kNames = {
      "full", "resumed", "verify_failed", "failed"};
  return kNames[static_cast<std::size_t>(result)];
}

void Metrics::limitRefused(Limit limit) {
  limitRefusals_[static_cast<std::size_t>(limit)]->Increment();
}

void Metrics::dnsLookup(smtp::LookupResult result) {
  dnsLookups_[static_cast<std::size_t>(result)]->Increment();
}

void Metrics::countReplies(std::string_view wire) {
  ThreadCache* cache = nullptr;
  while (!wire.empty()) {
    const std::size_t end = wire.find('\n');
    const std::string_view line = wire.substr(0, end);
    wire.remove_prefix(end == std::string_view::npos ? wire.size() : end + 1);
    // "250-..." continues a reply; "250 ..." (or a bare "250") ends it and is counted.
    const bool digits = line.size() >= 3 && line[0] >= '0' && line[0] <= '9' && line[1] >= '0' &&
                        line[1] <= '9' && line[2] >= '0' && line[2] <= '9';
    if (!digits || (line.size() > 3 && line[3] != ' ' && line[3] != '\r')) {
      continue;
    }
    const std::size_t code = static_cast<std::size_t>(line[0] - '0') * 100 +
                             static_cast<std::size_t>(line[1] - '0') * 10 +
                             static_cast<std::size_t>(line[2] - '0');
    if (cache == nullptr) {
      cache = &threadCache(serial_);
    }
    Counter*& counter = cache->replies[code];
    if (counter == nullptr) {
      counter = &replies_->Add({{"code", std::string(line.substr(0, 3))}});
    }
    counter->Increment();
  }
}

// --- server side ---

void Metrics::setBackendUp(bool up) {
  backendUp_->Set(up ? 1 : 0);
}

void Metrics::setBackendAddresses(const std::vector<std::pair<std::string, bool>>& addresses) {
  // Family::Add and Remove take the family's mutex (the scrape takes it too): main loop only,
  // once per probe result, never on the data path.
  std::vector<std::pair<std::string, prometheus::Gauge*>> kept;
  for (const auto& [address, up] : addresses) {
    prometheus::Gauge* gauge = nullptr;
    for (auto& [known, child] : backendAddressChildren_) {
      if (known == address && child != nullptr) {
        gauge = std::exchange(child, nullptr);
      }
    }
    if (gauge == nullptr) {
      gauge = &backendAddressUp_->Add({{"backend", address}});
    }
    gauge->Set(up ? 1 : 0);
    kept.emplace_back(address, gauge);
  }
  for (const auto& [address, child] : backendAddressChildren_) {
    if (child != nullptr) {
      backendAddressUp_->Remove(child);
    }
  }
  backendAddressChildren_ = std::move(kept);
}

void Metrics::setPolicyEntries(std::size_t entries) {
  policyEntries_->Set(static_cast<double>(entries));
}

void Metrics::countReload(std::string_view material, bool ok, std::time_t now) {
  for (Reload& reload : reloads_) {
    if (reload.material != material) {
      continue;
    }
    (ok ? reload.success : reload.failure)->Increment();
    if (ok) {
      reload.lastSuccess->Set(static_cast<double>(now));
    }
  }
}

void Metrics::setCertificateNotAfter(std::time_t notAfter) {
  certificateNotAfter_->Set(static_cast<double>(notAfter));
}

void Metrics::setDraining(bool draining) {
  draining_->Set(draining ? 1 : 0);
}

std::string Metrics::exposition() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  families.push_back(tlsHandshakeDuration_.collect());
  families.push_back(backendConnectDuration_.collect());
  addSessionCacheFamilies(families);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace certrelay::proxy
