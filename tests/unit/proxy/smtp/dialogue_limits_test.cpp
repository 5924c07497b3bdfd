// Transcript tests of the dialogue's limits: the per-client refusals (connections, message and
// recipient rates) with Postfix's replies and log words. Notation: tests/support/dialogue_script.h.

#include <doctest/doctest.h>

#include <string>

#include "proxy/smtp/dialogue.h"
#include "tests/support/dialogue_script.h"

namespace certrelay::smtp {
namespace {

using testing::Script;

config::Config rateConfig(std::size_t messages, std::size_t recipients) {
  config::Config config = testing::scriptConfig();
  config.limits.clientMessageRate = messages;
  config.limits.clientRecipientRate = recipients;
  config.limits.maxErrors = 100;
  return config;
}

// Greeting and EHLO done, before TLS; the transcript is empty afterwards.
void plainSession(Script& s) {
  s.start();
  s.client("EHLO client.test\r\n");
  s.take();
}

// Greeting, STARTTLS, handshake with the listed certificate (or none) and EHLO done.
void tlsSession(Script& s, bool listed) {
  s.start();
  s.client("EHLO client.test\r\nSTARTTLS\r\n");
  s.tlsEstablished(listed);
  s.client("EHLO client.test\r\n");
  s.take();
}

TEST_SUITE("dialogue limits") {
  TEST_CASE("over client_connections: 421 4.7.0 too many connections from the address, close") {
    Script s;
    s.dialogue().refuseClient(ClientLimit::Connections, 51);
    CHECK(s.take() == "C< 421 4.7.0 mx.test Error: too many connections from 192.0.2.7\nclose\n");
    CHECK(s.logged(
        "Connection concurrency limit exceeded: 51 from unknown[192.0.2.7] for service smtp"));
  }

  TEST_CASE("over client_connection_rate: the same 421, the rate warning") {
    Script s;
    s.dialogue().refuseClient(ClientLimit::ConnectionRate, 31);
    CHECK(s.take() == "C< 421 4.7.0 mx.test Error: too many connections from 192.0.2.7\nclose\n");
    CHECK(s.logged("Connection rate limit exceeded: 31 from unknown[192.0.2.7] for service smtp"));
  }

  TEST_CASE("implicit TLS listener over a client limit: closed before TLS, nothing said") {
    Script s;
    s.listener().tlsMode = config::TlsMode::Implicit;
    s.dialogue().refuseClient(ClientLimit::Connections, 3);
    CHECK(s.take() == "close\n");
    CHECK(s.logged("Connection concurrency limit exceeded: 3 from unknown[192.0.2.7]"));
  }

  TEST_CASE("message rate by address: 450 4.7.1 at MAIL, never forwarded, NOQUEUE logged") {
    Script s(rateConfig(2, 0));
    plainSession(s);
    for (int i = 0; i < 2; ++i) {
      s.client("MAIL FROM:<a@sender.example>\r\n");
      s.backend("250 2.1.0 Ok");
      s.client("RSET\r\n");
      s.backend("250 2.0.0 Ok");
    }
    s.take();
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "C< 450 4.7.1 Error: too much mail from 192.0.2.7\n");
    CHECK(
        s.logged("Message delivery request rate limit exceeded: 3 from unknown[192.0.2.7] for "
                 "service smtp"));
    CHECK(
        s.logged("NOQUEUE: reject: MAIL from unknown[192.0.2.7]: 450 4.7.1 Error: too much "
                 "mail from 192.0.2.7; proto=ESMTP helo=<client.test>"));
    // No transaction was opened: RCPT needs a MAIL first.
    s.client("RCPT TO:<b@local.example>\r\n");
    CHECK(s.take() == "C< 503 5.5.1 Error: need MAIL command\n");
  }

  TEST_CASE("message rate by listed identity: the identity names the client in the 450") {
    Script s(rateConfig(1, 0));
    tlsSession(s, true);
    s.client("MAIL FROM:<a@sender.example>\r\n");
    s.backend("250 2.1.0 Ok");
    s.client("RSET\r\n");
    s.backend("250 2.0.0 Ok");
    s.take();
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "C< 450 4.7.1 Error: too much mail from client.example\n");
    CHECK(
        s.logged("Message delivery request rate limit exceeded: 2 from unknown[192.0.2.7] "
                 "(client.example) for service smtp"));
  }

  TEST_CASE("an unlisted certificate is counted by address, apart from the identity") {
    Script s(rateConfig(1, 0));
    tlsSession(s, false);
    // The address and the identity are different keys: this one is its address's first.
    s.countRate(RateEvent::Message, true, "192.0.2.7");
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B> MAIL FROM:<a@sender.example>\n");
  }

