// proxy/backend_tls and tls/client_context: the proxy as a TLS client of its backend, against a
// real server-side Engine in memory. The STARTTLS decision, the name the certificate must carry,
// verification (chain, host name, IP address), the proxy's client certificate, data both ways,
// and resumption (what it saves, and that a session never crosses to another name).

#include "proxy/backend_tls.h"

#include <doctest/doctest.h>
#include <openssl/x509_vfy.h>

#include <string>

#include "proxy/metrics.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/client_context.h"
#include "tls/context.h"
#include "tls/engine.h"

namespace certrelay::proxy {
namespace {

using tls::test::pki;

// The server's name in pki().server (its CN; the certificate has no subjectAltName).
constexpr const char* kServerName = "mx.certrelay.test";

config::BackendTls settings(const tls::test::Credential& ca,
                            const tls::test::Credential* client = nullptr) {
  config::BackendTls tls;
  tls.mode = config::BackendTlsMode::Starttls;
  tls.caFile = ca.certFile;
  if (client != nullptr) {
    tls.certFile = client->certFile;
    tls.keyFile = client->keyFile;
  }
  return tls;
}

// A server certificate for 127.0.0.1 and backend.certrelay.test, signed by the test CA, written
// as leaf + CA like the others.
const tls::test::Credential& ipServer() {
  static const tls::test::Credential credential = [] {
    tls::test::Credential c;
    c.key = tls::test::makeEcKey();
    c.cert = tls::test::makeCert(c.key.get(), "backend.certrelay.test", &pki().ca, false,
                                 {.subjectAltName = "IP:127.0.0.1,DNS:backend.certrelay.test"});
    c.certFile = pki().dir / "ip-server.pem";
    c.keyFile = pki().dir / "ip-server.key";
    tls::test::writePem(c.certFile, c.cert.get(), pki().ca.cert.get());
    tls::test::writeKeyPem(c.keyFile, c.key.get());
    return c;
  }();
  return credential;
}

// One connection: the proxy's BackendTls against a server Engine, bytes shuttled in memory.
struct Conversation {
  Conversation(const tls::ClientContextPtr& client, const tls::ContextPtr& server,
               const std::string& peerName, const std::string& address = "127.0.0.1:25")
      : backendTls(client, address, peerName), engine(server) {}

  // Runs until nothing moves. Counts the bytes each way.
  void run() {
    std::string toServer;
    state = backendTls.start(toServer);
    for (int round = 0; round < 50; ++round) {
      toServerBytes += toServer.size();
      engine.feedCiphertext(toServer.data(), toServer.size());
      toServer.clear();
      engine.pump();
      engine.takePlaintext(serverReceived);
      std::string toClient;
      engine.takeCiphertext(toClient);
      toClientBytes += toClient.size();
      if (toClient.empty()) {
        break;
      }
      state = backendTls.feed(toClient, clientReceived, toServer);
      if (backendTls.handshakeJustCompleted()) {
        ++completions;
      }
    }
  }

  // After the handshake: `line` to the server, `reply` back.
  void exchange(const std::string& line, const std::string& reply) {
    std::string wire;
    backendTls.send(line, wire);
    engine.feedCiphertext(wire.data(), wire.size());
    engine.queuePlaintext(reply);
    engine.pump();
    engine.takePlaintext(serverReceived);
    std::string toClient;
    engine.takeCiphertext(toClient);
    std::string back;
    state = backendTls.feed(toClient, clientReceived, back);
  }

  // The proxy's orderly end: close_notify, read by the server.
  void close() {
    std::string wire;
    backendTls.close(wire);
    engine.feedCiphertext(wire.data(), wire.size());
    engine.pump();
  }

