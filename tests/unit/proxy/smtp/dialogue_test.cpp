// Transcript tests of the SMTP dialogue: client lines in, backend replies by hand, and the exact
// transcript of what the dialogue did (see tests/support/dialogue_script.h for the notation).
// Each rule of design.md's "Errors a client sees" has a transcript here.

#include "proxy/smtp/dialogue.h"

#include <doctest/doctest.h>

#include <string>

#include "tests/support/dialogue_script.h"

namespace certrelay::smtp {
namespace {

using testing::Script;

// Greeting and EHLO done, before TLS; the transcript is empty afterwards.
void plainSession(Script& s) {
  s.start();
  s.client("EHLO client.test\r\n");
  s.take();
}

// Greeting, STARTTLS, handshake and EHLO done; the backend is being set up (EHLO inside TLS opens
// it). The transcript is empty afterwards.
void tlsSession(Script& s, bool listed = true) {
  s.start();
  s.client("EHLO client.test\r\nSTARTTLS\r\n");
  s.tlsEstablished(listed);
  s.client("EHLO client.test\r\n");
  s.take();
}

// A transaction up to an accepted recipient: MAIL and one RCPT answered 250.
void openTransaction(Script& s) {
  s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
  s.backend("250 2.1.0 Ok");
  s.backend("250 2.1.5 Ok");
  s.take();
}

TEST_SUITE("dialogue") {
  TEST_CASE("greeting, then 421 instead when over the connection limit or draining") {
    Script s;
    s.start();
    CHECK(s.take() == "C< 220 mx.test ESMTP certrelay\n");
    CHECK(s.timer() == s.config().timeouts.command);
    Script full;
    full.start(true, false);
    CHECK(full.take() == "C< 421 4.7.0 mx.test Error: too many connections\nclose\n");
    Script draining;
    draining.start(false, true);
    CHECK(draining.take() == "C< 421 4.3.2 mx.test Service shutting down\nclose\n");
  }

  TEST_CASE("pipelined MAIL, RCPT x3, DATA with mixed 454 and 250, in command order") {
    Script s;
    plainSession(s);
    s.client(
        "MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@remote.example>\r\n"
        "RCPT TO:<b@local.example>\r\nRCPT TO:<y@remote.example>\r\nDATA\r\n");
    // The refused recipients never reach the backend; nothing is shown before MAIL's reply.
    CHECK(s.take() ==
          "B open login=\n"
          "B> MAIL FROM:<a@sender.example>\n"
          "B> RCPT TO:<b@local.example>\n"
          "B> DATA\n");
    CHECK(
        s.logged("NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 454 4.7.1 "
                 "<x@remote.example>: Relay access denied; from=<a@sender.example>"));
    s.backend("250 2.1.0 Ok");
    CHECK(s.take() ==
          "C< 250 2.1.0 Ok\n"
          "C< 454 4.7.1 <x@remote.example>: Relay access denied\n");
    s.backend("250 2.1.5 Ok");
    CHECK(s.take() ==
          "C< 250 2.1.5 Ok\n"
          "C< 454 4.7.1 <y@remote.example>: Relay access denied\n");
    s.backend("354 End data with <CR><LF>.<CR><LF>");
    const std::string afterData = s.take();
    // The proxy's Received header waits for the first content bytes (one write for both).
    CHECK(afterData.rfind("B> +Received: from client.test", 0) == 0);
    CHECK(afterData.find(" (held)\nC< 354 End data with <CR><LF>.<CR><LF>\n") != std::string::npos);
    s.client("Subject: hi\r\n");
    CHECK(s.take() == "B> +Subject: hi\\r\\n\n");
    s.client("\r\nbody\r\n.\r\n");
    CHECK(s.take() == "B> end \\r\\nbody\\r\\n.\\r\\n\n");
    s.backend("250 2.0.0 Ok: queued as ABC");
    CHECK(s.take() == "C< 250 2.0.0 Ok: queued as ABC\n");
    CHECK(s.logged("message accepted by backend: from=<a@sender.example> size=21: 250 2.0.0 Ok"));
  }

  TEST_CASE("a listed certificate relays, and its identity goes to the backend as LOGIN") {
    Script s;
    s.start();
    s.client("STARTTLS\r\n");
    s.tlsEstablished(true);
    s.client("EHLO client.test\r\n");
    CHECK(s.take().find("B open login=client.example\n") != std::string::npos);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@remote.example>\r\n");
    CHECK(s.take() == "B> MAIL FROM:<a@sender.example>\nB> RCPT TO:<x@remote.example>\n");
    Script anonymous;
    anonymous.start();
    anonymous.client("STARTTLS\r\n");
    anonymous.tlsEstablished(false);
    anonymous.client("EHLO client.test\r\nMAIL FROM:<a@sender.example>\r\n");
    anonymous.client("RCPT TO:<x@remote.example>\r\n");
    const std::string out = anonymous.take();
    CHECK(out.find("B open login=\n") != std::string::npos);
    CHECK(out.find("RCPT TO:<x@remote.example>") == std::string::npos);
  }

  TEST_CASE(
      "backend lost between RCPT and DATA: DATA gets 451, never 503; next MAIL gets a fresh "
      "backend") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.backendFails();
    CHECK(s.take().empty());  // nothing was owed: nothing to say yet
    s.client("RCPT TO:<c@local.example>\r\n");
    CHECK(s.take() == "C< 451 4.3.0 Error: backend unavailable, try again later\n");
    s.client("DATA\r\n");
    CHECK(s.take() == "C< 451 4.3.0 Error: backend unavailable, try again later\n");
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B open login=\nB> MAIL FROM:<a@sender.example>\n");
  }