  TEST_CASE("recipient rate: 450 4.7.1 at RCPT, the transaction goes on") {
    Script s(rateConfig(0, 2));
    plainSession(s);
    s.client(
        "MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n"
        "RCPT TO:<x@remote.example>\r\nRCPT TO:<c@local.example>\r\nDATA\r\n");
    // The relay refusal counted toward the rate too (as Postfix counts every RCPT).
    CHECK(s.take() ==
          "B open login=\nB> MAIL FROM:<a@sender.example>\nB> RCPT TO:<b@local.example>\n"
          "B> DATA\n");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    s.backend("354 go ahead");
    const std::string out = s.take();
    INFO(out);
    CHECK(out.find("C< 454 4.7.1 <x@remote.example>: Relay access denied\n"
                   "C< 450 4.7.1 Error: too many recipients from 192.0.2.7\n") !=
          std::string::npos);
    CHECK(out.find("C< 354 go ahead\n") != std::string::npos);
    CHECK(
        s.logged("Recipient address rate limit exceeded: 3 from unknown[192.0.2.7] for "
                 "service smtp"));
    CHECK(
        s.logged("NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 450 4.7.1 Error: too many "
                 "recipients from 192.0.2.7; from=<a@sender.example> to=<c@local.example>"));
  }

  TEST_CASE("an exempt client (the host counts nothing) is never refused") {
    Script s(rateConfig(1, 1));
    s.setRateExempt(true);
    plainSession(s);
    for (int i = 0; i < 3; ++i) {
      s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nRSET\r\n");
      if (i == 0) {
        CHECK(s.take().find("B> MAIL FROM:<a@sender.example>\n") != std::string::npos);
      }
      s.backend("250 2.1.0 Ok");
      s.backend("250 2.1.5 Ok");
      s.backend("250 2.0.0 Ok");
    }
    CHECK(s.take().find("450") == std::string::npos);
  }

  TEST_CASE("backend.max_connections near the cap: no set-up at EHLO, the backend opens at MAIL") {
    Script s;
    s.setBackendSlots(false, true);
    s.start();
    s.client("STARTTLS\r\n");
    s.tlsEstablished(true);
    s.client("EHLO client.test\r\n");
    const std::string ehlo = s.take();
    CHECK(ehlo.find("B refused (early)\n") != std::string::npos);
    CHECK(ehlo.find("B open") == std::string::npos);
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B open login=client.example\nB> MAIL FROM:<a@sender.example>\n");
  }

  TEST_CASE("backend.max_connections at the cap: MAIL gets 451 4.3.2, not counted as an error") {
    config::Config config = testing::scriptConfig();
    config.limits.maxErrors = 2;
    Script s(config);
    s.setBackendSlots(false, false);
    plainSession(s);
    for (int i = 0; i < 3; ++i) {
      s.client("MAIL FROM:<a@sender.example>\r\n");
      CHECK(s.take() ==
            "B refused\nC< 451 4.3.2 Error: too many backend connections, try again later\n");
    }
    CHECK(
        s.logged("NOQUEUE: reject: MAIL from unknown[192.0.2.7]: 451 4.3.2 Error: too many "
                 "backend connections, try again later; proto=ESMTP helo=<client.test>"));
    s.setBackendSlots(true, true);
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B open login=\nB> MAIL FROM:<a@sender.example>\n");
  }

  TEST_CASE("greeting_delay: the greeting waits for the timer, then the command timeout runs") {
    config::Config config = testing::scriptConfig();
    config.limits.greetingDelay = std::chrono::milliseconds(1000);
    Script s(config);
    s.start();
    CHECK(s.take().empty());
    CHECK(s.timer() == std::chrono::milliseconds(1000));
    CHECK(s.dialogue().wantsInput());  // read, to catch a client talking first
    s.dialogue().onTimer();
    CHECK(s.take() == "C< 220 mx.test ESMTP certrelay\n");
    CHECK(s.timer() == config.timeouts.command);
    s.client("EHLO client.test\r\n");
    CHECK(s.take().rfind("C< 250-mx.test", 0) == 0);
  }

