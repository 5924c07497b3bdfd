// TLS engine micro-benchmarks: the whole conversation runs in memory (tests/unit/tls/test_peer.h),
// no socket, no event loop.
//
// Every benchmark here uses manual time: only the server side (Engine construction, feed, pump,
// take*, shutdown, destruction) is timed with steady_clock; the in-memory OpenSSL client's work
// is excluded. The CPU column of the output is the whole process (client included).

#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "tests/unit/tls/test_peer.h"
#include "tls/context.h"
#include "tls/engine.h"

namespace {

using certrelay::tls::Context;
using certrelay::tls::ContextPtr;
using certrelay::tls::Engine;
using certrelay::tls::test::ClientOptions;
using certrelay::tls::test::pki;
using certrelay::tls::test::TestClient;
using SessionPtr = certrelay::tls::OsslPtr<SSL_SESSION, SSL_SESSION_free>;
using Clock = std::chrono::steady_clock;
constexpr std::int64_t kKiB = 1024;  // benchmark arguments are int64_t

// Every server-side call of a benchmark runs inside this one out-of-line function, so that
//   valgrind --tool=callgrind --toggle-collect='*certrelayServerSide*'
// counts exactly the timed server side (handshake_floor.sh). A toggle on
// 'certrelay::tls::Engine::*' does not: callgrind flips collection on every entry and exit of a
// matching function, and Engine's methods call each other (pump -> handshake -> drainWbio), so
// wherever the compiler keeps such a call out of line (handshake(), in a RelWithDebInfo build)
// collection is off inside it: SSL_do_handshake included.
template <typename F>
[[gnu::noinline]] decltype(auto) certrelayServerSide(F& f) {
  return f();
}

// Accumulates the time spent inside server-side calls.
class ServerTimer {
 public:
  template <typename F>
  decltype(auto) operator()(F&& f) {
    const auto start = Clock::now();
    struct Stop {
      ServerTimer& timer;
      Clock::time_point start;
      ~Stop() { timer.elapsed_ += Clock::now() - start; }
    } stop{*this, start};
    return certrelayServerSide(f);
  }
  double seconds() const { return std::chrono::duration<double>(elapsed_).count(); }
  void reset() { elapsed_ = {}; }