  TEST_CASE("backend lost with MAIL, RCPT and DATA in flight: each gets 451, in order") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nDATA\r\n");
    s.take();
    s.backend("250 2.1.0 Ok");
    s.backendFails();
    CHECK(s.take() ==
          "C< 250 2.1.0 Ok\n"
          "C< 451 4.3.0 Error: backend unavailable, try again later\n"
          "C< 451 4.3.0 Error: backend unavailable, try again later\n");
    CHECK_FALSE(s.closed());
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B open login=\nB> MAIL FROM:<a@sender.example>\n");
  }

  TEST_CASE("unsolicited 421 (reported as a lost backend) between RCPT and DATA: DATA gets 451") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.backendFails(BackendFailure::Closed);
    s.client("DATA\r\n");
    CHECK(s.take() == "C< 451 4.3.0 Error: backend unavailable, try again later\n");
  }

  TEST_CASE("backend lost during DATA content: read to the end, then 451, never 250") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("DATA\r\n");
    s.backend("354 go ahead");
    s.client("Subject: part one\r\n");
    s.take();
    s.backendFails();
    s.client("more content\r\nRSET looks like a command but is content\r\n.\r\nNOOP\r\n");
    CHECK(s.take() ==
          "C< 451 4.3.0 Error: backend connection lost during DATA, message not delivered\n"
          "C< 250 2.0.0 Ok\n");
    CHECK(s.clientWire().find("250 2.0.0 Ok: queued") == std::string::npos);
  }

  TEST_CASE("backend lost after end of data: 451 status unknown, logged as such") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("DATA\r\n");
    s.backend("354 go ahead");
    s.client("body\r\n.\r\n");
    s.take();
    s.backendFails();
    CHECK(s.take() ==
          "C< 451 4.3.0 Error: backend reply lost after end of data, message status unknown, "
          "try again later\n");
    CHECK(s.logged(
        "message status unknown (backend lost after end of data) from=<a@sender.example>"));
  }

  TEST_CASE("backend 421 to a command: relayed, then the session closes") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
    s.take();
    s.backend("250 2.1.0 Ok");
    s.backend("421 4.3.0 mx.backend Server shutting down");
    CHECK(s.take() ==
          "C< 250 2.1.0 Ok\n"
          "B close\n"
          "C< 421 4.3.0 mx.backend Server shutting down\n"
          "close\n");
  }

  TEST_CASE("backend 530 (wants AUTH from the proxy): 421 4.3.5 and close, never 530") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
    s.take();
    s.backend("530 5.7.0 Authentication required");
    CHECK(s.take() ==
          "B close\n"
          "C< 421 4.3.5 mx.test Error: backend refused the proxy (system incorrectly configured)\n"
          "close\n");
    CHECK(s.logged("refused the proxy: 530 5.7.0 Authentication required"));
  }

  TEST_CASE("backend configuration failure (XCLIENT refused): 421 4.3.0 and close") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\n");
    s.take();
    s.backendFails(BackendFailure::XclientRefused);
    CHECK(s.take() == "C< 421 4.3.0 mx.test Error: backend configuration error\nclose\n");
  }

  TEST_CASE("a backend reply that makes no sense is a protocol error: 451, backend dropped") {
    const char* nonsense[] = {"354 go ahead", "220 mx.backend ESMTP", "221 2.0.0 Bye",
                              "250 2.1.5 \xc3\xa9t\xc3\xa9"};
    for (const char* reply : nonsense) {
      CAPTURE(reply);
      Script s;
      plainSession(s);
      s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
      s.take();
      s.backend("250 2.1.0 Ok");
      s.backend(reply);
      CHECK(s.take() ==
            "C< 250 2.1.0 Ok\n"
            "B close\n"
            "C< 451 4.3.0 Error: backend unavailable, try again later\n");
      CHECK(s.logged("malformed reply"));
      s.client("DATA\r\n");
      CHECK(s.take() == "C< 451 4.3.0 Error: backend unavailable, try again later\n");
    }
  }

  TEST_CASE("250 to DATA is a protocol error; UTF-8 reply text is fine for an SMTPUTF8 message") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("DATA\r\n");
    s.backend("250 2.0.0 Ok");
    CHECK(s.take() ==
          "B> DATA\nB close\nC< 451 4.3.0 Error: backend unavailable, try again later\n");
    Script utf8;
    plainSession(utf8);
    utf8.client("MAIL FROM:<a@sender.example> SMTPUTF8\r\n");
    utf8.backend("250 2.1.0 \xc3\xa9");
    CHECK(utf8.take() ==
          "B open login=\nB> MAIL FROM:<a@sender.example> SMTPUTF8\nC< 250 2.1.0 \xc3\xa9\n");
  }

  TEST_CASE("HTTP request lines and message headers: Postfix's 221 and close at once") {
    for (const char* line : {"GET / HTTP/1.1", "POST /x HTTP/1.1", "CONNECT mx:25 HTTP/1.1",
                             "HEAD / HTTP/1.0", "PUT /x HTTP/1.1", "Host: mx.test", "get /"}) {
      CAPTURE(line);
      Script s;
      s.start();
      s.take();
      s.client(std::string(line) + "\r\nEHLO after.test\r\nNOOP\r\n");
      CHECK(s.take() == "C< 221 2.7.0 Error: I can break rules, too. Goodbye.\nclose\n");
      CHECK(s.logged("non-SMTP command from unknown[192.0.2.7]"));
    }
  }

  TEST_CASE("a client's own XCLIENT or XFORWARD is refused and never forwarded") {
    Script s;
    plainSession(s);
    s.client("XCLIENT ADDR=10.0.0.1\r\nXFORWARD ADDR=10.0.0.1\r\n");
    CHECK(s.take() ==
          "C< 550 5.7.0 Error: insufficient authorization\n"
          "C< 550 5.7.0 Error: insufficient authorization\n");
  }

  TEST_CASE("BDAT with a refused chunk: the chunk is read and dropped, the session goes on") {
    Script s;
    plainSession(s);
    s.client("BDAT 12\r\nRSET\r\nQUIT\r\nNOOP\r\n");
    CHECK(s.take() == "C< 503 5.5.1 Error: need MAIL command\nC< 250 2.0.0 Ok\n");
    openTransaction(s);
    s.client("BDAT 5 LAST\r\nhello");
    const std::string sent = s.take();
    // The proxy's Received header goes first, as its own chunk (its reply is the backend
    // connection's to consume), then the client's chunk.
    CHECK(sent.rfind("B> BDAT ", 0) == 0);
    CHECK(sent.find("B> +Received: from client.test") != std::string::npos);
    CHECK(sent.find("B> BDAT 5 LAST\nB> +hello\n") != std::string::npos);
    s.backend("250 2.0.0 Ok: queued");
    CHECK(s.take() == "C< 250 2.0.0 Ok: queued\n");
  }

  TEST_CASE("BDAT whose backend is lost mid-chunk: rest dropped, 451, next MAIL fresh") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("BDAT 10 LAST\r\nhello");
    s.take();
    s.backendFails();
    // BDAT LAST was in flight: its outcome counts as unknown (never 250, never 5xx).
    CHECK(s.take() ==
          "C< 451 4.3.0 Error: backend reply lost after end of data, message status unknown, try "
          "again later\n");
    s.client("world");
    CHECK(s.take().empty());
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B open login=\nB> MAIL FROM:<a@sender.example>\n");
  }

  TEST_CASE("STARTTLS: bytes behind it and all pre-TLS state are forgotten") {
    Script s;
    s.start();
    s.client("EHLO client.test\r\nMAIL FROM:<a@sender.example>\r\n");
    s.backend("250 2.1.0 Ok");
    s.client("RSET\r\n");
    s.backend("250 2.0.0 Ok");
    s.take();
    s.client("STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<x@remote.example>\r\n");
    CHECK(s.take() == "C< 220 2.0.0 Ready to start TLS\nB close\ntls\n");
    CHECK(s.timer() == s.config().timeouts.tlsHandshake);
    s.tlsEstablished(false);
    CHECK(s.timer() == s.config().timeouts.command);
    // The pre-TLS EHLO is forgotten: MAIL needs a new one, and nothing injected was processed.
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "C< 503 5.5.1 Error: send HELO/EHLO first\n");
    CHECK(s.clientWire().find("injected") == std::string::npos);
  }

  TEST_CASE("STARTTLS inside TLS: 554 5.5.1") {
    Script s;
    tlsSession(s);
    s.client("STARTTLS\r\n");
    CHECK(s.take() == "C< 554 5.5.1 Error: TLS already active\n");
  }

  TEST_CASE("EHLO inside TLS offers no STARTTLS and sets up the backend at once") {
    Script s;
    s.start();
    s.client("EHLO client.test\r\n");
    CHECK(s.take().find("STARTTLS") != std::string::npos);
    s.client("STARTTLS\r\n");
    s.tlsEstablished(true);
    s.take();
    s.client("EHLO client.test\r\n");
    const std::string ehlo = s.take();
    CHECK(ehlo.find("STARTTLS") == std::string::npos);
    CHECK(ehlo.find("B open login=client.example\n") != std::string::npos);
  }

  TEST_CASE("implicit TLS: the handshake first, then the greeting inside TLS; no STARTTLS") {
    Script s;
    s.listener().tlsMode = config::TlsMode::Implicit;
    s.start();
    CHECK(s.take() == "tls\n");
    CHECK(s.timer() == s.config().timeouts.tlsHandshake);
    // Nothing is read as a command before the handshake completes.
    s.client("EHLO early.test\r\n");
    CHECK(s.take().empty());
    s.tlsEstablished(true);
    CHECK(s.take() == "C< 220 mx.test ESMTP certrelay\n");
    CHECK(s.timer() == s.config().timeouts.command);
    s.client("EHLO client.test\r\n");
    const std::string ehlo = s.take();
    CHECK(ehlo.find("STARTTLS") == std::string::npos);
    CHECK(ehlo.find("B open login=client.example\n") != std::string::npos);
    s.client("STARTTLS\r\n");
    CHECK(s.take() == "C< 554 5.5.1 Error: TLS already active\n");
  }

  TEST_CASE("implicit TLS: over the limit or draining, closed before TLS; drain mid-handshake") {
    Script full;
    full.listener().tlsMode = config::TlsMode::Implicit;
    full.start(true, false);
    CHECK(full.take() == "close\n");
    CHECK(full.logged("too many connections, closing unknown[192.0.2.7] before TLS"));
    Script draining;
    draining.listener().tlsMode = config::TlsMode::Implicit;
    draining.start(false, true);
    CHECK(draining.take() == "close\n");
    Script late;
    late.listener().tlsMode = config::TlsMode::Implicit;
    late.start();
    late.take();
    late.dialogue().drain();
    CHECK(late.take().empty());
    late.tlsEstablished(false);
    CHECK(late.take() == "C< 421 4.3.2 mx.test Service shutting down\nclose\n");
  }

  TEST_CASE("fast drain: a message in DATA gets its reply, a transaction without one ends now") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\n");
    s.backend("250 2.1.0 Ok");
    s.client("RCPT TO:<b@local.example>\r\n");
    s.backend("250 2.1.5 Ok");
    s.take();
    CHECK_FALSE(s.dialogue().messageInFlight());
    s.dialogue().drain(true);
    CHECK(s.take() == "B close\nC< 421 4.3.2 mx.test Service shutting down\nclose\n");

    Script d;
    plainSession(d);
    d.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nDATA\r\n");
    d.backend("250 2.1.0 Ok");
    d.backend("250 2.1.5 Ok");
    d.backend("354 End data with <CR><LF>.<CR><LF>");
    d.client("Subject: x\r\n\r\nbody\r\n");
    d.take();
    CHECK(d.dialogue().messageInFlight());
    d.dialogue().drain(true);
    CHECK(d.take().empty());  // the message goes on
    d.client(".\r\n");
    CHECK(d.dialogue().messageInFlight());  // its final reply is owed
    d.take();
    d.backend("250 2.0.0 Ok: queued as ABC");
    CHECK(d.take() ==
          "C< 250 2.0.0 Ok: queued as ABC\nC< 421 4.3.2 mx.test Service shutting down\nB close\n"
          "close\n");
  }

  TEST_CASE("drain while idle: 421 4.3.2 and close at once") {
    Script s;
    plainSession(s);
    s.dialogue().drain();
    CHECK(s.take() == "C< 421 4.3.2 mx.test Service shutting down\nclose\n");
  }

  TEST_CASE("drain inside a transaction: it runs to its end, then 421") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.dialogue().drain();
    CHECK(s.take().empty());
    s.client("RCPT TO:<c@local.example>\r\n");
    s.backend("250 2.1.5 Ok");
    s.client("DATA\r\n");
    s.backend("354 go ahead");
    s.client("body\r\n.\r\n");
    s.take();
    s.backend("250 2.0.0 Ok: queued");
    CHECK(s.take() ==
          "C< 250 2.0.0 Ok: queued\n"
          "C< 421 4.3.2 mx.test Service shutting down\n"
          "B close\nclose\n");
  }

  TEST_CASE(
      "drain inside DATA: the content reaches the backend, its verdict the client, then 421") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("DATA\r\n");
    s.backend("354 go ahead");
    s.client("first\r\n");
    s.take();
    s.dialogue().drain();
    s.client("second\r\n.\r\n");
    CHECK(s.take() == "B> end second\\r\\n.\\r\\n\n");
    s.backend("250 2.0.0 Ok: queued");
    CHECK(s.take() ==
          "C< 250 2.0.0 Ok: queued\n"
          "C< 421 4.3.2 mx.test Service shutting down\n"
          "B close\nclose\n");
  }

  TEST_CASE("limits: a line too long gets 500 and is discarded whole") {
    Script s;
    plainSession(s);
    s.client("NOOP " + std::string(200, 'x') + "\r\nNOOP\r\n");
    CHECK(s.take() == "C< 500 5.5.2 Error: line too long\nC< 250 2.0.0 Ok\n");
  }

  TEST_CASE("limits: max_errors errors end the session with 421 4.7.0") {
    Script s;
    plainSession(s);
    s.client("BOGUS\r\nBOGUS\r\nBOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n");
    const std::string out = s.take();
    CHECK(out.find("C< 421 4.7.0 mx.test Error: too many errors\nclose\n") != std::string::npos);
    CHECK(out.find("250") == std::string::npos);
  }

  TEST_CASE("limits: max_recipients recipients, then 452 4.5.3") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\n");
    s.backend("250 2.1.0 Ok");
    for (int i = 0; i < 3; ++i) {
      s.client("RCPT TO:<b@local.example>\r\n");
      s.backend("250 2.1.5 Ok");
    }
    s.take();
    s.client("RCPT TO:<b@local.example>\r\n");
    CHECK(s.take() == "C< 452 4.5.3 Error: too many recipients\n");
  }

  TEST_CASE("limits: SIZE over the backend's limit gets 552, an unknown parameter 555") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example> SIZE=99999999\r\nMAIL FROM:<a@sender.example> X=1\r\n");
    CHECK(s.take() ==
          "C< 552 5.3.4 Message size exceeds fixed limit\n"
          "C< 555 5.5.4 Unsupported option: X\n");
  }

  TEST_CASE("every refusal at MAIL and RCPT, ours or the backend's, has its NOQUEUE line") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example> SIZE=99999999\r\n");
    CHECK(
        s.logged("NOQUEUE: reject: MAIL from unknown[192.0.2.7]: 552 5.3.4 Message size exceeds "
                 "fixed limit; proto=ESMTP helo=<client.test>"));
    s.take();
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<nobody@local.example>\r\n");
    s.backend("250 2.1.0 Ok");
    s.backend("550 5.1.1 <nobody@local.example>: Recipient address rejected: unknown");
    CHECK(s.take() ==
          "B open login=\nB> MAIL FROM:<a@sender.example>\nB> RCPT TO:<nobody@local.example>\n"
          "C< 250 2.1.0 Ok\n"
          "C< 550 5.1.1 <nobody@local.example>: Recipient address rejected: unknown\n");
    CHECK(
        s.logged("NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 550 5.1.1 "
                 "<nobody@local.example>: Recipient address rejected: unknown; "
                 "from=<a@sender.example> to=<nobody@local.example> proto=ESMTP "
                 "helo=<client.test>"));
    // DATA with no recipient forwarded (the only one was refused here): ours, logged too.
    Script d;
    plainSession(d);
    d.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@remote.example>\r\n");
    d.backend("250 2.1.0 Ok");
    d.client("DATA\r\n");
    CHECK(d.take().find("C< 554 5.5.1 Error: no valid recipients") != std::string::npos);
    CHECK(
        d.logged("NOQUEUE: reject: DATA from unknown[192.0.2.7]: 554 5.5.1 Error: no valid "
                 "recipients; from=<a@sender.example> proto=ESMTP helo=<client.test>"));
  }

  TEST_CASE("in JSON, log lines carry the session's fields and the event's") {
    // log::configure() lives with the writer, outside this library: the switch it sets is
    // flipped here directly (only whether fields are built matters to the dialogue).
    log::detail::json.store(true);
    Script s;
    tlsSession(s, false);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@remote.example>\r\n");
    s.backend("250 2.1.0 Ok");
    const auto reject = s.fieldsOf("NOQUEUE: reject: RCPT");
    CHECK(reject.at("event") == "reject");
    CHECK(reject.at("stage") == "RCPT");
    CHECK(reject.at("code") == "454");
    CHECK(reject.at("reply") == "454 4.7.1 <x@remote.example>: Relay access denied");
    CHECK(reject.at("from") == "a@sender.example");
    CHECK(reject.at("to") == "x@remote.example");
    CHECK(reject.at("client") == "unknown[192.0.2.7]");
    CHECK(reject.at("client_address") == "192.0.2.7");
    CHECK(reject.at("helo") == "client.test");
    CHECK(reject.count("identity") == 0);  // not trusted
    Script t;
    tlsSession(t);
    openTransaction(t);
    t.client("DATA\r\n");
    t.backend("354 go ahead");
    t.client("Subject: x\r\n\r\nbody\r\n.\r\n");
    t.backend("250 2.0.0 Ok: queued as ABC123");
    const auto accepted = t.fieldsOf("message accepted by backend");
    CHECK(accepted.at("event") == "message_accepted");
    CHECK(accepted.at("code") == "250");
    CHECK(accepted.at("reply") == "2.0.0 Ok: queued as ABC123");
    CHECK(accepted.at("recipients") == "1");
    CHECK(accepted.at("from") == "a@sender.example");
    CHECK(accepted.at("identity") == std::string(testing::kTrustedIdentity));
    CHECK(accepted.at("fingerprint") == std::string(testing::kTrustedFingerprint));
    // The null sender is a field ("" without the brackets); a MAIL refused has no sender yet.
    Script n;
    plainSession(n);
    n.client("MAIL FROM:<> SIZE=99999999\r\nMAIL FROM:<>\r\nRCPT TO:<x@remote.example>\r\n");
    n.backend("250 2.1.0 Ok");
    CHECK(n.fieldsOf("NOQUEUE: reject: MAIL").count("from") == 0);
    const auto bounce = n.fieldsOf("NOQUEUE: reject: RCPT");
    REQUIRE(bounce.count("from") == 1);
    CHECK(bounce.at("from").empty());
    log::detail::json.store(false);
    // In text mode no field is built.
    Script plain;
    plainSession(plain);
    plain.client("MAIL FROM:<a@sender.example> SIZE=99999999\r\n");
    CHECK(plain.fieldsOf("NOQUEUE").empty());
    CHECK(plain.logged("NOQUEUE: reject: MAIL"));
  }

  TEST_CASE("limits: read-ahead behind DATA stops at high_watermark; replies owed stop parsing") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("DATA\r\n");
    CHECK(s.dialogue().wantsInput());  // reads ahead while the 354 is awaited
    s.client(std::string(2000, 'x'));
    CHECK_FALSE(s.dialogue().wantsInput());
    Script many;
    plainSession(many);
    many.client("MAIL FROM:<a@sender.example>\r\n");
    std::string rcpts;
    for (std::size_t i = 0; i < Dialogue::kMaxUnfilledReplies; ++i) {
      rcpts += "RSET\r\n";
    }
    many.client(rcpts);
    CHECK_FALSE(many.dialogue().wantsInput());
  }

  TEST_CASE("DATA refused by the backend with content already sent: 554 sync error, close") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("DATA\r\nSubject: too early\r\n");
    s.backend("554 5.5.1 Error: no valid recipients");
    CHECK(s.take() ==
          "B> DATA\n"
          "C< 554 5.5.1 Error: no valid recipients\n"
          "C< 554 5.5.0 Error: SMTP protocol synchronization\n"
          "B close\nclose\n");
  }

  TEST_CASE(
      "timeouts: command timeout gives 421 4.4.2 and closes; a wait for the backend does not") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\n");
    s.take();
    s.dialogue().onTimer();
    CHECK(s.take().empty());  // the backend's own deadline covers that wait
    CHECK(s.timer() == s.config().timeouts.command);
    s.backend("250 2.1.0 Ok");
    s.take();
    s.dialogue().onTimer();
    CHECK(s.take() == "B close\nC< 421 4.4.2 mx.test Error: timeout exceeded\nclose\n");
  }

  TEST_CASE("timeouts: DATA inactivity drops the backend before 421: never completed") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("DATA\r\n");
    s.backend("354 go ahead");
    CHECK(s.timer() == s.config().timeouts.data);
    s.client("partial\r\n");
    s.take();
    s.dialogue().onTimer();
    CHECK(s.take() == "B close\nC< 421 4.4.2 mx.test Error: timeout exceeded\nclose\n");
  }

  TEST_CASE("timeouts: TLS handshake timeout closes without a reply") {
    Script s;
    s.start();
    s.client("STARTTLS\r\n");
    s.take();
    s.dialogue().onTimer();
    CHECK(s.take() == "close\n");
    CHECK(s.logged("TLS handshake timeout"));
  }

  TEST_CASE("pipelining past the end of data: the next envelope is handled behind the dot") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.client("DATA\r\n");
    s.backend("354 go ahead");
    s.take();
    s.client("one\r\n.\r\nMAIL FROM:<c@sender.example>\r\nRCPT TO:<d@local.example>\r\n");
    CHECK(s.take() ==
          "B> end one\\r\\n.\\r\\n\n"
          "B> MAIL FROM:<c@sender.example>\nB> RCPT TO:<d@local.example>\n");
    s.backend("250 2.0.0 Ok: queued");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    CHECK(s.take() == "C< 250 2.0.0 Ok: queued\nC< 250 2.1.0 Ok\nC< 250 2.1.5 Ok\n");
  }

  TEST_CASE("QUIT waits for replies owed, then 221 and close") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\nQUIT\r\n");
    CHECK(s.take() == "B open login=\nB> MAIL FROM:<a@sender.example>\n");
    s.backend("250 2.1.0 Ok");
    CHECK(s.take() == "C< 250 2.1.0 Ok\nC< 221 2.0.0 Bye\nB close\nclose\n");
  }

  TEST_CASE("the backend idle: given back only between transactions") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.dialogue().onBackendIdle();
    CHECK(s.take().empty());
    s.client("RSET\r\n");
    s.backend("250 2.0.0 Ok");
    s.take();
    s.dialogue().onBackendIdle();
    CHECK(s.take() == "B close\n");
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B open login=\nB> MAIL FROM:<a@sender.example>\n");
  }

  TEST_CASE("MAIL before STARTTLS on a listener that requires TLS: 530") {
    Script s(testing::scriptConfig(), true);
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "C< 530 5.7.0 Must issue a STARTTLS command first\n");
  }
}