  TEST_CASE("greeting_delay: a client that talks first gets 554 5.5.0 and is closed") {
    config::Config config = testing::scriptConfig();
    config.limits.greetingDelay = std::chrono::milliseconds(1000);
    Script s(config);
    s.start();
    s.client("EHLO client.test\r\nMAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "C< 554 5.5.0 Error: SMTP protocol synchronization\nclose\n");
    CHECK(s.logged("PREGREET 48 from unknown[192.0.2.7]: EHLO client.test?"));
    s.dialogue().onTimer();  // the delay's timer, if the host still fires it: nothing more
    CHECK(s.take().empty());
  }

  TEST_CASE("greeting_delay: draining before the greeting gets 421 instead") {
    config::Config config = testing::scriptConfig();
    config.limits.greetingDelay = std::chrono::milliseconds(1000);
    Script s(config);
    s.start();
    s.dialogue().drain();
    CHECK(s.take() == "C< 421 4.3.2 mx.test Service shutting down\nclose\n");
  }

  TEST_CASE("junk commands past max_junk_commands count as errors, up to 421 too many errors") {
    config::Config config = testing::scriptConfig();
    config.limits.maxJunkCommands = 3;
    config.limits.maxErrors = 2;
    Script s(config);
    plainSession(s);
    s.client("NOOP\r\nRSET\r\nVRFY x\r\n");
    CHECK(s.take() ==
          "C< 250 2.0.0 Ok\nC< 250 2.0.0 Ok\n"
          "C< 252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\n");
    s.client("HELP\r\n");  // the 4th: answered, and the first error
    CHECK(s.take().rfind("C< 214 2.0.0", 0) == 0);
    s.client("NOOP\r\nNOOP\r\n");
    CHECK(s.take() == "C< 250 2.0.0 Ok\nC< 421 4.7.0 mx.test Error: too many errors\nclose\n");
  }

  TEST_CASE("junk commands: an accepted MAIL starts the count over") {
    config::Config config = testing::scriptConfig();
    config.limits.maxJunkCommands = 2;
    config.limits.maxErrors = 1;
    Script s(config);
    plainSession(s);
    s.client("NOOP\r\nNOOP\r\nMAIL FROM:<a@sender.example>\r\n");
    s.backend("250 2.1.0 Ok");
    s.client("NOOP\r\nNOOP\r\n");
    CHECK(s.take().find("421") == std::string::npos);
    s.client("NOOP\r\n");
    CHECK(s.take() ==
          "C< 250 2.0.0 Ok\nC< 421 4.7.0 mx.test Error: too many errors\nB close\nclose\n");
  }

  TEST_CASE("max_messages_per_session: the next MAIL gets 421 4.7.0 and the session closes") {
    config::Config config = testing::scriptConfig();
    config.limits.maxMessagesPerSession = 1;
    Script s(config);
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nDATA\r\n");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    s.backend("354 go ahead");
    s.client("body\r\n.\r\n");
    s.backend("250 2.0.0 Ok: queued");
    s.take();
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() ==
          "C< 421 4.7.0 mx.test Error: too many messages in this session\nB close\nclose\n");
    CHECK(
        s.logged("NOQUEUE: reject: MAIL from unknown[192.0.2.7]: 421 4.7.0 mx.test Error: too "
                 "many messages in this session"));
  }

  TEST_CASE("min_data_rate: content slower than the rate is cut with 421 4.4.2, never delivered") {
    config::Config config = testing::scriptConfig();
    config.limits.minDataRate = 100;                         // bytes/s
    config.timeouts.data = std::chrono::milliseconds(1000);  // inactivity
    Script s(config);
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nDATA\r\n");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    s.backend("354 go ahead");
    s.take();
    // 10 bytes every 0.5 s (20 bytes/s): never idle for the inactivity timeout, but at 1.5 s
    // only 1 s + 30 bytes / 100 bytes/s = 1.3 s are allowed.
    for (int i = 0; i < 2; ++i) {
      s.advance(std::chrono::milliseconds(500));
      s.client("0123456789");
      CHECK(s.timer() <= std::chrono::milliseconds(1000));
    }
    CHECK(s.take().find("C< ") == std::string::npos);
    s.advance(std::chrono::milliseconds(500));
    s.client("0123456789");
    const std::string out = s.take();
    CHECK(out.find("B close\n") != std::string::npos);
    CHECK(out.find("C< 421 4.4.2 mx.test Error: timeout exceeded\n") != std::string::npos);
    CHECK(out.find("B> end") == std::string::npos);
    CHECK(s.logged("below limits.min_data_rate = 100 bytes/s"));
  }

  TEST_CASE("min_data_rate: a fast client earns time; the timer never exceeds the inactivity") {
    config::Config config = testing::scriptConfig();
    config.limits.minDataRate = 10;
    config.timeouts.data = std::chrono::milliseconds(1000);
    Script s(config);
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nDATA\r\n");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    s.backend("354 go ahead");
    s.client(std::string(100, 'x'));  // 10 s of credit at once
    CHECK(s.timer() == std::chrono::milliseconds(1000));
    s.advance(std::chrono::milliseconds(5000));
    s.client("y\r\n.\r\n");
    CHECK(s.take().find("B> end") != std::string::npos);
  }

  TEST_CASE("under stress (near max_connections) the command timeout is command_under_stress") {
    Script s;
    s.setStress(true);
    s.start();
    CHECK(s.timer() == s.config().timeouts.commandUnderStress);
    s.client("EHLO client.test\r\n");
    CHECK(s.timer() == std::chrono::milliseconds(10'000));
    s.setStress(false);
    s.client("NOOP\r\n");
    CHECK(s.timer() == s.config().timeouts.command);
  }
}

}  // namespace
}  // namespace certrelay::smtp
