// Transcript tests of the client name in the dialogue (dns.reverse_lookup): nothing before MAIL
// waits for the reverse lookup, MAIL (which opens the backend) waits for its outcome, and the
// outcome is what the backend is told, what the Received header and the log lines say.

#include <doctest/doctest.h>

#include <string>

#include "proxy/smtp/dialogue.h"
#include "tests/support/dialogue_script.h"

namespace certrelay::smtp {
namespace {

using testing::Script;

// Fields are built only for JSON lines (log::structured()); log::configure() lives with the
// writer, outside this library, so the switch is flipped here directly, and put back.
class JsonFields {
 public:
  JsonFields() : was_(log::detail::json.exchange(true)) {}
  ~JsonFields() { log::detail::json.store(was_); }
  JsonFields(const JsonFields&) = delete;
  JsonFields& operator=(const JsonFields&) = delete;

 private:
  bool was_;
};

ClientName confirmed(const std::string& name) {
  return afterForward("192.0.2.7", name, DnsAnswer::Found, {"192.0.2.7"}, "");
}

ClientName unconfirmed(const std::string& name) {
  return afterForward("192.0.2.7", name, DnsAnswer::Found, {"192.0.2.99"}, "");
}

TEST_SUITE("dialogue") {
  TEST_CASE("client name: greeting, EHLO and STARTTLS do not wait for the lookup, MAIL does") {
    Script s(testing::scriptConfig(), false, true);
    s.start();
    s.client("EHLO client.test\r\n");
    const std::string greeted = s.take();
    CHECK(greeted.rfind("C< 220 mx.test ESMTP certrelay\nC< 250-mx.test\n", 0) == 0);
    s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
    CHECK(s.take().empty());  // no backend yet, no reply yet: both wait for the name
    CHECK_FALSE(s.dialogue().wantsInput());
    s.clientName(confirmed("good.example"));
    CHECK(s.take() ==
          "B open login=\n"
          "B> MAIL FROM:<a@sender.example>\n"
          "B> RCPT TO:<b@local.example>\n");
    CHECK(s.identity().name.verified());
    CHECK(s.identity().name.name == "good.example");
    CHECK(s.dialogue().wantsInput());
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    CHECK(s.take() == "C< 250 2.1.0 Ok\nC< 250 2.1.5 Ok\n");
  }

  TEST_CASE("client name: a verified name names the client in logs and the Received header") {
    const JsonFields json;
    Script s(testing::scriptConfig(), false, true);
    s.start();
    s.clientName(confirmed("good.example"));
    s.client("EHLO client.test\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<x@remote.example>\r\n");
    CHECK(s.logged("NOQUEUE: reject: RCPT from good.example[192.0.2.7]: 454 4.7.1"));
    CHECK(s.fieldsOf("NOQUEUE: reject: RCPT").at("client") == "good.example[192.0.2.7]");
    s.client("RCPT TO:<b@local.example>\r\nDATA\r\n");
    s.backend("250 2.1.0 Ok");
    s.backend("250 2.1.5 Ok");
    s.take();
    s.backend("354 go ahead");
    CHECK(s.take().rfind("B> +Received: from client.test (good.example [192.0.2.7])\\r\\n", 0) ==
          0);
  }

  TEST_CASE("client name: an unconfirmed name stays unknown, with Postfix's warning") {
    const JsonFields json;
    Script s(testing::scriptConfig(), false, true);
    s.start();
    s.client("EHLO client.test\r\nMAIL FROM:<a@sender.example>\r\n");
    s.take();
    s.clientName(unconfirmed("liar.example"));
    CHECK(s.logged("hostname liar.example does not resolve to address 192.0.2.7"));
    const auto fields = s.fieldsOf("does not resolve");
    CHECK(fields.at("event") == "client_name");
    CHECK(fields.at("result") == "unconfirmed");
    CHECK(fields.at("ptr_name") == "liar.example");
    CHECK(fields.at("client") == "unknown[192.0.2.7]");
    CHECK(s.take() == "B open login=\nB> MAIL FROM:<a@sender.example>\n");
    CHECK(s.identity().name.status == NameStatus::Forged);
    CHECK(s.identity().name.reverseName == "liar.example");
    s.client("RCPT TO:<x@remote.example>\r\n");
    CHECK(s.logged("NOQUEUE: reject: RCPT from unknown[192.0.2.7]"));
  }

  TEST_CASE("client name: inside TLS the early backend set-up waits for the name") {
    Script s(testing::scriptConfig(), false, true);
    s.start();
    s.client("EHLO client.test\r\nSTARTTLS\r\n");
    s.tlsEstablished(true);
    s.client("EHLO client.test\r\n");
    const std::string ehlo = s.take();
    CHECK(ehlo.find("C< 250 ") != std::string::npos);  // the EHLO reply is not held back
    CHECK(ehlo.find("B open") == std::string::npos);
    s.clientName(timedOut("192.0.2.7", "", std::chrono::milliseconds(2000)));
    CHECK(s.take() == "B open login=client.example\n");
    CHECK(s.identity().name.status == NameStatus::TempFail);
    CHECK(s.logged("cannot find the name of 192.0.2.7: Temporary failure in name resolution"));
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B> MAIL FROM:<a@sender.example>\n");  // the same backend, at once
  }

  TEST_CASE("client name: a session that starts over drops the put-off backend set-up") {
    Script s(testing::scriptConfig(), false, true);
    s.start();
    s.client("STARTTLS\r\n");
    s.tlsEstablished(false);
    s.client("EHLO client.test\r\nHELO other.test\r\n");
    s.take();
    // HELO dropped the backend put off at EHLO: the name alone opens nothing now.
    s.clientName(confirmed("good.example"));
    CHECK(s.take().empty());
    s.client("MAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take() == "B open login=\nB> MAIL FROM:<a@sender.example>\n");
  }

  TEST_CASE("client name: a name that comes first is there when MAIL comes") {
    Script s(testing::scriptConfig(), false, true);
    s.start();
    s.take();
    s.clientName(afterReverse("192.0.2.7", DnsAnswer::NotFound, "", "").value());
    CHECK(s.take().empty());
    CHECK(s.logs().empty());  // no PTR record at all: nothing worth an info line
    s.client("EHLO client.test\r\nMAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take().find("B open login=\nB> MAIL FROM:<a@sender.example>\n") != std::string::npos);
    CHECK(s.identity().name.status == NameStatus::PermFail);
  }

  TEST_CASE("client name: without a lookup MAIL never waits, and the name is unknown") {
    Script s;
    s.start();
    s.client("EHLO client.test\r\nMAIL FROM:<a@sender.example>\r\n");
    CHECK(s.take().find("B open login=\nB> MAIL FROM:<a@sender.example>\n") != std::string::npos);
    CHECK(s.identity().name.status == NameStatus::PermFail);
    CHECK(xclientName(s.identity().name) == "[UNAVAILABLE]");
  }

  TEST_CASE("client name: a drain while MAIL waits for the name answers that MAIL") {
    Script s(testing::scriptConfig(), false, true);
    s.start();
    s.client("EHLO client.test\r\nMAIL FROM:<a@sender.example>\r\n");
    s.take();
    s.dialogue().drain();
    CHECK(s.take().empty());  // the MAIL is read already: it gets its own reply, not a second one
    s.clientName(confirmed("good.example"));
    CHECK(s.take() == "C< 421 4.3.2 mx.test Service shutting down\nclose\n");
  }
}

}  // namespace
}  // namespace certrelay::smtp
