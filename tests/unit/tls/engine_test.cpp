// Engine against a real OpenSSL client over memory BIOs: handshakes, facts, data, close,
// garbage, ALPN, resumption and renegotiation. The client_cert modes: client_cert_test.cpp.

#include "tls/engine.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/idle_buffer.h"
#include "tests/unit/tls/test_peer.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/context.h"

namespace certrelay::tls {
namespace {

using test::ClientOptions;
using test::Link;
using test::pki;
using State = Engine::State;
using SessionPtr = OsslPtr<SSL_SESSION, SSL_SESSION_free>;

ContextPtr makeContext(bool withClientCa = true) {
  return Context::create(pki().settings(withClientCa));
}

std::string pattern(std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return data;
}

// How the first connection of a resumption test ends.
enum class End {
  ClientCloses,    // client close_notify, answered by the engine
  ServerShutdown,  // Engine::shutdown() (the proxy's path after "221 Bye"); no answer
  ServerDropped,   // engine destroyed without any shutdown (the client did close cleanly)
};

// Full handshake, then the client's resumable session (the TLS 1.3 tickets arrive after the
// handshake and are processed by the client's reads in Link::run). Both OpenSSL sides forget a
// session whose SSL is freed without a shutdown ("bad session"), so how the connection ends
// matters.
SessionPtr firstSession(const ContextPtr& context, const ClientOptions& options,
                        End end = End::ClientCloses) {
  Link link(context, options);
  link.run();
  REQUIRE(link.established());
  CHECK_FALSE(link.engine.facts().summary.resumed);
  SessionPtr session(SSL_get1_session(link.client.ssl()));
  REQUIRE(session != nullptr);
  switch (end) {
    case End::ClientCloses:
      SSL_shutdown(link.client.ssl());
      link.run();
      CHECK(link.engine.state() == Engine::State::Closed);
      break;
    case End::ServerShutdown:
      link.engine.shutdown();
      SSL_set_shutdown(link.client.ssl(), SSL_SENT_SHUTDOWN);  // client leaves quietly
      break;
    case End::ServerDropped:
      SSL_shutdown(link.client.ssl());  // sent, never delivered
      break;
  }
  REQUIRE(SSL_SESSION_is_resumable(session.get()) == 1);
  return session;
}

bool containsAlert(const std::string& records) {
  // TLS record content type 21 = alert.
  return !records.empty() && static_cast<unsigned char>(records[0]) == 21;
}

TEST_SUITE("tls") {
  TEST_CASE("engine: TLS 1.3 handshake with a CA-signed client certificate is verified") {
    Link link(makeContext(), ClientOptions{.cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    const PeerFacts& facts = link.engine.facts();
    CHECK(facts.summary.version == "TLSv1.3");
    CHECK(facts.summary.cipher == "TLS_AES_256_GCM_SHA384");
    CHECK(facts.summary.cipherBits == 256);
    CHECK(facts.summary.cipherAlgBits == 256);
    CHECK(facts.summary.group == "X25519");
    CHECK_FALSE(facts.summary.resumed);
    CHECK(facts.hasCertificate);
    CHECK(facts.verified);
    CHECK(facts.subjectCn == "client1.lab.example");
    CHECK(facts.issuerCn == "certrelay Test CA");
    CHECK(facts.certFingerprint == certificateFingerprint(pki().client.cert.get()));
    CHECK(facts.pkeyFingerprint == publicKeyFingerprint(pki().client.cert.get()));
    CHECK(facts.certFingerprint.size() == 64);
    CHECK(facts.digestName == "SHA256");
  }

  TEST_CASE("engine: TLS 1.2 handshake with a client certificate") {
    Link link(makeContext(), ClientOptions{.maxVersion = TLS1_2_VERSION, .cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    const PeerFacts& facts = link.engine.facts();
    CHECK(facts.summary.version == "TLSv1.2");
    CHECK(facts.summary.cipher == "ECDHE-ECDSA-AES256-GCM-SHA384");
    CHECK(facts.summary.cipherBits == 256);
    CHECK(facts.summary.group == "X25519");  // TLS 1.2 ECDHE reports its curve too
    CHECK(facts.hasCertificate);
    CHECK(facts.verified);
    CHECK(facts.subjectCn == "client1.lab.example");
    CHECK(facts.certFingerprint == certificateFingerprint(pki().client.cert.get()));
  }

  TEST_CASE("engine: the group name for P-256 is the NIST name") {
    Link link(makeContext(), ClientOptions{.groups = "P-256"});
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().summary.group == "P-256");
  }

  TEST_CASE("engine: TLS 1.3 and TLS 1.2 without a client certificate") {
    for (int maxVersion : {0, TLS1_2_VERSION}) {
      CAPTURE(maxVersion);
      Link link(makeContext(), ClientOptions{.maxVersion = maxVersion});
      link.run();
      REQUIRE(link.established());
      const PeerFacts& facts = link.engine.facts();
      CHECK_FALSE(facts.hasCertificate);
      CHECK_FALSE(facts.verified);
      CHECK(facts.subjectCn.empty());
      CHECK(facts.certFingerprint.empty());
      CHECK(facts.pkeyFingerprint.empty());
      CHECK_FALSE(facts.summary.version.empty());
    }
  }

  TEST_CASE("engine: a self-signed client certificate is accepted but not verified") {
    Link link(makeContext(), ClientOptions{.cert = &pki().selfSigned});
    link.run();
    REQUIRE(link.established());
    const PeerFacts& facts = link.engine.facts();
    CHECK(facts.hasCertificate);
    CHECK_FALSE(facts.verified);
    CHECK(facts.subjectCn == "client2.lab.example");
    CHECK(facts.issuerCn == "client2.lab.example");
    CHECK(facts.pkeyFingerprint == publicKeyFingerprint(pki().selfSigned.cert.get()));
  }

  TEST_CASE("engine: without a client CA nothing verifies, the certificate is still recorded") {
    Link link(makeContext(/*withClientCa=*/false), ClientOptions{.cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().hasCertificate);
    CHECK_FALSE(link.engine.facts().verified);
    CHECK(link.engine.facts().certFingerprint == certificateFingerprint(pki().client.cert.get()));
  }

  TEST_CASE("engine: handshakeJustCompleted is true exactly once") {
    Link link(makeContext(), ClientOptions{});
    CHECK_FALSE(link.engine.handshakeJustCompleted());
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.handshakeJustCompleted());
    CHECK_FALSE(link.engine.handshakeJustCompleted());
    link.engine.pump();
    CHECK_FALSE(link.engine.handshakeJustCompleted());
  }

  TEST_CASE("engine: handshake fed one byte at a time") {
    Link link(makeContext(), ClientOptions{.cert = &pki().client});
    for (int round = 0; round < 20 && !link.established(); ++round) {
      link.client.step();
      const std::string bytes = link.client.takeOutput();
      for (char c : bytes) {
        link.engine.feedCiphertext(&c, 1);
        link.engine.pump();
      }
      std::string back;
      link.engine.takeCiphertext(back);
      link.client.feed(back);
    }
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().verified);
  }

  TEST_CASE("engine: data round trip both ways") {
    Link link(makeContext(), ClientOptions{});
    link.run();
    REQUIRE(link.established());
    link.client.send("EHLO client.example\r\n");
    link.run();
    CHECK(link.serverReceived == "EHLO client.example\r\n");
    link.engine.queuePlaintext("250-mx.example\r\n");
    link.engine.queuePlaintext("250 8BITMIME\r\n");
    link.engine.pump();
    CHECK(link.engine.hasCiphertext());
    link.run();
    CHECK_FALSE(link.engine.hasCiphertext());
    CHECK(link.client.received() == "250-mx.example\r\n250 8BITMIME\r\n");
  }

  TEST_CASE("engine: 1 MiB each way") {
    Link link(makeContext(), ClientOptions{.cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    const std::string up = pattern(1 << 20);
    const std::string down = pattern((1 << 20) + 17);
    link.client.send(up);
    link.engine.queuePlaintext(down);
    link.run(1000);
    CHECK(link.serverReceived.size() == up.size());
    CHECK(link.serverReceived == up);
    CHECK(link.client.received().size() == down.size());
    CHECK(link.client.received() == down);
  }

  TEST_CASE("engine: 1 MiB fed in odd slices, partial records left between pumps") {
    Link link(makeContext(), ClientOptions{});
    link.run();
    REQUIRE(link.established());
    const std::string up = pattern(1 << 20);
    link.client.send(up);
    link.client.step();
    const std::string records = link.client.takeOutput();
    REQUIRE(records.size() > up.size());
    std::string got;
    for (std::size_t pos = 0; pos < records.size(); pos += 1000) {
      const std::size_t n = std::min<std::size_t>(1000, records.size() - pos);
      link.engine.feedCiphertext(records.data() + pos, n);
      REQUIRE(link.engine.pump() == State::Established);
      link.engine.takePlaintext(got);
    }
    CHECK(got.size() == up.size());
    CHECK(got == up);
    // Large bursts in both directions and then a small exchange still work (buffers released
    // after the burst are re-created on demand).
    link.engine.queuePlaintext(pattern(100'000));
    link.run();
    CHECK(link.client.received().size() == 100'000);
    link.client.send("NOOP\r\n");
    link.serverReceived.clear();
    link.run();
    CHECK(link.serverReceived == "NOOP\r\n");
  }

  TEST_CASE("engine: ciphertext read in place, the unread rest kept when the buffer is reused") {
    // pump(ciphertext) reads the caller's buffer where it is, and a socket read buffer is
    // refilled by the next read: nothing of it may be needed afterwards. (OpenSSL moves a
    // partial record into its own buffer; what it leaves unread is copied by the engine.)
    Link link(makeContext(), ClientOptions{});
    link.run();
    REQUIRE(link.established());
    const std::string up = pattern(200'000);
    link.client.send(up);
    link.client.step();
    const std::string records = link.client.takeOutput();
    std::string got;
    std::string readBuffer;  // one buffer, overwritten by every "read"
    for (std::size_t pos = 0, n = 1; pos < records.size(); pos += n, n = n * 7 % 9001 + 1) {
      n = std::min(n, records.size() - pos);
      readBuffer.assign(records, pos, n);
      REQUIRE(link.engine.pump(readBuffer) == State::Established);
      readBuffer.assign(readBuffer.size(), '\xff');
      link.engine.takePlaintext(got);
    }
    CHECK(got.size() == up.size());
    CHECK(got == up);
    // Nothing is held once every record was read.
    CHECK(link.engine.bufferCapacity() <= 5 * kIdleBufferCapacity);
    // Fed (copied) and lent bytes keep their order.
    link.client.send("one ");
    link.client.step();
    const std::string first = link.client.takeOutput();
    link.client.send("two");
    link.client.step();
    const std::string second = link.client.takeOutput();
    link.engine.feedCiphertext(first.data(), first.size() - 3);
    std::string rest = first.substr(first.size() - 3) + second;
    REQUIRE(link.engine.pump(rest) == State::Established);
    rest.assign(rest.size(), '\0');
    got.clear();
    link.engine.takePlaintext(got);
    CHECK(got == "one two");
  }

  TEST_CASE("engine: plaintext held in place stays put while held, its buffer kept on request") {
    Link link(makeContext(), ClientOptions{});
    link.run();
    REQUIRE(link.established());
    const auto records = [&link](const std::string& text) {
      link.client.send(text);
      link.client.step();
      return link.client.takeOutput();
    };
    const std::string message = pattern(10'240);
    REQUIRE(link.engine.pump(records(message)) == State::Established);
    const std::string_view held = link.engine.holdPlaintext();
    CHECK(held == message);
    // A reply sent while the plaintext is processed pumps the engine: with more records
    // waiting, nothing is decrypted into (and nothing moves) the held buffer.
    const std::string more = records("NOOP\r\n");
    link.engine.feedCiphertext(more.data(), more.size());
    link.engine.queuePlaintext("250 ok\r\n");
    REQUIRE(link.engine.pump() == State::Established);
    CHECK(held == message);
    link.engine.releasePlaintext(true);
    CHECK(link.engine.bufferCapacity() >= message.size());  // kept for the next records
    REQUIRE(link.engine.pump() == State::Established);
    CHECK(link.engine.holdPlaintext() == "NOOP\r\n");
    link.engine.releasePlaintext(false);
    CHECK(link.engine.bufferCapacity() <= 5 * kIdleBufferCapacity);  // given back when idle
  }

  TEST_CASE("engine: plaintext queued during the handshake is sent once it completes") {
    Link link(makeContext(), ClientOptions{});
    link.engine.queuePlaintext("220 ready\r\n");
    link.engine.pump();
    std::string early;
    link.engine.takeCiphertext(early);
    link.client.feed(early);
    link.run();
    REQUIRE(link.established());
    CHECK(link.client.received() == "220 ready\r\n");
  }

  TEST_CASE("engine: application data that arrives with the client Finished is read at once") {
    Link link(makeContext(), ClientOptions{});
    // Client: ClientHello -> server flight -> client Finished. The client may write right after
    // its handshake completes, so Finished and data reach the engine in one feed.
    link.client.step();
    std::string hello = link.client.takeOutput();
    link.engine.feedCiphertext(hello.data(), hello.size());
    link.engine.pump();
    std::string flight;
    link.engine.takeCiphertext(flight);
    link.client.feed(flight);
    link.client.send("EHLO x\r\n");
    link.client.step();
    REQUIRE(link.client.handshakeDone());
    const std::string finishedAndData = link.client.takeOutput();
    link.engine.feedCiphertext(finishedAndData.data(), finishedAndData.size());
    CHECK(link.engine.pump() == State::Established);
    std::string plain;
    link.engine.takePlaintext(plain);
    CHECK(plain == "EHLO x\r\n");
  }

  TEST_CASE("engine: takeCiphertext and takePlaintext append to a non-empty buffer") {
    Link link(makeContext(), ClientOptions{});
    link.run();
    REQUIRE(link.established());
    link.client.send("abc");
    link.client.step();
    const std::string bytes = link.client.takeOutput();
    link.engine.feedCiphertext(bytes.data(), bytes.size());
    link.engine.pump();
    std::string plain = "xyz";
    link.engine.takePlaintext(plain);
    CHECK(plain == "xyzabc");
    std::string more;
    link.engine.takePlaintext(more);
    CHECK(more.empty());
    link.engine.queuePlaintext("reply");
    link.engine.pump();
    std::string cipher = "prefix";
    link.engine.takeCiphertext(cipher);
    CHECK(cipher.size() > 6);
    CHECK(cipher.compare(0, 6, "prefix") == 0);
    CHECK_FALSE(link.engine.hasCiphertext());
  }

  TEST_CASE("engine: close_notify from the client closes and is answered") {
    Link link(makeContext(), ClientOptions{});
    link.run();
    REQUIRE(link.established());
    link.client.send("QUIT\r\n");
    link.client.step();
    REQUIRE(SSL_shutdown(link.client.ssl()) == 0);  // close_notify sent, none received yet
    const std::string bytes = link.client.takeOutput();
    link.engine.feedCiphertext(bytes.data(), bytes.size());
    CHECK(link.engine.pump() == State::Closed);
    std::string plain;
    link.engine.takePlaintext(plain);
    CHECK(plain == "QUIT\r\n");  // data before close_notify is kept
    std::string reply;
    link.engine.takeCiphertext(reply);
    link.client.feed(reply);
    CHECK(SSL_shutdown(link.client.ssl()) == 1);  // the engine answered with its close_notify
    // Later input is ignored and the state stays Closed.
    link.engine.feedCiphertext("junk", 4);
    CHECK(link.engine.pump() == State::Closed);
    CHECK(link.engine.error().empty());
  }

  TEST_CASE("engine: shutdown flushes queued plaintext, then sends close_notify") {
    Link link(makeContext(), ClientOptions{});
    link.run();
    REQUIRE(link.established());
    link.engine.queuePlaintext("221 2.0.0 Bye\r\n");
    link.engine.shutdown();
    CHECK(link.engine.state() == State::Closed);
    link.run();
    CHECK(link.client.received() == "221 2.0.0 Bye\r\n");
    CHECK(link.client.gotCloseNotify());
  }

  TEST_CASE("engine: shutdown during the handshake closes without sending anything") {
    Link link(makeContext(), ClientOptions{});
    link.client.step();
    const std::string hello = link.client.takeOutput();
    link.engine.feedCiphertext(hello.data(), hello.size());
    link.engine.shutdown();
    CHECK(link.engine.state() == State::Closed);
    CHECK_FALSE(link.engine.hasCiphertext());
    CHECK(link.engine.error().empty());
  }

  TEST_CASE("engine: an HTTP request instead of a ClientHello fails cleanly") {
    Engine engine(makeContext());
    const std::string http = "GET / HTTP/1.1\r\n\r\n";
    engine.feedCiphertext(http.data(), http.size());
    CHECK(engine.pump() == State::Failed);
    CHECK(engine.error().rfind("SSL_do_handshake: ", 0) == 0);
    CHECK(engine.error().find("http request") != std::string::npos);
    // Stays failed; more input and pumps are harmless.
    engine.feedCiphertext(http.data(), http.size());
    CHECK(engine.pump() == State::Failed);
    CHECK_FALSE(engine.handshakeJustCompleted());
  }

  TEST_CASE("engine: a first record with a wrong version fails without an alert") {
    Engine engine(makeContext());
    // A handshake record header with version 0x0900: OpenSSL decides this is not TLS at all
    // and, like for the HTTP request, does not answer with an alert.
    const std::string bogus("\x16\x09\x00\x00\x05hello", 10);
    engine.feedCiphertext(bogus.data(), bogus.size());
    CHECK(engine.pump() == State::Failed);
    CHECK(engine.error().find("wrong version number") != std::string::npos);
  }

  TEST_CASE("engine: a malformed ClientHello fails and its alert can still be taken") {
    Engine engine(makeContext());
    // Record (handshake, TLS 1.0, 8 bytes) holding a ClientHello whose body stops after the
    // version: OpenSSL answers with a fatal decode_error alert.
    const std::string hello("\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00", 13);
    engine.feedCiphertext(hello.data(), hello.size());
    CHECK(engine.pump() == State::Failed);
    CHECK(engine.error().rfind("SSL_do_handshake: ", 0) == 0);
    CHECK(engine.hasCiphertext());
    std::string alert;
    engine.takeCiphertext(alert);
    REQUIRE(alert.size() == 7);  // one alert record: 5-byte header, level, description
    CHECK(containsAlert(alert));
    CHECK(static_cast<unsigned char>(alert[5]) == 2);   // fatal
    CHECK(static_cast<unsigned char>(alert[6]) == 50);  // decode_error
  }

  TEST_CASE("engine: random bytes fail with an error text and no crash") {
    std::mt19937 rng(20240601);
    for (int run = 0; run < 50; ++run) {
      CAPTURE(run);
      Engine engine(makeContext());
      std::string noise(1 + rng() % 4096, '\0');
      for (char& c : noise) {
        c = static_cast<char>(rng());
      }
      engine.feedCiphertext(noise.data(), noise.size());
      const State state = engine.pump();
      // A prefix can look like the start of a record and just wait for more; never Established.
      CHECK(state != State::Established);
      if (state == State::Failed) {
        CHECK_FALSE(engine.error().empty());
      }
    }
  }

  TEST_CASE("engine: a stale error on the thread's queue does not fail the next read") {
    // SSL_get_error() reports SSL_ERROR_SSL for a WANT_READ whenever the queue holds anything,
    // so an error left behind by another connection on this thread must be cleared first.
    // (The handshake state machine clears the queue itself; SSL_read does not.)
    Link link(makeContext(), ClientOptions{});
    link.run();
    REQUIRE(link.established());
    link.client.send("NOOP\r\n");
    link.client.step();
    const std::string bytes = link.client.takeOutput();
    link.engine.feedCiphertext(bytes.data(), bytes.size());
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET);  // left behind by "another connection"
    CHECK(link.engine.pump() == State::Established);
    CHECK(link.engine.error().empty());
    std::string plain;
    link.engine.takePlaintext(plain);
    CHECK(plain == "NOOP\r\n");
    CHECK(ERR_peek_error() == 0);
  }

  TEST_CASE("engine: ALPN without smtp is refused with no_application_protocol") {
    Link link(makeContext(), ClientOptions{.alpn = {"http/1.1", "h2"}});
    link.run();
    CHECK(link.engine.state() == State::Failed);
    CHECK(link.engine.error().find("no application protocol") != std::string::npos);
    // The alert reached the client through takeCiphertext.
    CHECK(link.client.failed());
    CHECK(link.client.error().find("no application protocol") != std::string::npos);
  }

  TEST_CASE("engine: ALPN smtp is selected, no ALPN is accepted") {
    for (const std::vector<std::string>& offered :
         {std::vector<std::string>{"smtp"}, std::vector<std::string>{"h2", "smtp"}}) {
      CAPTURE(offered.size());
      Link link(makeContext(), ClientOptions{.alpn = offered});
      link.run();
      REQUIRE(link.established());
      const unsigned char* proto = nullptr;
      unsigned int len = 0;
      SSL_get0_alpn_selected(link.client.ssl(), &proto, &len);
      CHECK(std::string(reinterpret_cast<const char*>(proto), len) == "smtp");
    }
    {
      Link link(makeContext(), ClientOptions{});
      link.run();
      REQUIRE(link.established());
      const unsigned char* proto = nullptr;
      unsigned int len = 0;
      SSL_get0_alpn_selected(link.client.ssl(), &proto, &len);
      CHECK(len == 0);
    }
  }

  TEST_CASE("engine: any SNI name is accepted") {
    Link link(makeContext(), ClientOptions{.sni = "whatever.invalid"});
    link.run();
    REQUIRE(link.established());
    CHECK(std::string(SSL_get_servername(link.client.ssl(), TLSEXT_NAMETYPE_host_name)) ==
          "whatever.invalid");
  }

  TEST_CASE("engine: TLS 1.3 ticket resumption keeps the client certificate facts") {
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = true;  // stateless tickets (off by default)
    const ContextPtr context = Context::create(settings);
    const SessionPtr session = firstSession(context, ClientOptions{.cert = &pki().client});
    Link link(context, ClientOptions{.cert = &pki().client, .session = session.get()});
    link.run();
    REQUIRE(link.established());
    CHECK(SSL_session_reused(link.client.ssl()) == 1);
    const PeerFacts& facts = link.engine.facts();
    CHECK(facts.summary.resumed);
    CHECK(facts.summary.version == "TLSv1.3");
    CHECK(facts.summary.group == "X25519");  // psk_dhe_ke
    CHECK(facts.hasCertificate);
    CHECK(facts.verified);
    CHECK(facts.subjectCn == "client1.lab.example");
    CHECK(facts.certFingerprint == certificateFingerprint(pki().client.cert.get()));
    CHECK(facts.pkeyFingerprint == publicKeyFingerprint(pki().client.cert.get()));
  }

  TEST_CASE("engine: a resumed session is fingerprinted with the context's digest") {
    const ContextPtr context =
        Context::create(pki().settings(true), config::FingerprintDigest::Sha1);
    const SessionPtr session = firstSession(context, ClientOptions{.cert = &pki().client});
    Link link(context, ClientOptions{.cert = &pki().client, .session = session.get()});
    link.run();
    REQUIRE(link.established());
    const PeerFacts& facts = link.engine.facts();
    CHECK(facts.summary.resumed);
    CHECK(facts.digestName == "SHA1");
    CHECK(facts.certFingerprint ==
          certificateFingerprint(pki().client.cert.get(), config::FingerprintDigest::Sha1));
    CHECK(facts.pkeyFingerprint ==
          publicKeyFingerprint(pki().client.cert.get(), config::FingerprintDigest::Sha1));
    CHECK(facts.certFingerprint.size() == 40);
  }

  TEST_CASE("engine: TLS 1.3 resumption with stateless tickets off uses the session cache") {
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = false;
    const ContextPtr context = Context::create(settings);
    const SessionPtr session = firstSession(context, ClientOptions{.cert = &pki().selfSigned});
    Link link(context, ClientOptions{.cert = &pki().selfSigned, .session = session.get()});
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().summary.resumed);
    CHECK_FALSE(link.engine.facts().verified);
    CHECK(link.engine.facts().pkeyFingerprint == publicKeyFingerprint(pki().selfSigned.cert.get()));
  }

  TEST_CASE("engine: without a client CA no chain is evaluated, every certificate is pinned") {
    // X509_verify_cert is skipped (context.cpp, a speed change measured in certrelay-micro):
    // whatever the certificate, never "verified", fingerprints as usual.
    const ContextPtr context = Context::create(pki().settings(false));
    for (const auto* cred : {&pki().client, &pki().selfSigned, &pki().rsaClient}) {
      CAPTURE(cred->certFile);
      Link link(context, ClientOptions{.cert = cred});
      link.run();
      REQUIRE(link.established());
      const PeerFacts& facts = link.engine.facts();
      CHECK(facts.hasCertificate);
      CHECK_FALSE(facts.verified);
      CHECK(facts.certFingerprint == certificateFingerprint(cred->cert.get()));
      CHECK(facts.pkeyFingerprint == publicKeyFingerprint(cred->cert.get()));
    }
  }

  TEST_CASE("engine: an idle connection keeps no handshake-sized buffers") {
    Link link(makeContext(), ClientOptions{.cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    // Both handshake flights are over 1 KiB (certificates); after them, and after a small
    // exchange, at most a small reply's worth of capacity may stay per buffer.
    link.engine.queuePlaintext("250 ok\r\n");
    link.engine.pump();
    std::string out;
    link.engine.takeCiphertext(out);
    CHECK(out.size() > 0);
    CHECK(link.engine.bufferCapacity() <= 5 * kIdleBufferCapacity);
  }

  TEST_CASE("engine: tickets_on_resumption sets how many new tickets a resumed session gets") {
    for (const int onResumption : {0, 1}) {
      CAPTURE(onResumption);
      config::Tls settings = pki().settings(true);
      settings.ticketsOnResumption = onResumption;
      const ContextPtr context = Context::create(settings);
      const ClientOptions options{.cert = &pki().client};
      const SessionPtr first = firstSession(context, options);
      SSL_SESSION* current = first.get();
      SessionPtr newest;
      // Each connection resumes with the newest session the client holds: a new ticket gives
      // it a new session object; without one it keeps (and reuses) the same session.
      for (int round = 0; round < 3; ++round) {
        ClientOptions again = options;
        again.session = current;
        Link link(context, again);
        link.run();
        REQUIRE(link.established());
        CHECK(link.engine.facts().summary.resumed);
        CHECK(link.engine.facts().certFingerprint ==
              certificateFingerprint(pki().client.cert.get()));
        SessionPtr held(SSL_get1_session(link.client.ssl()));
        REQUIRE(held != nullptr);
        CHECK((held.get() == current) == (onResumption == 0));
        SSL_shutdown(link.client.ssl());
        link.run();
        newest = std::move(held);
        current = newest.get();
      }
    }
  }

  TEST_CASE("engine: TLS 1.2 session-id resumption keeps the client certificate facts") {
    const ContextPtr context = makeContext();
    const ClientOptions first{
        .maxVersion = TLS1_2_VERSION, .cert = &pki().client, .noTicket = true};
    const SessionPtr session = firstSession(context, first);
    unsigned int idLen = 0;
    SSL_SESSION_get_id(session.get(), &idLen);
    CHECK(idLen > 0);
    CHECK_FALSE(SSL_SESSION_has_ticket(session.get()));
    ClientOptions second = first;
    second.session = session.get();
    Link link(context, second);
    link.run();
    REQUIRE(link.established());
    const PeerFacts& facts = link.engine.facts();
    CHECK(facts.summary.resumed);
    CHECK(facts.summary.version == "TLSv1.2");
    CHECK(facts.summary.group == "X25519");  // the original key exchange, kept in the session
    CHECK(facts.hasCertificate);
    CHECK(facts.verified);
    CHECK(facts.certFingerprint == certificateFingerprint(pki().client.cert.get()));
  }

  TEST_CASE("engine: TLS 1.2 ticket resumption keeps the client certificate facts") {
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = true;  // stateless tickets (off by default)
    const ContextPtr context = Context::create(settings);
    const ClientOptions first{.maxVersion = TLS1_2_VERSION, .cert = &pki().client};
    const SessionPtr session = firstSession(context, first);
    CHECK(SSL_SESSION_has_ticket(session.get()));
    ClientOptions second = first;
    second.session = session.get();
    Link link(context, second);
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().summary.resumed);
    CHECK(link.engine.facts().pkeyFingerprint == publicKeyFingerprint(pki().client.cert.get()));
  }

  TEST_CASE("engine: a session survives Engine::shutdown() without the client's answer") {
    const ContextPtr context = makeContext();
    const ClientOptions first{
        .maxVersion = TLS1_2_VERSION, .cert = &pki().client, .noTicket = true};
    const SessionPtr session = firstSession(context, first, End::ServerShutdown);
    ClientOptions second = first;
    second.session = session.get();
    Link link(context, second);
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().summary.resumed);
  }

  TEST_CASE("engine: an engine destroyed without shutdown() loses its cached session") {
    // OpenSSL's bad-session rule (ssl_clear_bad_session): documents why the owner must call
    // shutdown() before closing a healthy connection if it wants the session resumable.
    const ContextPtr context = makeContext();
    const ClientOptions first{
        .maxVersion = TLS1_2_VERSION, .cert = &pki().client, .noTicket = true};
    const SessionPtr session = firstSession(context, first, End::ServerDropped);
    ClientOptions second = first;
    second.session = session.get();
    Link link(context, second);
    link.run();
    REQUIRE(link.established());
    CHECK_FALSE(link.engine.facts().summary.resumed);
  }

  TEST_CASE("engine: no resumption with the session cache and tickets off") {
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = false;
    settings.sessionCacheSize = 0;
    const ContextPtr context = Context::create(settings);
    for (int maxVersion : {0, TLS1_2_VERSION}) {
      CAPTURE(maxVersion);
      Link first(context, ClientOptions{.maxVersion = maxVersion});
      first.run();
      REQUIRE(first.established());
      const SessionPtr session(SSL_get1_session(first.client.ssl()));
      REQUIRE(session != nullptr);
      Link link(context, ClientOptions{.maxVersion = maxVersion, .session = session.get()});
      link.run();
      REQUIRE(link.established());
      CHECK_FALSE(link.engine.facts().summary.resumed);
    }
  }

  TEST_CASE("engine: a session from another context does not resume") {
    const SessionPtr session = firstSession(makeContext(), ClientOptions{.cert = &pki().client});
    Link link(makeContext(), ClientOptions{.cert = &pki().client, .session = session.get()});
    link.run();
    REQUIRE(link.established());
    CHECK_FALSE(link.engine.facts().summary.resumed);
    CHECK(link.engine.facts().verified);
  }

  TEST_CASE("engine: TLS 1.2 client-initiated renegotiation is refused") {
    Link link(makeContext(), ClientOptions{.maxVersion = TLS1_2_VERSION, .cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    const std::string fingerprint = link.engine.facts().certFingerprint;
    REQUIRE(SSL_renegotiate(link.client.ssl()) == 1);
    CHECK(SSL_do_handshake(link.client.ssl()) <= 0);  // the ClientHello is out, no answer yet
    ERR_clear_error();
    const std::string hello = link.client.takeOutput();
    REQUIRE_FALSE(hello.empty());
    link.engine.feedCiphertext(hello.data(), hello.size());
    // The engine answers with a (warning) no_renegotiation alert and stays as it was.
    CHECK(link.engine.pump() == State::Established);
    std::string answer;
    link.engine.takeCiphertext(answer);
    CHECK(containsAlert(answer));
    link.client.feed(answer);
    link.client.step();
    // OpenSSL's client treats the refusal as fatal and tells the server so.
    CHECK(link.client.failed());
    CHECK(link.client.error().find("no renegotiation") != std::string::npos);
    link.run();
    CHECK(link.engine.state() == State::Failed);
    CHECK(link.engine.error().find("alert handshake failure") != std::string::npos);
    CHECK(link.engine.facts().certFingerprint == fingerprint);
  }

  TEST_CASE("engine: a TLS 1.3-only context refuses a TLS 1.2 client") {
    config::Tls settings = pki().settings(true);
    settings.minVersion = "TLSv1.3";
    Link link(Context::create(settings), ClientOptions{.maxVersion = TLS1_2_VERSION});
    link.run();
    CHECK(link.engine.state() == State::Failed);
    CHECK(link.engine.error().find("unsupported protocol") != std::string::npos);
    CHECK(link.client.failed());
  }

  TEST_CASE("engine: a null context fails without crashing") {
    Engine engine(nullptr);
    CHECK(engine.state() == State::Failed);
    CHECK_FALSE(engine.error().empty());
    engine.feedCiphertext("x", 1);
    engine.queuePlaintext("y");
    CHECK(engine.pump() == State::Failed);
    engine.shutdown();
    std::string out;
    engine.takeCiphertext(out);
    engine.takePlaintext(out);
    CHECK(out.empty());
  }
}

}  // namespace
}  // namespace certrelay::tls