// The outcome reports (DialogueHost::outcome, for metrics): each exactly once, when it is known.
TEST_SUITE("dialogue outcomes") {
  TEST_CASE(
      "recipients: relay_denied at the 454; local, relayed, rejected at the backend's reply") {
    Script s;
    tlsSession(s, true);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
    s.client("RCPT TO:<x@remote.example>\r\nRCPT TO:<y@remote.example>\r\n");
    CHECK(s.takeOutcomes().empty());  // nothing is known before the backend answers
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    CHECK(s.takeOutcomes() == "rcpt local\n");
    s.backend("250 2.1.5 Ok");
    CHECK(s.takeOutcomes() == "rcpt relayed\n");
    s.backend("550 5.1.1 <y@remote.example>: Recipient address rejected");
    CHECK(s.takeOutcomes() == "rcpt backend_rejected\n");
    // An untrusted client: the 454 is reported as it is decided, before MAIL's reply is in.
    Script u;
    plainSession(u);
    u.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@remote.example>\r\n");
    CHECK(u.takeOutcomes() == "rcpt relay_denied\n");
    u.client("RCPT TO:<b@local.example>\r\n");
    u.backend("250 2.1.0 Ok");
    u.backend("451 4.3.0 Try again");
    CHECK(u.takeOutcomes() == "rcpt backend_rejected\n");
  }

  TEST_CASE("recipients: a backend lost or closing with RCPT in flight") {
    Script s;
    plainSession(s);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
    s.backend("250 2.1.0 Ok");
    s.backendFails();
    CHECK(s.takeOutcomes().empty());  // our 451 says nothing about the recipient
    Script c;
    plainSession(c);
    c.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
    c.backend("250 2.1.0 Ok");
    c.backend("421 4.3.0 mx.backend Server shutting down");
    CHECK(c.takeOutcomes() == "rcpt backend_rejected\n");  // the backend's own 421
  }

  TEST_CASE("messages: accepted with their bytes only at the backend's 2xx; 5xx and 4xx") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.takeOutcomes();
    s.client("DATA\r\n");
    s.backend("354 go ahead");
    s.client("Subject: hi\r\n\r\nbody\r\n.\r\n");
    CHECK(s.takeOutcomes().empty());  // the dot is not an acceptance
    s.backend("250 2.0.0 Ok: queued as ABC");
    CHECK(s.takeOutcomes() == "message accepted bytes=21\n");
    for (const char* verdict : {"554 5.7.1 Rejected", "452 4.3.1 Insufficient storage"}) {
      CAPTURE(verdict);
      s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nDATA\r\n");
      s.backend("250 2.1.0 Ok");
      s.backend("250 2.1.5 Ok");
      s.backend("354 go ahead");
      s.client("x\r\n.\r\n");
      s.takeOutcomes();
      s.backend(verdict);
      CHECK(s.takeOutcomes() ==
            (verdict[0] == '5' ? "message rejected bytes=3\n" : "message deferred bytes=3\n"));
    }
    // A DATA the backend refuses is no message: the client never sent its content.
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nDATA\r\n");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    s.takeOutcomes();
    s.backend("554 5.5.1 Error: no valid recipients");
    CHECK(s.takeOutcomes().empty());
  }

  TEST_CASE(
      "messages: backend lost after the dot is unknown, never accepted; before it, deferred") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.takeOutcomes();
    s.client("DATA\r\n");
    s.backend("354 go ahead");
    s.client("body\r\n.\r\n");
    s.backendFails();
    CHECK(s.takeOutcomes() == "message unknown bytes=6\n");
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.takeOutcomes().empty());
    // Lost during the content: the 451 at the dot defers it.
    Script d;
    plainSession(d);
    openTransaction(d);
    d.takeOutcomes();
    d.client("DATA\r\n");
    d.backend("354 go ahead");
    d.client("part\r\n");
    d.backendFails();
    CHECK(d.takeOutcomes().empty());  // not over yet: the client is still sending
    d.client("more\r\n.\r\n");
    CHECK(d.takeOutcomes() == "message deferred bytes=12\n");
  }

  TEST_CASE("messages: the backend's 421 or 530 to the end of data defers it") {
    for (const char* verdict : {"421 4.3.0 mx.backend Server shutting down", "530 5.7.0 Auth"}) {
      CAPTURE(verdict);
      Script s;
      plainSession(s);
      openTransaction(s);
      s.takeOutcomes();
      s.client("DATA\r\n");
      s.backend("354 go ahead");
      s.client("body\r\n.\r\n");
      s.backend(verdict);
      CHECK(s.takeOutcomes() == "message deferred bytes=6\n");
      CHECK(s.closed());
    }
  }

  TEST_CASE("messages: BDAT LAST accepted with every chunk's bytes; lost in flight or before") {
    Script s;
    plainSession(s);
    openTransaction(s);
    s.takeOutcomes();
    s.client("BDAT 5\r\nhelloBDAT 6 LAST\r\n world");
    s.backend("250 2.0.0 Ok");  // the first chunk
    CHECK(s.takeOutcomes().empty());
    s.backend("250 2.0.0 Ok: queued");
    CHECK(s.takeOutcomes() == "message accepted bytes=11\n");
    // BDAT LAST in flight when the backend is lost: unknown, once.
    openTransaction(s);
    s.takeOutcomes();
    s.client("BDAT 10 LAST\r\nhello");
    s.backendFails();
    s.client("world");
    CHECK(s.takeOutcomes() == "message unknown bytes=10\n");
    // A transaction whose backend was lost before BDAT LAST: that BDAT's 451 defers it.
    openTransaction(s);
    s.takeOutcomes();
    s.client("BDAT 3\r\nabc");
    s.backendFails();
    s.client("BDAT 2 LAST\r\nde");
    CHECK(s.takeOutcomes() == "message deferred bytes=5\n");
  }

  TEST_CASE("per identity: the listed certificate's identity, with metrics.per_identity only") {
    config::Config config = testing::scriptConfig();
    config.metrics.perIdentity = true;
    Script s(config);
    tlsSession(s, true);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    s.backend("354 go ahead");
    s.client("body\r\n.\r\n");
    s.backend("250 2.0.0 Ok: queued");
    CHECK(s.takeOutcomes() ==
          "rcpt relayed identity=client.example\n"
          "message accepted bytes=6 identity=client.example\n");
    // A reply that makes no sense for the end of data: unknown, the identity kept.
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\nDATA\r\n");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    s.backend("354 go ahead");
    s.client("body\r\n.\r\n");
    s.backend("354 again");
    CHECK(s.takeOutcomes() ==
          "rcpt local identity=client.example\nmessage unknown bytes=6 identity=client.example\n");
    // An unlisted certificate has no identity; neither has anyone without per_identity.
    Script anonymous(config);
    tlsSession(anonymous, false);
    anonymous.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
    anonymous.backend("250 2.1.0 Ok");
    anonymous.backend("250 2.1.5 Ok");
    CHECK(anonymous.takeOutcomes() == "rcpt local\n");
    Script off;
    tlsSession(off, true);
    off.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@remote.example>\r\n");
    off.backend("250 2.1.0 Ok");
    off.backend("250 2.1.5 Ok");
    CHECK(off.takeOutcomes() == "rcpt relayed\n");
  }
}

}  // namespace
}  // namespace certrelay::smtp