  BackendTls backendTls;
  tls::Engine engine;
  BackendTls::State state = BackendTls::State::Handshaking;
  std::string serverReceived;
  std::string clientReceived;
  std::size_t toServerBytes = 0;
  std::size_t toClientBytes = 0;
  int completions = 0;
};

tls::ContextPtr server(const tls::test::Credential& credential = pki().server) {
  // ipServer()'s key is made before this process's first Context: Context::create installs the
  // fast EC key decoding (tls/compat.h), after which EC key generation no longer works.
  ipServer();
  return tls::Context::create(pki().settingsFor(credential, true));
}

TEST_SUITE("proxy") {
  TEST_CASE("backend tls: STARTTLS is sent when required and offered, refused when not offered") {
    smtp::Capabilities offered;
    offered.starttls = true;
    const smtp::Capabilities without;
    using config::BackendTlsMode;
    CHECK(starttlsStep(BackendTlsMode::Starttls, false, offered) == StarttlsStep::Send);
    CHECK(starttlsStep(BackendTlsMode::Starttls, false, without) == StarttlsStep::NotOffered);
    // After the handshake, the second EHLO goes on (whatever it offers: Postfix drops STARTTLS).
    CHECK(starttlsStep(BackendTlsMode::Starttls, true, without) == StarttlsStep::Proceed);
    CHECK(starttlsStep(BackendTlsMode::Implicit, true, without) == StarttlsStep::Proceed);
    CHECK(starttlsStep(BackendTlsMode::None, false, offered) == StarttlsStep::Proceed);
    CHECK(starttlsStep(BackendTlsMode::None, false, without) == StarttlsStep::Proceed);
  }

  TEST_CASE("backend tls: the EHLO keyword STARTTLS is read from the reply") {
    smtp::Reply reply;
    reply.code = 250;
    reply.lines = {"backend.example", "PIPELINING", "starttls", "SIZE 1000"};
    CHECK(smtp::Capabilities::fromEhloReply(reply).starttls);
    reply.lines = {"backend.example STARTTLS", "PIPELINING"};  // the greeting line is no keyword
    CHECK_FALSE(smtp::Capabilities::fromEhloReply(reply).starttls);
  }

  TEST_CASE("backend tls: the name to verify is the override, else the configured host") {
    config::BackendTls tls;
    const BackendAddress byName{config::Endpoint{"10.0.0.7", 25}, "mx.example"};
    const BackendAddress byAddress{config::Endpoint{"10.0.0.7", 25}, "10.0.0.7"};
    const BackendAddress bare{config::Endpoint{"2001:db8::7", 25}, ""};
    CHECK(tlsPeerName(tls, byName) == "mx.example");
    CHECK(tlsPeerName(tls, byAddress) == "10.0.0.7");
    CHECK(tlsPeerName(tls, bare) == "2001:db8::7");
    tls.serverName = "relay.internal.example";
    CHECK(tlsPeerName(tls, byName) == "relay.internal.example");
    CHECK(tlsPeerName(tls, byAddress) == "relay.internal.example");
  }

  TEST_CASE("backend tls: a verified handshake, then commands and replies both ways") {
    const auto client = tls::ClientContext::create(settings(pki().ca));
    Conversation c(client, server(), kServerName);
    c.run();
    REQUIRE(c.state == BackendTls::State::Established);
    CHECK(c.completions == 1);
    CHECK(c.engine.state() == tls::Engine::State::Established);
    CHECK(c.engine.facts().summary.version == "TLSv1.3");
    CHECK_FALSE(c.engine.facts().hasCertificate);  // no client certificate configured
    CHECK(c.backendTls.description().find("TLSv1.3 with cipher ") == 0);
    CHECK(c.backendTls.description().find(", CN=mx.certrelay.test verified for "
                                          "mx.certrelay.test") != std::string::npos);
    c.exchange("EHLO relay.example\r\n", "250 backend.example\r\n");
    CHECK(c.serverReceived == "EHLO relay.example\r\n");
    CHECK(c.clientReceived == "250 backend.example\r\n");
    // Held bytes leave with the next send, in order.
    c.backendTls.hold("X-Held: 1\r\n");
    c.exchange("rest\r\n", "");
    CHECK(c.serverReceived == "EHLO relay.example\r\nX-Held: 1\r\nrest\r\n");
  }

  TEST_CASE("backend tls: a certificate from another CA fails with the verify reason") {
    const auto client = tls::ClientContext::create(settings(pki().otherCa));
    Conversation c(client, server(), kServerName);
    c.run();
    CHECK(c.state == BackendTls::State::Failed);
    CHECK(c.backendTls.verifyFailed());
    // The server sends its chain (leaf + CA): the CA it ends in is not one we trust.
    const std::string reason = X509_verify_cert_error_string(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
    CHECK(c.backendTls.failure() ==
          "TLS handshake with 127.0.0.1:25 failed: certificate verify "
          "failed: " +
              reason + " (expected name mx.certrelay.test)");
    CHECK(c.engine.state() == tls::Engine::State::Failed);  // the server got the alert
    CHECK(c.serverReceived.empty());
  }

  TEST_CASE("backend tls: a certificate for another name fails as a hostname mismatch") {
    const auto client = tls::ClientContext::create(settings(pki().ca));
    SUBCASE("another name") {
      Conversation c(client, server(), "other.certrelay.test");
      c.run();
      CHECK(c.state == BackendTls::State::Failed);
      CHECK(c.backendTls.verifyFailed());
      CHECK(c.backendTls.failure().find("certificate verify failed: hostname mismatch "
                                        "(expected name other.certrelay.test)") !=
            std::string::npos);
    }
    SUBCASE("a wildcard covers one label") {
      // pki().wildcard is for *.relay.certrelay.test: a.relay.certrelay.test matches, a name
      // one label deeper does not.
      Conversation good(client, server(pki().wildcard), "a.relay.certrelay.test");
      good.run();
      CHECK(good.state == BackendTls::State::Established);
      Conversation deeper(client, server(pki().wildcard), "b.a.relay.certrelay.test");
      deeper.run();
      CHECK(deeper.state == BackendTls::State::Failed);
    }
  }

  TEST_CASE("backend tls: an address is verified against the certificate's IP addresses") {
    const auto client = tls::ClientContext::create(settings(pki().ca));
    Conversation byIp(client, server(ipServer()), "127.0.0.1");
    byIp.run();
    CHECK(byIp.state == BackendTls::State::Established);
    Conversation otherIp(client, server(ipServer()), "127.0.0.2");
    otherIp.run();
    CHECK(otherIp.state == BackendTls::State::Failed);
    CHECK(otherIp.backendTls.failure().find("certificate verify failed: IP address mismatch") !=
          std::string::npos);
    // An address is never sent as SNI (RFC 6066), and never matched against DNS names.
    Conversation byName(client, server(ipServer()), "backend.certrelay.test");
    byName.run();
    CHECK(byName.state == BackendTls::State::Established);
  }

  TEST_CASE("backend tls: the proxy's client certificate reaches the server, verified") {
    const auto client = tls::ClientContext::create(settings(pki().ca, &pki().client));
    CHECK(client->summary().find("CA 1 certificate, client certificate CN=client1.lab.example") ==
          0);
    Conversation c(client, server(), kServerName);
    c.run();
    REQUIRE(c.state == BackendTls::State::Established);
    CHECK(c.engine.facts().hasCertificate);
    CHECK(c.engine.facts().subjectCn == "client1.lab.example");
    CHECK(c.engine.facts().verified);
  }

  TEST_CASE("backend tls: the next connection resumes, with far fewer bytes") {
    const auto client = tls::ClientContext::create(settings(pki().ca, &pki().client));
    const auto context = server();
    Conversation first(client, context, kServerName);
    first.run();
    REQUIRE(first.state == BackendTls::State::Established);
    // The TLS 1.3 ticket arrives after the handshake, with the first reply.
    first.exchange("EHLO relay.example\r\n", "250 backend.example\r\n");
    first.close();
    CHECK(client->cachedSessions() == 1);
    CHECK_FALSE(first.backendTls.resumed());

    Conversation second(client, context, kServerName);
    second.run();
    REQUIRE(second.state == BackendTls::State::Established);
    CHECK(second.backendTls.resumed());
    CHECK(second.backendTls.description().find(", resumed") != std::string::npos);
    // Its certificate facts are the first connection's (kept with the session).
    CHECK(second.engine.facts().hasCertificate);
    // No certificates, no signatures: what a resumed backend connection saves.
    MESSAGE("backend handshake bytes, proxy->backend / backend->proxy: full ", first.toServerBytes,
            " / ", first.toClientBytes, ", resumed ", second.toServerBytes, " / ",
            second.toClientBytes);
    CHECK(second.toClientBytes * 3 < first.toClientBytes);
    CHECK(second.toServerBytes < first.toServerBytes);
  }

  TEST_CASE("backend tls: one session serves every later connection, dropped ones included") {
    // As Postfix does: stateless tickets (the server keeps nothing, so how the server side ends
    // does not matter), and no new ticket after a resumed handshake, so the one session must
    // survive every connection that uses it (OpenSSL marks a TLS 1.3 session used up once it
    // resumed), those the proxy drops with replies owed included (OpenSSL marks the session of
    // an SSL freed mid-connection bad).
    config::Tls serverSettings = pki().settingsFor(pki().server, true);
    serverSettings.sessionTickets = true;
    serverSettings.ticketsOnResumption = 0;
    const auto context = tls::Context::create(serverSettings);
    const auto client = tls::ClientContext::create(settings(pki().ca));
    {
      Conversation first(client, context, kServerName);
      first.run();
      first.exchange("EHLO relay.example\r\n", "250 backend.example\r\n");
      REQUIRE(client->cachedSessions() == 1);
    }  // dropped: no close()
    for (int i = 0; i < 3; ++i) {
      Conversation next(client, context, kServerName);
      next.run();
      REQUIRE(next.state == BackendTls::State::Established);
      CHECK(next.backendTls.resumed());
      next.exchange("EHLO relay.example\r\n", "250 backend.example\r\n");
    }
  }

  TEST_CASE("backend tls: a session is never offered to another name or another address") {
    const auto client = tls::ClientContext::create(settings(pki().ca));
    const auto context = server(ipServer());
    Conversation first(client, context, "backend.certrelay.test");
    first.run();
    first.exchange("EHLO relay.example\r\n", "250 backend.example\r\n");
    first.close();
    REQUIRE(client->cachedSessions() == 1);
    // Same address, another name the certificate also carries: a full handshake, verified.
    Conversation otherName(client, context, "127.0.0.1");
    otherName.run();
    REQUIRE(otherName.state == BackendTls::State::Established);
    CHECK_FALSE(otherName.backendTls.resumed());
    Conversation otherAddress(client, context, "backend.certrelay.test", "127.0.0.1:26");
    otherAddress.run();
    REQUIRE(otherAddress.state == BackendTls::State::Established);
    CHECK_FALSE(otherAddress.backendTls.resumed());
    // A new generation (a reload of the CA or the client certificate) starts with none.
    const auto reloaded = tls::ClientContext::create(settings(pki().ca));
    Conversation afterReload(reloaded, context, "backend.certrelay.test");
    afterReload.run();
    CHECK_FALSE(afterReload.backendTls.resumed());
  }

  TEST_CASE("backend tls: the backend's close_notify comes after the replies before it") {
    const auto client = tls::ClientContext::create(settings(pki().ca));
    Conversation c(client, server(), kServerName);
    c.run();
    REQUIRE(c.state == BackendTls::State::Established);
    CHECK_FALSE(c.backendTls.peerClosed());
    c.engine.queuePlaintext("421 4.3.2 backend.example shutting down\r\n");
    c.engine.shutdown();
    std::string toClient;
    c.engine.takeCiphertext(toClient);
    std::string toServer;
    CHECK(c.backendTls.feed(toClient, c.clientReceived, toServer) ==
          BackendTls::State::Established);
    CHECK(c.clientReceived == "421 4.3.2 backend.example shutting down\r\n");
    CHECK(c.backendTls.peerClosed());
    CHECK_FALSE(toServer.empty());  // our close_notify in answer
    std::string after;
    c.backendTls.send("MAIL FROM:<a@b.example>\r\n", after);
    CHECK(after.empty());  // nothing is written into a closed session
  }

  TEST_CASE("backend tls: each handshake is counted by how it ended") {
    Metrics metrics{config::Config{}};
    const auto client = tls::ClientContext::create(settings(pki().ca));
    const auto context = server();
    Conversation full(client, context, kServerName);
    full.run();
    full.exchange("EHLO relay.example\r\n", "250 backend.example\r\n");
    full.backendTls.count(&metrics);
    Conversation resumed(client, context, kServerName);
    resumed.run();
    resumed.backendTls.count(&metrics);
    Conversation wrongName(client, context, "other.certrelay.test");
    wrongName.run();
    wrongName.backendTls.count(&metrics);
    BackendTls cutShort(client, "127.0.0.1:25", kServerName);  // a timeout mid-handshake
    std::string wire;
    REQUIRE(cutShort.start(wire) == BackendTls::State::Handshaking);
    cutShort.count(&metrics);
    cutShort.count(nullptr);  // no metrics (unit tests, tools): nothing to do
    const std::string text = metrics.exposition();
    for (const char* result : {"full", "resumed", "verify_failed", "failed"}) {
      CAPTURE(std::string(result));
      CHECK(text.find(std::string("certrelay_backend_tls_handshakes_total{result=\"") + result +
                      "\"} 1\n") != std::string::npos);
    }
  }

  TEST_CASE("backend tls: without a context the handshake fails, nothing goes out") {
    BackendTls tls(nullptr, "127.0.0.1:25", kServerName);
    std::string wire;
    CHECK(tls.start(wire) == BackendTls::State::Failed);
    CHECK(wire.empty());
    CHECK(tls.failure() ==
          "TLS handshake with 127.0.0.1:25 failed: no backend TLS context "
          "(expected name mx.certrelay.test)");
    tls.send("MAIL FROM:<a@b.example>\r\n", wire);
    CHECK(wire.empty());
  }
}

}  // namespace
}  // namespace certrelay::proxy