 private:
  Clock::duration elapsed_{};
};

ContextPtr makeContext(int tickets, bool clientCa, int ticketsOnResumption = 1) {
  certrelay::config::Tls settings = pki().settings(clientCa);
  settings.ticketsPerHandshake = tickets;
  settings.ticketsOnResumption = ticketsOnResumption;
  return Context::create(settings);
}

std::string pattern(std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return data;
}

// One server-side step: ciphertext from the client in (in pieces of at most `piece` bytes, each
// followed by a pump, as socket reads would deliver it), plaintext and ciphertext out. Timed.
void serverStep(Engine& engine, ServerTimer& timer, std::string_view fromClient,
                std::string& plainIn, std::string& toClient, std::size_t piece = 0) {
  timer([&] {
    if (piece == 0) {
      piece = fromClient.empty() ? 1 : fromClient.size();
    }
    std::size_t off = 0;
    do {
      const std::size_t n = std::min(piece, fromClient.size() - off);
      engine.feedCiphertext(fromClient.data() + off, n);
      engine.pump();
      off += n;
    } while (off < fromClient.size());
    engine.takePlaintext(plainIn);
    engine.takeCiphertext(toClient);
  });
}

// Shuttles bytes between `client` and `engine` until a round moves nothing.
void shuttle(Engine& engine, TestClient& client, ServerTimer& timer, std::string& plainIn,
             std::size_t piece = 0) {
  std::string toClient;
  for (int round = 0; round < 100; ++round) {
    client.step();
    const std::string toServer = client.takeOutput();
    toClient.clear();
    serverStep(engine, timer, toServer, plainIn, toClient, piece);
    client.feed(toClient);
    if (toServer.empty() && toClient.empty()) {
      break;
    }
  }
}

// The proxy's way out: Engine::shutdown() after "221", the client leaves quietly (its session
// stays resumable), then the engine is destroyed. All timed but the client part.
void closeQuietly(std::unique_ptr<Engine>& engine, TestClient& client, ServerTimer& timer) {
  std::string toClient;
  timer([&] {
    engine->shutdown();
    engine->pump();
    engine->takeCiphertext(toClient);
  });
  SSL_set_shutdown(client.ssl(), SSL_SENT_SHUTDOWN);
  timer([&] { engine.reset(); });
}

// One complete connection: handshake (+ tickets), quiet close. Returns false on failure.
bool connectOnce(const ContextPtr& context, const ClientOptions& options, ServerTimer& timer,
                 bool expectResumed, SessionPtr* sessionOut, std::string* error) {
  TestClient client(options);
  std::unique_ptr<Engine> engine;
  timer([&] { engine = std::make_unique<Engine>(context); });
  std::string plainIn;
  shuttle(*engine, client, timer, plainIn);
  if (engine->state() != Engine::State::Established || !client.handshakeDone()) {
    *error = "handshake failed: " + engine->error() + " / " + client.error();
    return false;
  }
  if (engine->facts().summary.resumed != expectResumed) {
    *error = expectResumed ? "session was not resumed" : "unexpected resumption";
    return false;
  }
  if (sessionOut != nullptr) {
    sessionOut->reset(SSL_get1_session(client.ssl()));
  }
  closeQuietly(engine, client, timer);
  return true;
}

// Full handshake, server side: EC P-256 server and client certificates, X25519 key exchange,
// TLS 1.3. Args: tickets per handshake, client CA configured (chain verification).
void BM_TlsFullHandshake(benchmark::State& state) {
  const ContextPtr context = makeContext(static_cast<int>(state.range(0)), state.range(1) != 0);
  const ClientOptions options{.cert = &pki().client};
  ServerTimer timer;
  std::string error;
  for ([[maybe_unused]] auto _ : state) {
    timer.reset();
    if (!connectOnce(context, options, timer, false, nullptr, &error)) {
      state.SkipWithError(error.c_str());
      break;
    }
    state.SetIterationTime(timer.seconds());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TlsFullHandshake)
    ->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->ArgNames({"tickets", "client_ca"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Resumed handshake (TLS 1.3 stateful ticket naming the server's session cache); each
// connection resumes with the newest session the previous one left the client (its new ticket,
// or the same session when none was sent), as a client that keeps its newest session does.
// Args: client CA configured, tickets sent on resumption.
void BM_TlsResumedHandshake(benchmark::State& state) {
  const ContextPtr context = makeContext(1, state.range(0) != 0, static_cast<int>(state.range(1)));
  ServerTimer timer;
  std::string error;
  SessionPtr session;
  if (!connectOnce(context, ClientOptions{.cert = &pki().client}, timer, false, &session, &error)) {
    state.SkipWithError(error.c_str());
  }
  for ([[maybe_unused]] auto _ : state) {
    timer.reset();
    SessionPtr next;
    if (!connectOnce(context, ClientOptions{.cert = &pki().client, .session = session.get()}, timer,
                     true, &next, &error)) {
      state.SkipWithError(error.c_str());
      break;
    }
    session = std::move(next);
    state.SetIterationTime(timer.seconds());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TlsResumedHandshake)
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->ArgNames({"client_ca", "tickets_on_resumption"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// A series of connections on one Context, for instruction counts (handshake_floor.sh): one
// iteration is `handshakes` full handshakes, or one full handshake and then `handshakes` resumed
// ones, each with the newest session the previous connection left the client. Run with
// --benchmark_min_time=1e-9, a benchmark is one iteration, so callgrind counts exactly that many
// handshakes. Unlike BM_TlsFullHandshake's repetitions (a new Context each), the Context is
// shared as in production: OpenSSL converts the server key once per SSL_CTX for signing
// (EVP_PKEY_get0_EC_KEY with fast_ec_key_decoding, ~0.3M instructions), not once per handshake.
// Args: resumed, handshakes.
void BM_TlsHandshakeSeries(benchmark::State& state) {
  const bool resumed = state.range(0) != 0;
  const auto handshakes = state.range(1);
  const ContextPtr context = makeContext(1, false);
  ServerTimer timer;
  std::string error;
  for ([[maybe_unused]] auto _ : state) {
    timer.reset();
    SessionPtr session;
    if (resumed && !connectOnce(context, ClientOptions{.cert = &pki().client}, timer, false,
                                &session, &error)) {
      state.SkipWithError(error.c_str());
      break;
    }
    for (std::int64_t i = 0; i < handshakes; ++i) {
      SessionPtr next;
      if (!connectOnce(context, ClientOptions{.cert = &pki().client, .session = session.get()},
                       timer, resumed, resumed ? &next : nullptr, &error)) {
        state.SkipWithError(error.c_str());
        return;
      }
      session = std::move(next);
    }
    state.SetIterationTime(timer.seconds());
  }
  state.SetItemsProcessed(state.iterations() * (handshakes + (resumed ? 1 : 0)));
}
BENCHMARK(BM_TlsHandshakeSeries)
    ->ArgsProduct({{0, 1}, {1, 11, 41}})
    ->ArgNames({"resumed", "handshakes"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// An established connection with its handshake (and tickets) done.
struct Established {
  Established() : context(makeContext(1, true)), client(ClientOptions{.cert = &pki().client}) {
    engine = std::make_unique<Engine>(context);
    std::string plainIn;
    shuttle(*engine, client, timer, plainIn);
    timer.reset();
  }
  bool ok() const {
    return engine->state() == Engine::State::Established && client.handshakeDone();
  }
  ContextPtr context;
  TestClient client;
  std::unique_ptr<Engine> engine;
  ServerTimer timer;
};

// Server -> client bulk: one 16 KiB plaintext write per iteration, encrypted by the engine.
void BM_TlsPumpServerToClient(benchmark::State& state) {
  Established link;
  if (!link.ok()) {
    state.SkipWithError("handshake failed");
    return;
  }
  const std::string chunk = pattern(static_cast<std::size_t>(state.range(0)));
  std::string toClient;
  for ([[maybe_unused]] auto _ : state) {
    link.timer.reset();
    toClient.clear();
    link.timer([&] {
      link.engine->queuePlaintext(chunk);
      link.engine->pump();
      link.engine->takeCiphertext(toClient);
    });
    state.SetIterationTime(link.timer.seconds());
    link.client.feed(toClient);
    link.client.step();
    if (link.client.received().size() != chunk.size()) {
      state.SkipWithError("client did not receive the chunk");
      break;
    }
    link.client.received().clear();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_TlsPumpServerToClient)
    ->Arg(16 * kKiB)
    ->ArgName("write")
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Client -> server bulk: the client writes 16 KiB per iteration; the engine decrypts it, fed in
// pieces of `piece` ciphertext bytes (0: all at once, like one 64 KiB socket read).
void BM_TlsPumpClientToServer(benchmark::State& state) {
  Established link;
  if (!link.ok()) {
    state.SkipWithError("handshake failed");
    return;
  }
  const std::string chunk = pattern(static_cast<std::size_t>(state.range(0)));
  const auto piece = static_cast<std::size_t>(state.range(1));
  std::string plainIn;
  std::string toClient;
  for ([[maybe_unused]] auto _ : state) {
    link.client.send(chunk);
    link.client.step();
    const std::string toServer = link.client.takeOutput();
    link.timer.reset();
    plainIn.clear();
    serverStep(*link.engine, link.timer, toServer, plainIn, toClient, piece);
    state.SetIterationTime(link.timer.seconds());
    if (plainIn.size() != chunk.size()) {
      state.SkipWithError("engine did not decrypt the chunk");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_TlsPumpClientToServer)
    ->Args({16 * kKiB, 0})
    ->Args({16 * kKiB, 4096})
    ->ArgNames({"write", "piece"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Per-message TLS overhead: one pipelined transaction with a 10 KiB body, as the proxy's TLS
// side sees it. Client: "MAIL/RCPT/DATA" in one write; server: the three replies; client: the
// body and the final dot; server: "250 ... queued". Arg: ciphertext piece size (0: whole).
void BM_TlsMessage10K(benchmark::State& state) {
  Established link;
  if (!link.ok()) {
    state.SkipWithError("handshake failed");
    return;
  }
  const auto piece = static_cast<std::size_t>(state.range(0));
  const std::string envelope =
      "MAIL FROM:<alice@lab.example> SIZE=10240\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n";
  const std::string replies =
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n";
  std::string body;
  while (body.size() < 10 * 1024 - 78) {
    body += "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n";
  }
  body += ".\r\n";
  const std::string queued = "250 2.0.0 Ok: queued as 4Xyq7D1ZkMz9\r\n";
  std::string plainIn;
  std::string toClient;
  auto exchange = [&](const std::string& clientSends, const std::string& serverAnswers) {
    link.client.send(clientSends);
    link.client.step();
    const std::string toServer = link.client.takeOutput();
    plainIn.clear();
    toClient.clear();
    serverStep(*link.engine, link.timer, toServer, plainIn, toClient, piece);
    toClient.clear();
    link.timer([&] {
      link.engine->queuePlaintext(serverAnswers);
      link.engine->pump();
      link.engine->takeCiphertext(toClient);
    });
    link.client.feed(toClient);
    link.client.step();
    const bool ok = plainIn.size() == clientSends.size() &&
                    link.client.received().size() == serverAnswers.size();
    link.client.received().clear();
    return ok;
  };
  for ([[maybe_unused]] auto _ : state) {
    link.timer.reset();
    if (!exchange(envelope, replies) || !exchange(body, queued)) {
      state.SkipWithError("transaction did not go through");
      break;
    }
    state.SetIterationTime(link.timer.seconds());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
}
BENCHMARK(BM_TlsMessage10K)
    ->Arg(0)
    ->Arg(4096)
    ->ArgName("piece")
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
