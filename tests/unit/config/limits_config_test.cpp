// config::parse of the [limits] keys added for per-client limits (limits.client_*, rate_window,
// exempt_networks): defaults, values and every refusal with its `file:line: key: reason` text.

#include <doctest/doctest.h>

#include <string>

#include "config/config.h"
#include "tests/support/config_files.h"

namespace certrelay::config {
namespace {

using std::chrono::milliseconds;

// The smallest valid file: eight lines, then "[limits]" on line 9, so a key is on line 10.
const std::string kHead =
    "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:2525\"\n[backend]\n"
    "address = \"127.0.0.1:10025\"\n[tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n[limits]\n";

class Files : public test::ConfigFiles {
 public:
  Config parse(const std::string& limits) const { return parseText(kHead + limits); }
  // With `backend` added to [backend] (line 6 onwards) instead.
  Config parseBackend(const std::string& backend) const { return parseText(withBackend(backend)); }
  std::string backendError(const std::string& backend) const {
    return textError(withBackend(backend));
  }
  std::string error(const std::string& limits) const { return textError(kHead + limits); }

 private:
  static std::string withBackend(const std::string& backend) {
    std::string text = kHead;
    text.insert(text.find("[tls]"), backend);
    return text;
  }
};

TEST_SUITE("config limits") {
  TEST_CASE("client limits: all off by default, a 60s window, loopback exempt") {
    Files f;
    const Config c = f.parse("");
    CHECK(c.limits.clientConnections == 0);
    CHECK(c.limits.clientConnectionRate == 0);
    CHECK(c.limits.clientMessageRate == 0);
    CHECK(c.limits.clientRecipientRate == 0);
    CHECK_FALSE(c.limits.clientLimitsEnabled());
    CHECK(c.limits.rateWindow == milliseconds(60'000));
    CHECK(c.limits.exemptNetworks == std::vector<std::string>{"127.0.0.0/8", "::1/128"});
  }

  TEST_CASE("client limits: every key read") {
    Files f;
    const Config c = f.parse(
        "client_connections = 50\nclient_connection_rate = 30\nclient_message_rate = 100\n"
        "client_recipient_rate = 1000\nrate_window = \"5m\"\n"
        "exempt_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n");
    CHECK(c.limits.clientConnections == 50);
    CHECK(c.limits.clientConnectionRate == 30);
    CHECK(c.limits.clientMessageRate == 100);
    CHECK(c.limits.clientRecipientRate == 1000);
    CHECK(c.limits.clientLimitsEnabled());
    CHECK(c.limits.rateWindow == milliseconds(300'000));
    CHECK(c.limits.exemptNetworks == std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32"});
    CHECK(f.parse("exempt_networks = []\n").limits.exemptNetworks.empty());
    CHECK(f.parse("client_message_rate = 1\n").limits.clientLimitsEnabled());
  }

  TEST_CASE("client limits: refusals name the key and the line") {
    Files f;
    CHECK(f.error("client_connections = -1\n") ==
          f.at(10, "limits.client_connections: must be from 0 to 16777214, got -1"));
    CHECK(f.error("client_recipient_rate = 16777215\n") ==
          f.at(10, "limits.client_recipient_rate: must be from 0 to 16777214, got 16777215"));
    CHECK(f.error("rate_window = \"500ms\"\n") ==
          f.at(10, "limits.rate_window: must be from 1s to 24h"));
    CHECK(f.error("rate_window = \"25h\"\n") ==
          f.at(10, "limits.rate_window: must be from 1s to 24h"));
    CHECK(f.error("exempt_networks = \"127.0.0.1\"\n") ==
          f.at(10, "limits.exempt_networks: expected array of strings, got string"));
    CHECK(f.error("exempt_networks = [\"10.0.0.1/8\"]\n")
              .find("limits.exempt_networks[0]: bad CIDR '10.0.0.1/8'") != std::string::npos);
    CHECK(f.error("client_connection = 5\n") == f.at(10, "limits.client_connection: unknown key"));
  }

  TEST_CASE("backend.max_connections: unlimited by default, any count, never negative") {
    Files f;
    CHECK(f.parse("").backend.maxConnections == 0);
    CHECK(f.parseBackend("max_connections = 200\n").backend.maxConnections == 200);
    CHECK(f.backendError("max_connections = -1\n") ==
          f.at(6, "backend.max_connections: must be at least 0, got -1"));
  }

  TEST_CASE("greeting_delay: off by default, 0 allowed, at most 30s") {
    Files f;
    CHECK(f.parse("").limits.greetingDelay == milliseconds(0));
    CHECK(f.parse("greeting_delay = \"0s\"\n").limits.greetingDelay == milliseconds(0));
    CHECK(f.parse("greeting_delay = \"1500ms\"\n").limits.greetingDelay == milliseconds(1500));
    CHECK(f.error("greeting_delay = \"31s\"\n") ==
          f.at(10, "limits.greeting_delay: must be at most 30s (postscreen's greet wait is 6s)"));
  }

  TEST_CASE("max_junk_commands and max_messages_per_session: defaults 100 and 0, 0 allowed") {
    Files f;
    CHECK(f.parse("").limits.maxJunkCommands == 100);
    CHECK(f.parse("").limits.maxMessagesPerSession == 0);
    const Config c = f.parse("max_junk_commands = 0\nmax_messages_per_session = 50\n");
    CHECK(c.limits.maxJunkCommands == 0);
    CHECK(c.limits.maxMessagesPerSession == 50);
    CHECK(f.error("max_messages_per_session = -2\n") ==
          f.at(10, "limits.max_messages_per_session: must be from 0 to 16777214, got -2"));
  }

  TEST_CASE("min_data_rate: 500 bytes/s by default as Postfix, 0 turns it off") {
    Files f;
    CHECK(f.parse("").limits.minDataRate == 500);
    CHECK(f.parse("min_data_rate = 0\n").limits.minDataRate == 0);
    CHECK(f.parse("min_data_rate = 2000\n").limits.minDataRate == 2000);
  }

  TEST_CASE("timeouts.command_under_stress: 10s by default, as Postfix's stress value") {
    Files f;
    CHECK(f.parse("").timeouts.commandUnderStress == milliseconds(10'000));
    CHECK(f.parse("[timeouts]\ncommand_under_stress = \"30s\"\n").timeouts.commandUnderStress ==
          milliseconds(30'000));
  }
}

}  // namespace
}  // namespace certrelay::config
