// The backend hop's TLS (backend.tls): what one backend connection's handshake costs the proxy,
// full and resumed, in memory against a server-side Engine (tests/unit/tls/test_pki.h).
//
// Manual time: only the proxy's side is timed (ClientContext::newSsl, the client Engine's
// construction, feed/pump/take through the handshake and the server's ticket, destruction), so
// the `Time` column is the proxy's cost per backend connection; the `CPU` column is the whole
// process, the server side included.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/unit/tls/test_pki.h"
#include "tls/client_context.h"
#include "tls/context.h"
#include "tls/engine.h"

namespace {

using certrelay::tls::ClientContext;
using certrelay::tls::ClientContextPtr;
using certrelay::tls::Context;
using certrelay::tls::ContextPtr;
using certrelay::tls::Engine;
using certrelay::tls::test::pki;
using Clock = std::chrono::steady_clock;

// The backend as Postfix runs it: stateless tickets, none sent after a resumed handshake.
ContextPtr backendContext() {
  certrelay::config::Tls settings = pki().settings(true);
  settings.sessionTickets = true;
  settings.ticketsOnResumption = 0;
  return Context::create(settings);
}

ClientContextPtr proxyContext(bool clientCert) {
  certrelay::config::BackendTls settings;
  settings.mode = certrelay::config::BackendTlsMode::Starttls;
  settings.caFile = pki().ca.certFile;
  if (clientCert) {
    settings.certFile = pki().client.certFile;
    settings.keyFile = pki().client.keyFile;
  }
  return ClientContext::create(settings);
}

// One backend connection's handshake and the ticket that follows it; returns the proxy's time,
// or a negative value when the handshake failed or did not resume as expected.
double connectOnce(const ClientContextPtr& proxy, const ContextPtr& backend, bool expectResumed,
                   const std::string& address = "10.0.0.7:25") {
  Clock::duration proxyTime{};
  const auto timed = [&](auto&& step) {
    const auto start = Clock::now();
    step();
    proxyTime += Clock::now() - start;
  };
  std::unique_ptr<Engine> client;
  timed([&] {
    std::string error;
    client = std::make_unique<Engine>(proxy, proxy->newSsl(address, "mx.certrelay.test", error));
  });
  Engine server(backend);
  std::string toServer;
  std::string toClient;
  for (int round = 0; round < 20; ++round) {
    toServer.clear();
    timed([&] {
      client->feedCiphertext(toClient.data(), toClient.size());
      client->pump();
      client->takeCiphertext(toServer);
    });
    if (toServer.empty() && round > 0) {
      break;
    }
    server.feedCiphertext(toServer.data(), toServer.size());
    server.pump();
    toClient.clear();
    server.takeCiphertext(toClient);
  }
  const bool ok = client->state() == Engine::State::Established &&
                  client->facts().summary.resumed == expectResumed;
  timed([&] { client.reset(); });
  return ok ? std::chrono::duration<double>(proxyTime).count() : -1;
}

// Args: resumed (0: a full handshake every time, each connection to an address the cache has no
// session for), the proxy's client certificate (backend.tls_cert) sent.
void BM_BackendTlsHandshake(benchmark::State& state) {
  const bool resumed = state.range(0) != 0;
  const bool clientCert = state.range(1) != 0;
  const ContextPtr backend = backendContext();
  const ClientContextPtr proxy = proxyContext(clientCert);
  if (resumed && connectOnce(proxy, backend, false) < 0) {  // the session to resume
    state.SkipWithError("first handshake failed");
  }
  std::uint64_t port = 0;
  for ([[maybe_unused]] auto _ : state) {
    const std::string address = "10.0.0.7:" + std::to_string(resumed ? 25 : 1024 + port++);
    const double seconds = connectOnce(proxy, backend, resumed, address);
    if (seconds < 0) {
      state.SkipWithError(resumed ? "not resumed" : "handshake failed");
      break;
    }
    state.SetIterationTime(seconds);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BackendTlsHandshake)
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->ArgNames({"resumed", "client_cert"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
