// Engine's client_cert modes (request, require, none) over real handshakes: what the client is
// sent, what a connection without a certificate gets, and which sessions resume where.

#include <doctest/doctest.h>

#include <string>

#include "tests/unit/tls/test_peer.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/context.h"
#include "tls/engine.h"

namespace certrelay::tls {
namespace {

using test::ClientOptions;
using test::Link;
using test::pki;
using State = Engine::State;
using SessionPtr = OsslPtr<SSL_SESSION, SSL_SESSION_free>;
using Mode = config::ClientCertMode;

ContextPtr makeContext() {
  return Context::create(pki().settings(true));
}

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

// A full handshake on a `mode` listener, closed cleanly; the client's resumable session.
SessionPtr firstSession(const ContextPtr& context, const ClientOptions& options,
                        Mode mode = Mode::Request) {
  SessionPtr session = test::clientSession(context, options, mode);
  REQUIRE(session != nullptr);
  REQUIRE(SSL_SESSION_is_resumable(session.get()) == 1);
  return session;
}

TEST_SUITE("tls") {
  TEST_CASE("client_cert: request asks for a certificate and accepts none") {
    for (int maxVersion : {0, TLS1_2_VERSION}) {
      CAPTURE(maxVersion);
      Link link(makeContext(), ClientOptions{.maxVersion = maxVersion}, Mode::Request);
      link.run();
      REQUIRE(link.established());
      CHECK(link.client.receivedHandshakeMessage(SSL3_MT_CERTIFICATE_REQUEST));
      CHECK_FALSE(link.engine.facts().hasCertificate);
    }
  }

  TEST_CASE("client_cert: require without a certificate fails in our words") {
    for (int maxVersion : {0, TLS1_2_VERSION}) {
      CAPTURE(maxVersion);
      Link link(makeContext(), ClientOptions{.maxVersion = maxVersion}, Mode::Require);
      link.run();
      CHECK(link.engine.state() == State::Failed);
      CHECK(startsWith(link.engine.error(), "no client certificate (client_cert = require): "));
      CHECK(link.engine.error().find("peer did not return a certificate") != std::string::npos);
      CHECK(link.client.failed());  // the alert reached the client
      CHECK_FALSE(link.engine.handshakeJustCompleted());
    }
  }

  TEST_CASE("client_cert: require with a certificate succeeds, verified or not") {
    for (const auto* cred : {&pki().client, &pki().selfSigned}) {
      for (int maxVersion : {0, TLS1_2_VERSION}) {
        CAPTURE(maxVersion);
        CAPTURE(cred->certFile);
        Link link(makeContext(), ClientOptions{.maxVersion = maxVersion, .cert = cred},
                  Mode::Require);
        link.run();
        REQUIRE(link.established());
        CHECK(link.engine.facts().hasCertificate);
        CHECK(link.engine.facts().verified == (cred == &pki().client));
        CHECK(link.engine.facts().certFingerprint == certificateFingerprint(cred->cert.get()));
      }
    }
  }

  TEST_CASE("client_cert: require resumes a session that has a certificate") {
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = true;
    const ContextPtr context = Context::create(settings);
    for (int maxVersion : {0, TLS1_2_VERSION}) {
      CAPTURE(maxVersion);
      const ClientOptions options{.maxVersion = maxVersion, .cert = &pki().client};
      const SessionPtr session = firstSession(context, options, Mode::Require);
      ClientOptions again = options;
      again.session = session.get();
      Link link(context, again, Mode::Require);
      link.run();
      REQUIRE(link.established());
      CHECK(link.engine.facts().summary.resumed);
      CHECK(link.engine.facts().certFingerprint == certificateFingerprint(pki().client.cert.get()));
    }
  }

  TEST_CASE("client_cert: require: a session without a certificate does not get in") {
    // The same context serves a request listener and a require listener: a session made on the
    // first without a certificate must not resume into the second.
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = true;
    const ContextPtr context = Context::create(settings);
    for (const bool tickets : {true, false}) {
      for (int maxVersion : {0, TLS1_2_VERSION}) {
        CAPTURE(tickets);
        CAPTURE(maxVersion);
        const ClientOptions options{.maxVersion = maxVersion, .noTicket = !tickets};
        const SessionPtr session = firstSession(context, options);
        ClientOptions again = options;
        again.session = session.get();
        Link link(context, again, Mode::Require);
        link.run();
        CHECK(link.engine.state() == State::Failed);
        CHECK(startsWith(link.engine.error(), "no client certificate (client_cert = require)"));
        CHECK_FALSE(link.engine.facts().summary.resumed);
      }
    }
  }

  TEST_CASE("client_cert: none sends no CertificateRequest") {
    for (int maxVersion : {0, TLS1_2_VERSION}) {
      CAPTURE(maxVersion);
      Link link(makeContext(), ClientOptions{.maxVersion = maxVersion, .cert = &pki().client},
                Mode::None);
      link.run();
      REQUIRE(link.established());
      CHECK_FALSE(link.client.receivedHandshakeMessage(SSL3_MT_CERTIFICATE_REQUEST));
      CHECK(link.client.receivedHandshakeMessage(SSL3_MT_FINISHED));  // the callback works
      CHECK_FALSE(link.engine.facts().hasCertificate);
      CHECK(link.engine.facts().certFingerprint.empty());
    }
  }

  TEST_CASE("client_cert: a session made under none does not resume under request") {
    // Otherwise a client holding a certificate that met the none listener first would stay
    // anonymous on the request listener for as long as its session lives.
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = true;
    const ContextPtr context = Context::create(settings);
    for (int maxVersion : {0, TLS1_2_VERSION}) {
      CAPTURE(maxVersion);
      const ClientOptions options{.maxVersion = maxVersion, .cert = &pki().client};
      const SessionPtr session = firstSession(context, options, Mode::None);
      ClientOptions again = options;
      again.session = session.get();
      Link link(context, again, Mode::Request);
      link.run();
      REQUIRE(link.established());
      CHECK_FALSE(link.engine.facts().summary.resumed);
      CHECK(link.engine.facts().hasCertificate);
      CHECK(link.engine.facts().verified);
    }
  }
}

}  // namespace
}  // namespace certrelay::tls
