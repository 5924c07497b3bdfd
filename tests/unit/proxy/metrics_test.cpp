// proxy/metrics: names, labels, types and values of the exposition, the lock-free histogram's
// buckets, the per-thread caches under several threads, and `promtool check metrics` on a real
// exposition.

#include "proxy/metrics.h"
#include "tls/session_cache.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace certrelay::proxy {
namespace {

using smtp::Outcome;

config::Config metricsConfig(bool perIdentity = false) {
  config::Config config;
  config::Listener mx;
  mx.name = "mx";
  config::Listener submission;
  submission.name = "submission";
  config.listeners = {mx, submission};
  config.metrics.perIdentity = perIdentity;
  return config;
}

bool has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

// Everything the process can set, so that every family has samples.
void exercise(Metrics& metrics) {
  const Metrics::Listener* mx = metrics.listener("mx");
  REQUIRE(mx != nullptr);
  metrics.sessionOpened(*mx);
  metrics.tlsHandshake(*mx, false, true, 0.003);
  metrics.tlsHandshake(*mx, true, false, 0);
  metrics.backendConnected(0.0004);
  metrics.outcome(Outcome::RcptRelayed, "client.example", 0);
  metrics.outcome(Outcome::RcptRelayDenied, "", 0);
  metrics.outcome(Outcome::MessageAccepted, "client.example", 1234);
  metrics.outcome(Outcome::MessageUnknown, "", 99);
  metrics.countReplies("220 mx.test ESMTP certrelay\r\n250-mx.test\r\n250 PIPELINING\r\n");
  metrics.setBackendUp(true);
  metrics.setPolicyEntries(3);
  metrics.countReload("policy", true, 1'800'000'000);
  metrics.countReload("tls", false, 1'800'000'100);
  metrics.setCertificateNotAfter(1'900'000'000);
  metrics.setDraining(false);
}

// `promtool check metrics` on `text`: its output ("" when clean), or nullopt without promtool.
std::optional<std::string> promtoolCheck(const std::string& text) {
  const char* promtool = "/usr/bin/promtool";
  if (::access(promtool, X_OK) != 0) {
    return std::nullopt;
  }
  char path[] = "/tmp/certrelay-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  const std::string command = std::string(promtool) + " check metrics < " + path + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buf[4096];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) {
    output.append(buf, n);
  }
  const int status = ::pclose(pipe);
  ::unlink(path);
  if (status != 0 && output.empty()) {
    output = "promtool exited with status " + std::to_string(status);
  }
  return output;
}

TEST_SUITE("metrics") {
  TEST_CASE("exposition: every family has its HELP and TYPE, fixed children start at 0") {
    Metrics metrics(metricsConfig());
    const std::string text = metrics.exposition();
    for (const char* counter :
         {"certrelay_connections_total", "certrelay_tls_handshakes_total", "certrelay_rcpt_total",
          "certrelay_messages_total", "certrelay_message_bytes_total", "certrelay_reloads_total",
          "certrelay_backend_tls_handshakes_total"}) {
      CAPTURE(std::string(counter));
      CHECK(has(text, std::string("# TYPE ") + counter + " counter"));
      CHECK(text.find(std::string("# HELP ") + counter + " ") != std::string::npos);
    }
    for (const char* gauge :
         {"certrelay_build_info", "certrelay_sessions_active", "certrelay_backend_up",
          "certrelay_policy_entries", "certrelay_last_reload_success_timestamp_seconds",
          "certrelay_tls_certificate_not_after_timestamp_seconds", "certrelay_draining"}) {
      CAPTURE(std::string(gauge));
      CHECK(has(text, std::string("# TYPE ") + gauge + " gauge"));
    }
    for (const char* histogram : {"certrelay_tls_handshake_duration_seconds",
                                  "certrelay_backend_connect_duration_seconds"}) {
      CAPTURE(std::string(histogram));
      CHECK(has(text, std::string("# TYPE ") + histogram + " histogram"));
    }
    CHECK(has(text, "certrelay_connections_total{listener=\"mx\"} 0"));
    CHECK(has(text, "certrelay_sessions_active{listener=\"submission\"} 0"));
    CHECK(has(text,
              "certrelay_tls_handshakes_total{listener=\"mx\",result=\"ok\",resumed=\"true\"} 0"));
    CHECK(has(text,
              "certrelay_tls_handshakes_total{listener=\"submission\",result=\"failed\","
              "resumed=\"false\"} 0"));
    for (const char* result : {"relayed", "local", "relay_denied", "backend_rejected"}) {
      CHECK(has(text, std::string("certrelay_rcpt_total{result=\"") + result + "\"} 0"));
    }
    for (const char* result : {"accepted", "rejected", "deferred", "unknown"}) {
      CHECK(has(text, std::string("certrelay_messages_total{result=\"") + result + "\"} 0"));
    }
    CHECK(has(text, "certrelay_reloads_total{material=\"tls\",result=\"failure\"} 0"));
    CHECK(has(text, "certrelay_reloads_total{material=\"backend_tls\",result=\"success\"} 0"));
    CHECK(has(text, "certrelay_last_reload_success_timestamp_seconds{material=\"policy\"} 0"));
    for (const char* result : {"full", "resumed", "verify_failed", "failed"}) {
      CHECK(has(text, std::string("certrelay_backend_tls_handshakes_total{result=\"") + result +
                          "\"} 0"));
    }
    // No reply was sent yet: the family has no child, and a family without one is not shown.
    CHECK(text.find("certrelay_smtp_replies_total") == std::string::npos);
    // Off by default: no per-identity family at all.
    CHECK(text.find("certrelay_identity_") == std::string::npos);
  }

  TEST_CASE("build_info: 1, with the version, the revision and OpenSSL's version") {
    Metrics metrics(metricsConfig());
    const std::string text = metrics.exposition();
    const std::size_t at = text.find("\ncertrelay_build_info{");
    REQUIRE(at != std::string::npos);
    const std::string line = text.substr(at + 1, text.find('\n', at + 1) - at - 1);
    CHECK(line.find("openssl=\"3.") != std::string::npos);
    CHECK(line.find("revision=\"") != std::string::npos);
    CHECK(line.find(std::string("version=\"") + CERTRELAY_VERSION + "\"") != std::string::npos);
    CHECK(line.substr(line.size() - 2) == " 1");
  }

  TEST_CASE("sessions, handshakes and outcomes: each counted under its labels") {
    Metrics metrics(metricsConfig());
    CHECK(metrics.listener("nope") == nullptr);
    const Metrics::Listener& mx = *metrics.listener("mx");
    metrics.sessionOpened(mx);
    metrics.sessionOpened(mx);
    metrics.sessionClosed(mx);
    metrics.tlsHandshake(mx, true, true, 0.002);
    metrics.tlsHandshake(mx, false, false, 0);
    metrics.outcome(Outcome::RcptLocal, "", 0);
    metrics.outcome(Outcome::RcptLocal, "", 0);
    metrics.outcome(Outcome::RcptBackendRejected, "", 0);
    metrics.outcome(Outcome::MessageAccepted, "", 100);
    metrics.outcome(Outcome::MessageAccepted, "", 23);
    metrics.outcome(Outcome::MessageDeferred, "", 1000);  // bytes of a deferred one: not counted
    const std::string text = metrics.exposition();
    CHECK(has(text, "certrelay_connections_total{listener=\"mx\"} 2"));
    CHECK(has(text, "certrelay_sessions_active{listener=\"mx\"} 1"));
    CHECK(has(text,
              "certrelay_tls_handshakes_total{listener=\"mx\",result=\"ok\",resumed=\"true\"} 1"));
    CHECK(has(text,
              "certrelay_tls_handshakes_total{listener=\"mx\",result=\"failed\","
              "resumed=\"false\"} 1"));
    CHECK(has(text, "certrelay_rcpt_total{result=\"local\"} 2"));
    CHECK(has(text, "certrelay_rcpt_total{result=\"backend_rejected\"} 1"));
    CHECK(has(text, "certrelay_messages_total{result=\"accepted\"} 2"));
    CHECK(has(text, "certrelay_messages_total{result=\"deferred\"} 1"));
    CHECK(has(text, "certrelay_message_bytes_total 123"));
    // Only the established handshake is timed.
    CHECK(has(text, "certrelay_tls_handshake_duration_seconds_count 1"));
  }

  TEST_CASE("dns lookups: one child per result, from 0, each counted under its own") {
    Metrics metrics(metricsConfig());
    std::string text = metrics.exposition();
    CHECK(has(text, "# TYPE certrelay_dns_lookups_total counter"));
    for (const char* result : {"confirmed", "unconfirmed", "no_name", "tempfail", "timeout"}) {
      CHECK(has(text, std::string("certrelay_dns_lookups_total{result=\"") + result + "\"} 0"));
    }
    metrics.dnsLookup(smtp::LookupResult::Confirmed);
    metrics.dnsLookup(smtp::LookupResult::Confirmed);
    metrics.dnsLookup(smtp::LookupResult::Timeout);
    text = metrics.exposition();
    CHECK(has(text, "certrelay_dns_lookups_total{result=\"confirmed\"} 2"));
    CHECK(has(text, "certrelay_dns_lookups_total{result=\"timeout\"} 1"));
    CHECK(has(text, "certrelay_dns_lookups_total{result=\"tempfail\"} 0"));
  }

  TEST_CASE("replies: the code of every final line, continuation lines not counted") {
    Metrics metrics(metricsConfig());
    metrics.countReplies(
        "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
        "454 4.7.1 <x@remote.example>: Relay access denied\r\n250 2.1.5 Ok\r\n");
    metrics.countReplies("421 4.3.2 mx.test Service shutting down\r\n");
    metrics.countReplies("354\r\n");  // a bare code is a final line too
    const std::string text = metrics.exposition();
    CHECK(has(text, "# TYPE certrelay_smtp_replies_total counter"));
    CHECK(has(text, "certrelay_smtp_replies_total{code=\"250\"} 2"));
    CHECK(has(text, "certrelay_smtp_replies_total{code=\"454\"} 1"));
    CHECK(has(text, "certrelay_smtp_replies_total{code=\"421\"} 1"));
    CHECK(has(text, "certrelay_smtp_replies_total{code=\"354\"} 1"));
  }

  TEST_CASE("histogram: cumulative buckets up to +Inf, _sum and _count") {
    Metrics metrics(metricsConfig());
    metrics.backendConnected(0.0003);  // first bucket (le 0.0005)
    metrics.backendConnected(0.0005);  // an observation on a bound counts in that bucket
    metrics.backendConnected(0.02);
    metrics.backendConnected(100);  // only in +Inf
    const std::string text = metrics.exposition();
    const std::string name = "certrelay_backend_connect_duration_seconds";
    CHECK(has(text, name + "_bucket{le=\"0.0005\"} 2"));
    CHECK(has(text, name + "_bucket{le=\"0.01\"} 2"));
    CHECK(has(text, name + "_bucket{le=\"0.025\"} 3"));
    CHECK(has(text, name + "_bucket{le=\"30\"} 3"));
    CHECK(has(text, name + "_bucket{le=\"+Inf\"} 4"));
    CHECK(has(text, name + "_count 4"));
    CHECK(text.find(name + "_sum 100.0208") != std::string::npos);
    CHECK(has(text, "certrelay_tls_handshake_duration_seconds_bucket{le=\"+Inf\"} 0"));
  }

  TEST_CASE("server gauges and reload counts") {
    Metrics metrics(metricsConfig());
    metrics.setBackendUp(true);
    metrics.setPolicyEntries(42);
    metrics.countReload("policy", true, 1'800'000'000);
    metrics.countReload("policy", false, 1'800'000'500);  // the timestamp stays the success's
    metrics.countReload("tls", true, 1'800'000'100);
    metrics.countReload("backend_tls", false, 1'800'000'200);
    metrics.countReload("other", true, 1);  // not a material: ignored
    metrics.setCertificateNotAfter(1'900'000'000);
    metrics.setDraining(true);
    const std::string text = metrics.exposition();
    CHECK(has(text, "certrelay_backend_up 1"));
    CHECK(has(text, "certrelay_policy_entries 42"));
    CHECK(has(text, "certrelay_reloads_total{material=\"policy\",result=\"success\"} 1"));
    CHECK(has(text, "certrelay_reloads_total{material=\"policy\",result=\"failure\"} 1"));
    CHECK(has(text, "certrelay_reloads_total{material=\"tls\",result=\"success\"} 1"));
    CHECK(has(text, "certrelay_reloads_total{material=\"backend_tls\",result=\"failure\"} 1"));
    CHECK(has(text, "certrelay_last_reload_success_timestamp_seconds{material=\"backend_tls\"} 0"));
    CHECK(has(text,
              "certrelay_last_reload_success_timestamp_seconds{material=\"policy\"} "
              "1800000000"));
    CHECK(has(text,
              "certrelay_last_reload_success_timestamp_seconds{material=\"tls\"} "
              "1800000100"));
    CHECK(has(text, "certrelay_tls_certificate_not_after_timestamp_seconds 1900000000"));
    CHECK(has(text, "certrelay_draining 1"));
    CHECK(text.find("other") == std::string::npos);
    metrics.setBackendUp(false);
    metrics.setDraining(false);
    CHECK(has(metrics.exposition(), "certrelay_backend_up 0"));
  }

  TEST_CASE("session cache: bytes, entries and evictions of every live cache, read at scrape") {
    Metrics metrics(metricsConfig());
    const tls::SessionCacheTotals before = tls::sessionCacheTotals();
    tls::SessionCache cache(2 * tls::SessionCache::cost(100), 0);
    for (const char* id : {"one", "two", "three"}) {
      REQUIRE(cache.insert(id, std::string(100, 'x'), std::time(nullptr) + 60));
    }
    const std::string text = metrics.exposition();
    CHECK(has(text, "# TYPE certrelay_tls_session_cache_bytes gauge"));
    CHECK(has(text, "# TYPE certrelay_tls_session_cache_entries gauge"));
    CHECK(has(text, "# TYPE certrelay_tls_session_cache_evictions_total counter"));
    CHECK(has(text, "certrelay_tls_session_cache_bytes " +
                        std::to_string(before.bytes + 2 * tls::SessionCache::cost(100))));
    CHECK(has(text, "certrelay_tls_session_cache_entries " + std::to_string(before.entries + 2)));
    CHECK(has(text, "certrelay_tls_session_cache_evictions_total " +
                        std::to_string(before.evictions + 1)));
  }

  TEST_CASE("backend TLS handshakes are counted by result") {
    Metrics metrics(metricsConfig());
    metrics.backendTlsHandshake(BackendTlsResult::Full);
    metrics.backendTlsHandshake(BackendTlsResult::Resumed);
    metrics.backendTlsHandshake(BackendTlsResult::Resumed);
    metrics.backendTlsHandshake(BackendTlsResult::VerifyFailed);
    const std::string text = metrics.exposition();
    CHECK(has(text, "certrelay_backend_tls_handshakes_total{result=\"full\"} 1"));
    CHECK(has(text, "certrelay_backend_tls_handshakes_total{result=\"resumed\"} 2"));
    CHECK(has(text, "certrelay_backend_tls_handshakes_total{result=\"verify_failed\"} 1"));
    CHECK(has(text, "certrelay_backend_tls_handshakes_total{result=\"failed\"} 0"));
    CHECK(backendTlsResultName(BackendTlsResult::VerifyFailed) == "verify_failed");
  }

  TEST_CASE("backend up per address: one series per resolved address, gone ones removed") {
    Metrics metrics(metricsConfig());
    metrics.setBackendUp(true);
    metrics.setBackendAddresses({{"10.0.0.1:25", true}, {"[::1]:25", false}});
    std::string text = metrics.exposition();
    CHECK(has(text, "certrelay_backend_up 1"));  // the aggregate stays unlabelled
    CHECK(has(text, "certrelay_backend_address_up{backend=\"10.0.0.1:25\"} 1"));
    CHECK(has(text, "certrelay_backend_address_up{backend=\"[::1]:25\"} 0"));
    metrics.setBackendAddresses({{"[::1]:25", true}, {"10.0.0.2:25", false}});
    text = metrics.exposition();
    CHECK(text.find("10.0.0.1:25") == std::string::npos);
    CHECK(has(text, "certrelay_backend_address_up{backend=\"[::1]:25\"} 1"));
    CHECK(has(text, "certrelay_backend_address_up{backend=\"10.0.0.2:25\"} 0"));
  }

  TEST_CASE("per identity: only with metrics.per_identity, and only for a named identity") {
    Metrics off(metricsConfig(false));
    off.outcome(Outcome::RcptRelayed, "client.example", 0);
    CHECK(off.exposition().find("client.example") == std::string::npos);

    Metrics on(metricsConfig(true));
    on.outcome(Outcome::RcptRelayed, "client.example", 0);
    on.outcome(Outcome::RcptRelayed, "client.example", 0);
    on.outcome(Outcome::RcptLocal, "other.example", 0);
    on.outcome(Outcome::MessageAccepted, "client.example", 10);
    on.outcome(Outcome::RcptRelayDenied, "", 0);  // an untrusted client: no identity label
    const std::string text = on.exposition();
    CHECK(has(text, "# TYPE certrelay_identity_rcpt_total counter"));
    CHECK(has(text, "# TYPE certrelay_identity_messages_total counter"));
    CHECK(has(text,
              "certrelay_identity_rcpt_total{identity=\"client.example\",result=\"relayed\"} 2"));
    CHECK(
        has(text, "certrelay_identity_rcpt_total{identity=\"other.example\",result=\"local\"} 1"));
    CHECK(has(text,
              "certrelay_identity_messages_total{identity=\"client.example\","
              "result=\"accepted\"} 1"));
    CHECK(text.find("identity=\"\"") == std::string::npos);
    CHECK(has(text, "certrelay_rcpt_total{result=\"relayed\"} 2"));
  }

  TEST_CASE("several threads: exact totals, each instance's children its own") {
    Metrics metrics(metricsConfig(true));
    Metrics other(metricsConfig(true));
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 1000; ++i) {
          metrics.countReplies("250 2.0.0 Ok\r\n");
          metrics.outcome(Outcome::MessageAccepted, "client.example", 1);
          // The same thread switching instances must never count into the other's children.
          other.countReplies("550 5.0.0 No\r\n");
        }
      });
    }
    for (auto& thread : threads) {
      thread.join();
    }
    const std::string text = metrics.exposition();
    CHECK(has(text, "certrelay_smtp_replies_total{code=\"250\"} 4000"));
    CHECK(text.find("code=\"550\"") == std::string::npos);
    CHECK(has(text, "certrelay_message_bytes_total 4000"));
    CHECK(has(text,
              "certrelay_identity_messages_total{identity=\"client.example\","
              "result=\"accepted\"} 4000"));
    CHECK(has(other.exposition(), "certrelay_smtp_replies_total{code=\"550\"} 4000"));
  }

  TEST_CASE("promtool check metrics: nothing to say about a real exposition") {
    Metrics metrics(metricsConfig(true));
    exercise(metrics);
    const auto output = promtoolCheck(metrics.exposition());
    if (!output) {
      MESSAGE("skipped: /usr/bin/promtool not installed (Debian package prometheus)");
      return;
    }
    CHECK(*output == "");
    // And the fresh one (families without children, histograms all zero).
    Metrics fresh(metricsConfig());
    CHECK(promtoolCheck(fresh.exposition()).value_or("") == "");
  }
}

}  // namespace
}  // namespace certrelay::proxy
