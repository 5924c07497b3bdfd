// config::parse / config::load: values, defaults, path resolution and every refusal, with the
// exact `file:line: key: reason` text an operator sees.

#include "config/config.h"

#include <doctest/doctest.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <string>
#include <thread>

#include "config/cpus.h"

namespace certrelay::config {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A directory of its own per test (pid + counter), removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("certrelay-config-test-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

  fs::path write(const fs::path& name, const std::string& content) const {
    fs::path file = path_ / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

 private:
  fs::path path_;
};

// The smallest valid file: eight lines, so text appended to it starts at line 9.
const std::string kBase =
    "[[listener]]\n"                   // 1
    "name = \"mx\"\n"                  // 2
    "address = \"0.0.0.0:2525\"\n"     // 3
    "[backend]\n"                      // 4
    "address = \"127.0.0.1:10025\"\n"  // 5
    "[tls]\n"                          // 6
    "cert = \"tls.crt\"\n"             // 7
    "key = \"tls.key\"\n";             // 8

// Dummy cert/key: config only checks that they can be opened.
class Fixture {
 public:
  Fixture() {
    dir_.write("tls.crt", "");
    dir_.write("tls.key", "");
  }

  fs::path origin() const { return dir_.path() / "certrelay.toml"; }
  const TempDir& dir() const { return dir_; }

  Config parse(const std::string& text) const { return config::parse(text, origin()); }

  // The ConfigError text, or "" when the text was accepted (which fails the comparison).
  std::string error(const std::string& text) const {
    try {
      config::parse(text, origin());
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

  // Expected message for line `line`.
  std::string at(int line, const std::string& rest) const {
    return origin().string() + ":" + std::to_string(line) + ": " + rest;
  }
  std::string noLine(const std::string& rest) const { return origin().string() + ": " + rest; }

 private:
  TempDir dir_;
};

std::string systemHostName() {
  char buffer[HOST_NAME_MAX + 1] = {};
  REQUIRE(gethostname(buffer, sizeof(buffer) - 1) == 0);
  std::string name = buffer;
  if (!name.empty() && name.back() == '.') {
    name.pop_back();
  }
  return name;
}

unsigned expectedCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  unsigned cores = static_cast<unsigned>(CPU_COUNT(&set));
  std::ifstream limit("/sys/fs/cgroup/cpu.max");
  std::string line;
  if (limit && std::getline(limit, line)) {
    if (const auto cpus = cpusFromCgroupMax(line); cpus && *cpus < cores) {
      cores = *cpus;
    }
  }
  return cores == 0 ? 1 : (cores > 256 ? 256 : cores);
}

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("endpoint: parse and print IPv4 and IPv6") {
    Endpoint v4 = parseEndpoint("127.0.0.1:2525");
    CHECK(v4.host == "127.0.0.1");
    CHECK(v4.port == 2525);
    CHECK(v4.toString() == "127.0.0.1:2525");

    Endpoint v6 = parseEndpoint("[::1]:25");
    CHECK(v6.host == "::1");
    CHECK(v6.port == 25);
    CHECK(v6.toString() == "[::1]:25");

    CHECK(parseEndpoint("0.0.0.0:0").port == 0);
    CHECK(parseEndpoint("[2001:db8::7]:65535").port == 65535);
  }

  TEST_CASE("endpoint: malformed text is refused") {
    for (const char* text :
         {"127.0.0.1", "127.0.0.1:", ":25", "[]:25", "[::1]", "[::1]25", "[::1:25", "::1]:25",
          "::1:25", "127.0.0.1:65536", "127.0.0.1:99999999999", "127.0.0.1:-1", "127.0.0.1:+25",
          "127.0.0.1:2 5", "", "[[::1]]:25"}) {
      CAPTURE(text);
      CHECK_THROWS_AS(parseEndpoint(text), std::invalid_argument);
    }
  }

  TEST_CASE("endpoint: the reason names the problem") {
    CHECK_THROWS_WITH_AS(parseEndpoint("127.0.0.1"), "missing port", std::invalid_argument);
    CHECK_THROWS_WITH_AS(parseEndpoint(":25"), "empty host", std::invalid_argument);
    CHECK_THROWS_WITH_AS(parseEndpoint("[::1:25"), "unbalanced brackets", std::invalid_argument);
    CHECK_THROWS_WITH_AS(parseEndpoint("1.2.3.4:65536"), "port must be a number from 0 to 65535",
                         std::invalid_argument);
  }

  TEST_CASE("full file: every key is read") {
    Fixture f;
    f.dir().write("ca.pem", "");
    f.dir().write("relay_clientcerts", "");
    const std::string text = R"(hostname = "MX.Example.com."
workers = 3

[[listener]]
name = "mx"
address = "0.0.0.0:2525"
require_tls = false

[[listener]]
name = "submission"
address = "[::]:2587"
require_tls = true

[backend]
address = "[::1]:10025"
helo_name = "proxy.example.com"
probe_interval = "45s"
identity = "xforward"
received_header = false

[tls]
cert = "tls.crt"
key = "tls.key"
client_ca = "ca.pem"
min_version = "TLSv1.3"
session_cache_size = 0
session_timeout = "2h"
session_tickets = true
tickets_per_handshake = 4
tickets_on_resumption = 0
fast_ec_key_decoding = false

[policy]
fingerprints = "relay_clientcerts"
local_domains = ["Example.com", ".Sub.Example.ORG.", "[192.0.2.1]"]
digest = "sha1"
relay_networks = ["192.0.2.0/24", "[2001:db8::]/32"]
reload_poll_interval = "2m"
reload_debounce = "50ms"

[timeouts]
command = "301s"
tls_handshake = 61
data = "3m"
backend_connect = "1500ms"
backend_reply = "1h"
backend_idle = "250ms"
shutdown = "29s"

[limits]
max_line_length = 4096
max_recipients = 50
max_errors = 7
max_connections = 123
high_watermark = 8192
)";
    const fs::path file = f.dir().write("certrelay.toml", text);
    const Config c = load(file);
    const fs::path dir = f.dir().path();

    CHECK(c.file == file);
    CHECK(c.file.is_absolute());
    CHECK(c.hostname == "MX.Example.com");
    CHECK(c.workers == 3);
    REQUIRE(c.listeners.size() == 2);
    CHECK(c.listeners[0].name == "mx");
    CHECK(c.listeners[0].address.toString() == "0.0.0.0:2525");
    CHECK_FALSE(c.listeners[0].requireTls);
    CHECK(c.listeners[1].name == "submission");
    CHECK(c.listeners[1].address.host == "::");
    CHECK(c.listeners[1].address.port == 2587);
    CHECK(c.listeners[1].requireTls);
    CHECK(c.backend.addresses.at(0).toString() == "[::1]:10025");
    CHECK(c.backend.heloName == "proxy.example.com");
    CHECK(c.backend.probeInterval == seconds(45));
    CHECK(c.backend.identity == IdentityMode::Xforward);
    CHECK_FALSE(c.backend.receivedHeader);
    CHECK(c.tls.certificates.at(0).cert == dir / "tls.crt");
    CHECK(c.tls.certificates.at(0).key == dir / "tls.key");
    CHECK(c.tls.clientCa == dir / "ca.pem");
    CHECK(c.tls.minVersion == "TLSv1.3");
    CHECK(c.tls.sessionCacheSize == 0);
    CHECK(c.tls.sessionTimeout == seconds(7200));
    CHECK(c.tls.sessionTickets);
    CHECK_FALSE(c.tls.fastEcKeyDecoding);
    CHECK(c.tls.ticketsPerHandshake == 4);
    CHECK(c.tls.ticketsOnResumption == 0);
    CHECK(c.policy.fingerprints == dir / "relay_clientcerts");
    CHECK(c.policy.localDomains ==
          std::vector<std::string>{"example.com", ".sub.example.org", "[192.0.2.1]"});
    CHECK(c.policy.digest == FingerprintDigest::Sha1);
    CHECK(c.policy.relayNetworks == std::vector<std::string>{"192.0.2.0/24", "[2001:db8::]/32"});
    CHECK(c.policy.reloadPollInterval == seconds(120));
    CHECK(c.policy.reloadDebounce == milliseconds(50));
    CHECK(c.timeouts.command == seconds(301));
    CHECK(c.timeouts.tlsHandshake == seconds(61));
    CHECK(c.timeouts.data == seconds(180));
    CHECK(c.timeouts.backendConnect == milliseconds(1500));
    CHECK(c.timeouts.backendReply == seconds(3600));
    CHECK(c.timeouts.backendIdle == milliseconds(250));
    CHECK(c.shutdown.timeout == seconds(29));
    CHECK(c.limits.maxLineLength == 4096);
    CHECK(c.limits.maxRecipients == 50);
    CHECK(c.limits.maxErrors == 7);
    CHECK(c.limits.maxConnections == 123);
    CHECK(c.limits.highWatermark == 8192);
  }

  TEST_CASE("fixture file in tests/data/config loads") {
    const fs::path file = fs::path(CERTRELAY_TEST_DATA_DIR) / "config" / "example.toml";
    const Config c = load(file);
    CHECK(c.hostname == "mx.example.com");
    REQUIRE(c.listeners.size() == 1);
    CHECK(c.tls.certificates.at(0).cert ==
          fs::path(CERTRELAY_TEST_DATA_DIR) / "config" / "tls.crt");
    CHECK(c.backend.identity == IdentityMode::Auto);
    CHECK(c.backend.receivedHeader);
    CHECK(c.policy.fingerprints ==
          fs::path(CERTRELAY_TEST_DATA_DIR) / "config" / "relay_clientcerts");
    CHECK(c.policy.localDomains == std::vector<std::string>{"example.com", ".example.com"});
    CHECK(c.policy.digest == FingerprintDigest::Sha256);
    CHECK(c.policy.relayNetworks == std::vector<std::string>{"192.0.2.0/24", "[2001:db8::]/32"});
    CHECK(c.policy.reloadPollInterval == seconds(30));
    CHECK(c.policy.reloadDebounce == milliseconds(200));
  }

  TEST_CASE("defaults: a minimal file") {
    Fixture f;
    const Config c = f.parse(kBase);
    CHECK(c.hostname == systemHostName());
    CHECK(c.workers == expectedCores());
    CHECK(c.workers >= 1);
    CHECK(c.backend.heloName == c.hostname);
    CHECK(c.backend.probeInterval == seconds(30));
    CHECK(c.backend.identity == IdentityMode::Auto);
    CHECK(c.backend.receivedHeader);
    CHECK(c.tls.clientCa.empty());
    CHECK(c.tls.minVersion == "TLSv1.2");
    CHECK(c.tls.sessionCacheSize == 20480);
    CHECK(c.tls.sessionTimeout == seconds(3600));
    CHECK_FALSE(c.tls.sessionTickets);
    CHECK(c.tls.fastEcKeyDecoding);  // on unless turned off
    CHECK(c.tls.ticketsPerHandshake == 1);
    CHECK(c.tls.ticketsOnResumption == 1);
    CHECK(c.policy.fingerprints.empty());
    CHECK(c.policy.localDomains.empty());
    CHECK(c.policy.digest == FingerprintDigest::Sha256);
    CHECK(c.policy.relayNetworks.empty());
    CHECK(c.policy.reloadPollInterval == seconds(30));
    CHECK(c.policy.reloadDebounce == milliseconds(200));
    CHECK(c.timeouts.command == seconds(300));
    CHECK(c.timeouts.tlsHandshake == seconds(60));
    CHECK(c.timeouts.data == seconds(180));
    CHECK(c.timeouts.backendConnect == seconds(30));
    CHECK(c.timeouts.backendReply == seconds(300));
    CHECK(c.timeouts.backendIdle == seconds(1));
    CHECK(c.shutdown.timeout == seconds(30));
    CHECK(c.limits.maxLineLength == 2048);
    CHECK(c.limits.maxRecipients == 1000);
    CHECK(c.limits.maxErrors == 20);
    CHECK(c.limits.maxConnections == 10000);
    CHECK(c.limits.highWatermark == 262144);
    CHECK_FALSE(c.listeners[0].requireTls);
  }

  TEST_CASE("defaults: helo_name follows hostname, empty helo_name too") {
    Fixture f;
    CHECK(f.parse("hostname = \"relay.example.net\"\n" + kBase).backend.heloName ==
          "relay.example.net");
    const std::string head = kBase.substr(0, kBase.find("[tls]"));
    const std::string tls = kBase.substr(kBase.find("[tls]"));
    CHECK(f.parse("hostname = \"relay.example.net\"\n" + head + "helo_name = \"\"\n" + tls)
              .backend.heloName == "relay.example.net");
    CHECK(f.parse(head + "helo_name = \"Proxy.Example.\"\n" + tls).backend.heloName ==
          "Proxy.Example");
  }

  TEST_CASE("workers: 0 means one per core, explicit values kept, range 0..256") {
    Fixture f;
    CHECK(f.parse("workers = 0\n" + kBase).workers == expectedCores());
    CHECK(f.parse("workers = 1\n" + kBase).workers == 1);
    CHECK(f.parse("workers = 256\n" + kBase).workers == 256);
    CHECK(f.error("workers = 257\n" + kBase) == f.at(1, "workers: must be from 0 to 256, got 257"));
    CHECK(f.error("workers = -1\n" + kBase) == f.at(1, "workers: must be from 0 to 256, got -1"));
  }

  TEST_CASE("paths: relative to the config file's directory, absolute kept") {
    Fixture f;
    f.dir().write("sub/chain.pem", "");
    TempDir other;
    const fs::path key = other.write("elsewhere.key", "");
    const Config c = f.parse(
        "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:25\"\n"
        "[backend]\naddress = \"127.0.0.1:10025\"\n"
        "[tls]\ncert = \"sub/../sub/chain.pem\"\nkey = \"" +
        key.string() + "\"\n");
    CHECK(c.tls.certificates.at(0).cert == f.dir().path() / "sub" / "chain.pem");
    CHECK(c.tls.certificates.at(0).cert.is_absolute());
    CHECK(c.tls.certificates.at(0).key == key);
  }

  TEST_CASE("paths: resolved against the file's directory, not the working directory") {
    // The working directory is not the fixture directory, so a cwd-relative lookup would fail.
    Fixture f;
    REQUIRE(fs::current_path() != f.dir().path());
    const Config c = f.parse(kBase);
    CHECK(c.tls.certificates.at(0).cert == f.dir().path() / "tls.crt");
  }

  TEST_CASE("missing file: cannot read with strerror") {
    TempDir dir;
    const fs::path missing = dir.path() / "nope.toml";
    CHECK_THROWS_WITH_AS(load(missing),
                         (missing.string() + ": cannot read: No such file or directory").c_str(),
                         ConfigError);
  }

  TEST_CASE("missing file: a directory cannot be read either") {
    TempDir dir;
    CHECK_THROWS_WITH_AS(load(dir.path()),
                         (dir.path().string() + ": cannot read: Is a directory").c_str(),
                         ConfigError);
  }

  TEST_CASE("syntax error: file:line: toml++ description") {
    Fixture f;
    const std::string message = f.error(kBase + "[limits]\nmax_errors = \n");
    const std::string prefix = f.at(10, "");
    REQUIRE(message.size() > prefix.size());
    CHECK(message.substr(0, prefix.size()) == prefix);
    CHECK(message.find("expected value") != std::string::npos);
  }

  TEST_CASE("syntax error: a key defined twice") {
    Fixture f;
    const std::string message = f.error(kBase + "key = \"tls.key\"\n");
    CHECK(message.rfind(f.at(9, ""), 0) == 0);
  }

  TEST_CASE("wrong type: scalar keys") {
    Fixture f;
    CHECK(f.error("workers = \"4\"\n" + kBase) == f.at(1, "workers: expected integer, got string"));
    CHECK(f.error("hostname = 1\n" + kBase) == f.at(1, "hostname: expected string, got integer"));
    CHECK(f.error(kBase + "session_tickets = \"yes\"\n") ==
          f.at(9, "tls.session_tickets: expected boolean, got string"));
    CHECK(f.error(kBase + "tickets_per_handshake = 1.0\n") ==
          f.at(9, "tls.tickets_per_handshake: expected integer, got float"));
    CHECK(f.error(kBase + "[limits]\nmax_errors = true\n") ==
          f.at(10, "limits.max_errors: expected integer, got boolean"));
  }

  TEST_CASE("wrong type: listener fields and tables") {
    Fixture f;
    const std::string listener = "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:25\"\n";
    const std::string rest =
        "[backend]\naddress = \"127.0.0.1:10025\"\n[tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n";
    CHECK(f.error(listener + "require_tls = 1\n" + rest) ==
          f.at(4, "listener[0].require_tls: expected boolean, got integer"));
    CHECK(f.error("[listener]\nname = \"mx\"\naddress = \"0.0.0.0:25\"\n" + rest) ==
          f.at(1, "listener: expected an array of tables ([[listener]]), got table"));
    CHECK(f.error("listener = [1]\n" + rest) ==
          f.at(1, "listener[0]: expected table, got integer"));
    CHECK(f.error(listener + "backend = 5\n[tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n") ==
          f.at(4, "listener[0].backend: unknown key"));
    CHECK(f.error("backend = 5\n" + listener + "[tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n") ==
          f.at(1, "backend: expected table, got integer"));
  }

  TEST_CASE("wrong type: local_domains must be an array of strings") {
    Fixture f;
    CHECK(f.error(kBase + "[policy]\nlocal_domains = \"example.com\"\n") ==
          f.at(10, "policy.local_domains: expected array of strings, got string"));
    CHECK(f.error(kBase + "[policy]\nlocal_domains = [\"example.com\",\n 7]\n") ==
          f.at(11, "policy.local_domains[1]: expected string, got integer"));
  }

  TEST_CASE("unknown keys are errors wherever they are") {
    Fixture f;
    CHECK(f.error("hostnam = \"x\"\n" + kBase) == f.at(1, "hostnam: unknown key"));
    CHECK(f.error(kBase + "ciphers = \"ALL\"\n") == f.at(9, "tls.ciphers: unknown key"));
    CHECK(f.error(kBase + "[limits]\nmax_recipient = 5\n") ==
          f.at(10, "limits.max_recipient: unknown key"));
    CHECK(f.error(kBase + "[stats]\nport = 9901\n") == f.at(9, "stats: unknown key"));
    CHECK(f.error(kBase + "[admin]\nport = 9901\n") == f.at(10, "admin.port: unknown key"));
    CHECK(f.error("[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:25\"\nport = 25\n" +
                  kBase.substr(kBase.find("[backend]"))) ==
          f.at(4, "listener[0].port: unknown key"));
    CHECK(f.error(kBase + "[timeouts]\nidle = 5\n") == f.at(10, "timeouts.idle: unknown key"));
    CHECK(f.error(kBase + "[policy]\ndigests = \"sha256\"\n") ==
          f.at(10, "policy.digests: unknown key"));
    CHECK(f.error(kBase + "[policy]\nmynetworks = []\n") ==
          f.at(10, "policy.mynetworks: unknown key"));
    CHECK(f.error(kBase.substr(0, kBase.find("[tls]")) + "probe = 1\n" +
                  kBase.substr(kBase.find("[tls]"))) == f.at(6, "backend.probe: unknown key"));
  }

  TEST_CASE("bad address: listener") {
    Fixture f;
    const auto withListener = [&](const std::string& address) {
      return f.error("[[listener]]\nname = \"mx\"\naddress = \"" + address + "\"\n" +
                     kBase.substr(kBase.find("[backend]")));
    };
    CHECK(withListener("0.0.0.0") ==
          f.at(3,
               "listener[0].address: expected host:port or [IPv6]:port (missing port), got "
               "\"0.0.0.0\""));
    CHECK(withListener("0.0.0.0:65536") ==
          f.at(3,
               "listener[0].address: expected host:port or [IPv6]:port (port must be a number "
               "from 0 to 65535), got \"0.0.0.0:65536\""));
    CHECK(withListener(":25") ==
          f.at(3,
               "listener[0].address: expected host:port or [IPv6]:port (empty host), got \":25\""));
    CHECK(withListener("[::1:25") ==
          f.at(3,
               "listener[0].address: expected host:port or [IPv6]:port (unbalanced brackets), "
               "got \"[::1:25\""));
    CHECK(withListener("localhost:25") ==
          f.at(3, "listener[0].address: 'localhost' is not an IPv4 or IPv6 address"));
    CHECK(withListener("[192.0.2.1]:25") ==
          f.at(3,
               "listener[0].address: expected host:port or [IPv6]:port (brackets are only for "
               "IPv6 addresses), got \"[192.0.2.1]:25\""));
    CHECK(withListener("[fe80::1%eth0]:25") ==
          f.at(3, "listener[0].address: 'fe80::1%eth0' is not an IPv4 or IPv6 address"));
    CHECK(withListener("[::]:0").empty());  // port 0 is allowed for listeners
  }

  TEST_CASE("bad address: backend port 0 and names") {
    Fixture f;
    const std::string head = kBase.substr(0, kBase.find("[backend]"));
    const std::string tls = kBase.substr(kBase.find("[tls]"));
    CHECK(f.error(head + "[backend]\naddress = \"127.0.0.1:0\"\n" + tls) ==
          f.at(5, "backend.address: port must be from 1 to 65535"));
    CHECK(f.error(head + "[backend]\naddress = \"postfix:25\"\n" + tls).empty());  // a name
    CHECK(
        f.error(head + "[backend]\naddress = \"bad_name!:25\"\n" + tls) ==
        f.at(5, "backend.address: 'bad_name!' is neither an IPv4 or IPv6 address nor a host name"));
    CHECK(f.error(head + "[backend]\naddress = \"10.0.0.256:25\"\n" + tls) ==
          f.at(5,
               "backend.address: '10.0.0.256' is neither an IPv4 or IPv6 address nor a host name"));
    CHECK(f.error(head + "[backend]\naddress = \"[fe80::1%eth0]:25\"\n" + tls) ==
          f.at(5, "backend.address: 'fe80::1%eth0' is not an IPv6 address"));
    CHECK(f.error(head + "[backend]\naddress = 25\n" + tls) ==
          f.at(5, "backend.address: expected string, got integer"));
  }

  TEST_CASE("backend addresses: names, several, balance") {
    Fixture f;
    const std::string head = kBase.substr(0, kBase.find("[backend]"));
    const std::string tls = kBase.substr(kBase.find("[tls]"));
    SUBCASE("one name, numeric IPv6 and a trailing dot") {
      Config c =
          f.parse(head + "[backend]\naddress = \"postfix.mail.svc.cluster.local.:25\"\n" + tls);
      REQUIRE(c.backend.addresses.size() == 1);
      CHECK(c.backend.addresses[0].host == "postfix.mail.svc.cluster.local");
      CHECK(c.backend.addresses[0].port == 25);
      CHECK_FALSE(config::isNumericHost(c.backend.addresses[0]));
      CHECK(c.backend.balance == BalanceMode::First);
      c = f.parse(head + "[backend]\naddress = \"[::1]:25\"\n" + tls);
      CHECK(config::isNumericHost(c.backend.addresses.at(0)));
      c = f.parse(head + "[backend]\naddress = \"localhost:2525\"\n" + tls);
      CHECK(c.backend.addresses.at(0).toString() == "localhost:2525");
    }
    SUBCASE("several, in order, with round_robin") {
      const Config c = f.parse(head +
                               "[backend]\naddresses = [\"a.example:25\", \"127.0.0.1:2525\", "
                               "\"[::1]:26\"]\nbalance = \"round_robin\"\n" +
                               tls);
      REQUIRE(c.backend.addresses.size() == 3);
      CHECK(c.backend.addresses[0].toString() == "a.example:25");
      CHECK(c.backend.addresses[1].toString() == "127.0.0.1:2525");
      CHECK(c.backend.addresses[2].toString() == "[::1]:26");
      CHECK(c.backend.balance == BalanceMode::RoundRobin);
    }
    SUBCASE("exactly one of address and addresses, no duplicates, no empty list") {
      CHECK(f.error(head + "[backend]\naddress = \"a:25\"\naddresses = [\"b:25\"]\n" + tls) ==
            f.at(6,
                 "backend.addresses: set together with backend.address; give exactly one of "
                 "them"));
      CHECK(f.error(head + "[backend]\naddresses = []\n" + tls) ==
            f.at(5, "backend.addresses: must not be empty"));
      CHECK(f.error(head + "[backend]\naddresses = [\"A.example:25\", \"a.example:25\"]\n" + tls) ==
            f.at(5,
                 "backend.addresses[1]: 'a.example:25' is listed twice (also "
                 "backend.addresses[0])"));
      CHECK(f.error(head + "[backend]\naddresses = [\"a.example:0\"]\n" + tls) ==
            f.at(5, "backend.addresses[0]: port must be from 1 to 65535"));
      CHECK(f.error(head + "[backend]\naddresses = \"a.example:25\"\n" + tls) ==
            f.at(5, "backend.addresses: expected array of strings, got string"));
      CHECK(f.error(head + "[backend]\nhelo_name = \"x.example\"\n" + tls) ==
            f.at(4,
                 "backend.address: missing required key (or backend.addresses for several "
                 "backends)"));
    }
    SUBCASE("balance spelling") {
      CHECK(f.error(head + "[backend]\naddress = \"a:25\"\nbalance = \"random\"\n" + tls) ==
            f.at(6,
                 "backend.balance: expected one of \"first\", \"round_robin\", got "
                 "\"random\""));
    }
  }

  TEST_CASE("missing required: listener, backend, tls tables") {
    Fixture f;
    const std::string listener = kBase.substr(0, kBase.find("[backend]"));
    const std::string backend =
        kBase.substr(kBase.find("[backend]"), kBase.find("[tls]") - kBase.find("[backend]"));
    const std::string tls = kBase.substr(kBase.find("[tls]"));
    CHECK(f.error(backend + tls) == f.noLine("listener: at least one [[listener]] is required"));
    CHECK(f.error("listener = []\n" + backend + tls) ==
          f.at(1, "listener: at least one [[listener]] is required"));
    CHECK(f.error(listener + tls) == f.noLine("backend: missing required table [backend]"));
    CHECK(f.error(listener + backend) == f.noLine("tls: missing required table [tls]"));
  }

  TEST_CASE("missing required: keys are reported at their table's line") {
    Fixture f;
    const std::string tail = kBase.substr(kBase.find("[backend]"));
    CHECK(f.error("hostname = \"a.example\"\n\n[[listener]]\naddress = \"0.0.0.0:25\"\n" + tail) ==
          f.at(3, "listener[0].name: missing required key"));
    CHECK(f.error("[[listener]]\nname = \"mx\"\n" + tail) ==
          f.at(1, "listener[0].address: missing required key"));
    CHECK(f.error(kBase.substr(0, kBase.find("address = \"127")) +
                  kBase.substr(kBase.find("[tls]"))) ==
          f.at(4,
               "backend.address: missing required key (or backend.addresses for several "
               "backends)"));
    CHECK(f.error(kBase.substr(0, kBase.find("cert =")) + "key = \"tls.key\"\n") ==
          f.at(6, "tls.cert: missing required key"));
    CHECK(f.error(kBase.substr(0, kBase.find("key =")) + "\n") ==
          f.at(6, "tls.key: missing required key"));
  }

  TEST_CASE("files: cert, key, client_ca and fingerprints must be readable") {
    Fixture f;
    const std::string head = kBase.substr(0, kBase.find("[tls]"));
    const std::string dir = f.dir().path().string();
    CHECK(f.error(head + "[tls]\ncert = \"missing.crt\"\nkey = \"tls.key\"\n") ==
          f.at(7, "tls.cert: cannot read '" + dir + "/missing.crt': No such file or directory"));
    CHECK(f.error(head + "[tls]\ncert = \"tls.crt\"\nkey = \"missing.key\"\n") ==
          f.at(8, "tls.key: cannot read '" + dir + "/missing.key': No such file or directory"));
    CHECK(f.error(kBase + "client_ca = \"ca.pem\"\n") ==
          f.at(9, "tls.client_ca: cannot read '" + dir + "/ca.pem': No such file or directory"));
    CHECK(f.error(kBase + "[policy]\nfingerprints = \"relay_clientcerts\"\n") ==
          f.at(10, "policy.fingerprints: cannot read '" + dir +
                       "/relay_clientcerts': No such file or directory"));
    CHECK(f.error(head + "[tls]\ncert = \"\"\nkey = \"tls.key\"\n") ==
          f.at(7, "tls.cert: must not be empty"));
    f.dir().write("certs/x", "");
    CHECK(f.error(head + "[tls]\ncert = \"certs\"\nkey = \"tls.key\"\n") ==
          f.at(7, "tls.cert: cannot read '" + dir + "/certs': Is a directory"));
  }

  TEST_CASE("tls.cert and tls.key: lists of pairs, in order, of the same length") {
    Fixture f;
    f.dir().write("rsa.crt", "");
    f.dir().write("rsa.key", "");
    const std::string head = kBase.substr(0, kBase.find("[tls]"));
    const Config c = f.parse(head +
                             "[tls]\ncert = [\"tls.crt\", \"rsa.crt\"]\n"
                             "key = [\"tls.key\", \"rsa.key\"]\n");
    REQUIRE(c.tls.certificates.size() == 2);
    CHECK(c.tls.certificates[0].cert == f.dir().path() / "tls.crt");
    CHECK(c.tls.certificates[0].key == f.dir().path() / "tls.key");
    CHECK(c.tls.certificates[1].cert == f.dir().path() / "rsa.crt");
    CHECK(c.tls.certificates[1].key == f.dir().path() / "rsa.key");

    CHECK(f.error(head + "[tls]\ncert = [\"tls.crt\", \"rsa.crt\"]\nkey = \"tls.key\"\n") ==
          f.at(8,
               "tls.key: names 1 file(s) but tls.cert names 2; give one key per certificate, in "
               "the same order"));
    CHECK(f.error(head + "[tls]\ncert = []\nkey = []\n") == f.at(7, "tls.cert: must not be empty"));
    CHECK(f.error(head + "[tls]\ncert = [\"tls.crt\", \"\"]\nkey = \"tls.key\"\n") ==
          f.at(7, "tls.cert[1]: must not be empty"));
    CHECK(f.error(head + "[tls]\ncert = [\"tls.crt\", 3]\nkey = \"tls.key\"\n") ==
          f.at(7, "tls.cert[1]: expected string, got integer"));
    CHECK(f.error(head + "[tls]\ncert = [\"tls.crt\", \"no.crt\"]\nkey = \"tls.key\"\n") ==
          f.at(7, "tls.cert[1]: cannot read '" + f.dir().path().string() +
                      "/no.crt': No such file or directory"));
  }

  TEST_CASE("tls.ticket_keys: readable files, implying session tickets") {
    Fixture f;
    f.dir().write("tickets/current.key", "");
    f.dir().write("tickets/previous.key", "");
    const Config none = f.parse(kBase);
    CHECK(none.tls.ticketKeys.empty());
    CHECK_FALSE(none.tls.sessionTickets);
    const Config c =
        f.parse(kBase + "ticket_keys = [\"tickets/current.key\", \"tickets/previous.key\"]\n");
    REQUIRE(c.tls.ticketKeys.size() == 2);
    CHECK(c.tls.ticketKeys[0] == f.dir().path() / "tickets" / "current.key");
    CHECK(c.tls.ticketKeys[1] == f.dir().path() / "tickets" / "previous.key");
    CHECK(c.tls.sessionTickets);
    CHECK(f.error(kBase + "ticket_keys = [\"tickets/next.key\"]\n") ==
          f.at(9, "tls.ticket_keys[0]: cannot read '" + f.dir().path().string() +
                      "/tickets/next.key': No such file or directory"));
    CHECK(f.error(kBase + "session_tickets = false\nticket_keys = [\"tickets/current.key\"]\n") ==
          f.at(9,
               "tls.session_tickets: is false but tls.ticket_keys is set; ticket keys need "
               "session tickets"));
    CHECK(f.parse(kBase + "strict_sni = true\n").tls.strictSni);
    CHECK_FALSE(c.tls.strictSni);
  }

  TEST_CASE("listener tls_mode and client_cert: defaults, the spellings, refusals") {
    Fixture f;
    const Config byDefault = f.parse(kBase);
    CHECK(byDefault.listeners[0].tlsMode == TlsMode::Starttls);
    CHECK(byDefault.listeners[0].clientCert == ClientCertMode::Request);
    const std::string tail = kBase.substr(kBase.find("[backend]"));
    const std::string listener = "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:2525\"\n";
    const Config implicit =
        f.parse(listener + "tls_mode = \"implicit\"\nclient_cert = \"require\"\n" + tail);
    CHECK(implicit.listeners[0].tlsMode == TlsMode::Implicit);
    CHECK(implicit.listeners[0].clientCert == ClientCertMode::Require);
    CHECK(f.parse(listener + "tls_mode = \"starttls\"\nclient_cert = \"none\"\n" + tail)
              .listeners[0]
              .clientCert == ClientCertMode::None);
    CHECK(f.parse(listener + "client_cert = \"request\"\n" + tail).listeners[0].clientCert ==
          ClientCertMode::Request);
    CHECK(f.error(listener + "tls_mode = \"smtps\"\n" + tail) ==
          f.at(4, "listener[0].tls_mode: expected \"starttls\" or \"implicit\", got \"smtps\""));
    CHECK(f.error(listener + "client_cert = \"optional\"\n" + tail) ==
          f.at(4,
               "listener[0].client_cert: expected \"request\", \"require\" or \"none\", got "
               "\"optional\""));
  }

  TEST_CASE("listener proxy_protocol needs proxy_networks, and the networks need it") {
    Fixture f;
    CHECK_FALSE(f.parse(kBase).listeners[0].proxyProtocol);
    CHECK(f.parse(kBase).timeouts.proxyHeader == std::chrono::seconds(5));
    const std::string tail = kBase.substr(kBase.find("[backend]"));
    const std::string listener = "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:2525\"\n";
    const Config on = f.parse(listener +
                              "proxy_protocol = true\nproxy_networks = [\"10.0.0.0/8\", "
                              "\"2001:db8::/32\"]\n" +
                              tail + "[timeouts]\nproxy_header = \"2s\"\n");
    CHECK(on.listeners[0].proxyProtocol);
    CHECK(on.listeners[0].proxyNetworks == std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32"});
    CHECK(on.timeouts.proxyHeader == std::chrono::seconds(2));
    CHECK(f.error(listener + "proxy_protocol = true\n" + tail) ==
          f.at(4,
               "listener[0].proxy_networks: required with proxy_protocol = true: the networks of "
               "the load balancers that may send the header (anyone else could claim any client "
               "address)"));
    CHECK(f.error(listener + "proxy_networks = [\"10.0.0.0/8\"]\n" + tail) ==
          f.at(4, "listener[0].proxy_networks: set without proxy_protocol = true"));
    CHECK(f.error(listener + "proxy_protocol = true\nproxy_networks = [\"10.0.0.1/8\"]\n" + tail)
              .find("listener[0].proxy_networks[0]: bad CIDR '10.0.0.1/8'") != std::string::npos);
  }

  TEST_CASE("workers = 0: the cgroup v2 cpu.max quota, rounded up; no limit is none") {
    CHECK(cpusFromCgroupMax("max 100000") == std::nullopt);
    CHECK(cpusFromCgroupMax("max 100000\n") == std::nullopt);
    CHECK(cpusFromCgroupMax("100000 100000\n") == 1U);
    CHECK(cpusFromCgroupMax("150000 100000") == 2U);
    CHECK(cpusFromCgroupMax("50000 100000") == 1U);
    CHECK(cpusFromCgroupMax("400000 100000") == 4U);
    CHECK(cpusFromCgroupMax("") == std::nullopt);
    CHECK(cpusFromCgroupMax("abc 100000") == std::nullopt);
    CHECK(cpusFromCgroupMax("100000 0") == std::nullopt);
    CHECK(availableCpus() >= 1U);
  }

  TEST_CASE("environment: CERTRELAY_<SECTION>_<KEY> overrides scalar keys, typed as TOML") {
    Fixture f;
    const Config c =
        config::parse(kBase, f.origin(),
                      {{"CERTRELAY_HOSTNAME", "pod-7.mx.example"},
                       {"CERTRELAY_BACKEND_ADDRESS", "127.0.0.1:2626"},
                       {"CERTRELAY_LIMITS_MAX_RECIPIENTS", "50"},
                       {"CERTRELAY_TIMEOUTS_COMMAND", "30s"},
                       {"CERTRELAY_METRICS_PER_IDENTITY", "true"},
                       {"CERTRELAY_BIN", "/usr/bin/certrelay"},  // no such section: left alone
                       {"OTHER_HOSTNAME", "x"}});
    CHECK(c.hostname == "pod-7.mx.example");
    CHECK(c.backend.addresses.at(0).toString() == "127.0.0.1:2626");
    CHECK(c.limits.maxRecipients == 50);
    CHECK(c.timeouts.command == std::chrono::seconds(30));
    CHECK(c.metrics.perIdentity);
    CHECK(c.environmentOverrides ==
          std::vector<std::string>{"hostname = pod-7.mx.example (CERTRELAY_HOSTNAME)",
                                   "backend.address = 127.0.0.1:2626 (CERTRELAY_BACKEND_ADDRESS)",
                                   "limits.max_recipients = 50 (CERTRELAY_LIMITS_MAX_RECIPIENTS)",
                                   "timeouts.command = 30s (CERTRELAY_TIMEOUTS_COMMAND)",
                                   "metrics.per_identity = true (CERTRELAY_METRICS_PER_IDENTITY)"});
    // Validated like the file's values; an unknown key of a known section is an error.
    CHECK(f.error(kBase) == "");
    CHECK_THROWS_WITH_AS(
        config::parse(kBase, f.origin(), {{"CERTRELAY_LIMITS_MAX_RECIPIENTS", "0"}}),
        doctest::Contains("limits.max_recipients: must be"), ConfigError);
    CHECK_THROWS_WITH_AS(config::parse(kBase, f.origin(), {{"CERTRELAY_TLS_CIPHERS", "ALL"}}),
                         doctest::Contains("tls.ciphers: unknown key"), ConfigError);
    // Without the environment argument, nothing applies (parse() is what the other tests use).
    CHECK(f.parse(kBase).environmentOverrides.empty());
  }

  TEST_CASE("operations: [admin], [log], [shutdown], [metrics] with their defaults") {
    Fixture f;
    const Config byDefault = f.parse(kBase);
    CHECK_FALSE(byDefault.admin.enabled);
    CHECK(byDefault.admin.stallTimeout == std::chrono::seconds(10));
    CHECK(byDefault.log.format == LogFormat::Text);
    CHECK(byDefault.log.level == LogLevel::Info);
    CHECK(byDefault.log.flushInterval == std::chrono::milliseconds(50));
    CHECK(byDefault.shutdown.delay == std::chrono::seconds(5));
    CHECK(byDefault.shutdown.timeout == std::chrono::seconds(30));
    CHECK_FALSE(byDefault.metrics.perIdentity);
    const Config c = f.parse(kBase +
                             "[admin]\naddress = \"127.0.0.1:9901\"\nstall_timeout = \"3s\"\n"
                             "[log]\nformat = \"json\"\nlevel = \"warning\"\n"
                             "[shutdown]\ndelay = \"1s\"\ntimeout = \"20s\"\n"
                             "[metrics]\nper_identity = true\n");
    CHECK(c.admin.enabled);
    CHECK(c.admin.address.toString() == "127.0.0.1:9901");
    CHECK(c.admin.stallTimeout == std::chrono::seconds(3));
    CHECK(c.log.format == LogFormat::Json);
    CHECK(c.log.level == LogLevel::Warning);
    CHECK(c.shutdown.delay == std::chrono::seconds(1));
    CHECK(c.shutdown.timeout == std::chrono::seconds(20));
    CHECK(c.metrics.perIdentity);
    CHECK(f.parse(kBase + "[shutdown]\ndelay = 0\n").shutdown.delay.count() == 0);
    CHECK(f.parse(kBase + "[shutdown]\ndelay = \"0s\"\n").shutdown.delay.count() == 0);
    CHECK(f.error(kBase + "[shutdown]\ndelay = -1\n") ==
          f.at(10, "shutdown.delay: must not be negative"));
    CHECK(f.parse(kBase + "[timeouts]\nshutdown = \"9s\"\n").shutdown.timeout ==
          std::chrono::seconds(9));
    CHECK(f.error(kBase + "[timeouts]\nshutdown = \"9s\"\n[shutdown]\ntimeout = \"8s\"\n") ==
          f.at(12, "shutdown.timeout: set twice: timeouts.shutdown is its old name; keep one"));
    CHECK(f.error(kBase + "[log]\nlevel = \"trace\"\n") ==
          f.at(10,
               "log.level: expected one of \"debug\", \"info\", \"warning\", \"error\", got "
               "\"trace\""));
    CHECK(f.parse(kBase + "[log]\nflush_interval = \"0s\"\n").log.flushInterval.count() == 0);
    CHECK(f.parse(kBase + "[log]\nflush_interval = \"200ms\"\n").log.flushInterval ==
          std::chrono::milliseconds(200));
    CHECK(f.error(kBase + "[log]\nflush_interval = \"2s\"\n") ==
          f.at(10, "log.flush_interval: at most 1s: a longer wait hides what a session is doing"));
    CHECK(f.error(kBase + "[admin]\nstall_timeout = \"3s\"\n") ==
          f.at(9, "admin.address: missing required key"));
  }

  TEST_CASE("files: an unreadable key is refused") {
    if (geteuid() == 0) {
      // root reads a mode-000 file anyway; the refusal cannot be provoked.
      MESSAGE("skipped: running as root");
      return;
    }
    Fixture f;
    const fs::path key = f.dir().write("secret.key", "x");
    REQUIRE(chmod(key.c_str(), 0) == 0);
    const std::string head = kBase.substr(0, kBase.find("[tls]"));
    CHECK(f.error(head + "[tls]\ncert = \"tls.crt\"\nkey = \"secret.key\"\n") ==
          f.at(8, "tls.key: cannot read '" + key.string() + "': Permission denied"));
  }

  TEST_CASE("files: a dangling symlink is refused") {
    // The Kubernetes ..data swap can leave a link pointing nowhere for a moment.
    Fixture f;
    const fs::path link = f.dir().path() / "dangling.key";
    fs::create_symlink(f.dir().path() / "gone", link);
    const std::string head = kBase.substr(0, kBase.find("[tls]"));
    CHECK(f.error(head + "[tls]\ncert = \"tls.crt\"\nkey = \"dangling.key\"\n") ==
          f.at(8, "tls.key: cannot read '" + link.string() + "': No such file or directory"));
  }

  TEST_CASE("files: empty optional paths mean none") {
    Fixture f;
    const Config c = f.parse(kBase + "client_ca = \"\"\n[policy]\nfingerprints = \"\"\n");
    CHECK(c.tls.clientCa.empty());
    CHECK(c.policy.fingerprints.empty());
  }

  TEST_CASE("durations: accepted forms") {
    Fixture f;
    const Config c =
        f.parse(kBase +
                "[timeouts]\ncommand = 10\ntls_handshake = \"250ms\"\ndata = \"2m\"\n"
                "backend_connect = \"1s\"\nbackend_reply = \"1h\"\nshutdown = \"168h\"\n");
    CHECK(c.timeouts.command == seconds(10));
    CHECK(c.timeouts.tlsHandshake == milliseconds(250));
    CHECK(c.timeouts.data == seconds(120));
    CHECK(c.timeouts.backendConnect == seconds(1));
    CHECK(c.timeouts.backendReply == seconds(3600));
    CHECK(c.shutdown.timeout == std::chrono::hours(168));
  }

  TEST_CASE("durations: malformed, zero, negative and too large") {
    Fixture f;
    const std::string head = kBase + "[timeouts]\n";
    const std::string format =
        "expected a duration such as 30, \"500ms\", \"30s\", \"5m\" or \"1h\"";
    CHECK(f.error(head + "command = \"5x\"\n") ==
          f.at(10, "timeouts.command: " + format + ", got \"5x\""));
    CHECK(f.error(head + "command = \"\"\n") ==
          f.at(10, "timeouts.command: " + format + ", got \"\""));
    CHECK(f.error(head + "command = \"s\"\n") ==
          f.at(10, "timeouts.command: " + format + ", got \"s\""));
    CHECK(f.error(head + "data = \"-5s\"\n") ==
          f.at(10, "timeouts.data: " + format + ", got \"-5s\""));
    CHECK(f.error(head + "data = \"1.5s\"\n") ==
          f.at(10, "timeouts.data: " + format + ", got \"1.5s\""));
    CHECK(f.error(head + "data = \"5 s\"\n") ==
          f.at(10, "timeouts.data: " + format + ", got \"5 s\""));
    CHECK(f.error(head + "data = \"5S\"\n") ==
          f.at(10, "timeouts.data: " + format + ", got \"5S\""));
    CHECK(f.error(head + "data = 1.5\n") == f.at(10, "timeouts.data: " + format + ", got float"));
    CHECK(f.error(head + "shutdown = 0\n") ==
          f.at(10, "timeouts.shutdown: must be greater than 0"));
    CHECK(f.error(head + "shutdown = \"0ms\"\n") ==
          f.at(10, "timeouts.shutdown: must be greater than 0"));
    CHECK(f.error(head + "shutdown = -30\n") ==
          f.at(10, "timeouts.shutdown: must be greater than 0"));
    CHECK(f.error(head + "shutdown = \"169h\"\n") ==
          f.at(10, "timeouts.shutdown: must be at most 168h (7 days)"));
    CHECK(f.error(head + "shutdown = \"99999999999999999999h\"\n") ==
          f.at(10, "timeouts.shutdown: must be at most 168h (7 days)"));
    CHECK(f.error(head + "shutdown = 9223372036854775807\n") ==
          f.at(10, "timeouts.shutdown: must be at most 168h (7 days)"));
  }

  TEST_CASE("durations: backend probe interval and TLS session timeout") {
    Fixture f;
    CHECK(f.error(kBase.substr(0, kBase.find("[tls]")) + "probe_interval = \"0s\"\n" +
                  kBase.substr(kBase.find("[tls]"))) ==
          f.at(6, "backend.probe_interval: must be greater than 0"));
    CHECK(f.error(kBase + "session_timeout = \"1500ms\"\n") ==
          f.at(9, "tls.session_timeout: must be a whole number of seconds"));
    CHECK(f.parse(kBase + "session_timeout = 300\n").tls.sessionTimeout == seconds(300));
  }

  TEST_CASE("numbers: out of range limits") {
    Fixture f;
    const std::string head = kBase + "[limits]\n";
    CHECK(f.error(head + "max_line_length = 511\n") ==
          f.at(10, "limits.max_line_length: must be from 512 to 65536, got 511"));
    CHECK(f.error(head + "max_line_length = 65537\n") ==
          f.at(10, "limits.max_line_length: must be from 512 to 65536, got 65537"));
    CHECK(f.error(head + "high_watermark = 4095\n") ==
          f.at(10, "limits.high_watermark: must be at least 4096, got 4095"));
    CHECK(f.error(head + "max_recipients = 0\n") ==
          f.at(10, "limits.max_recipients: must be at least 1, got 0"));
    CHECK(f.error(head + "max_errors = -3\n") ==
          f.at(10, "limits.max_errors: must be from 1 to 4294967295, got -3"));
    CHECK(f.error(head + "max_errors = 4294967296\n") ==
          f.at(10, "limits.max_errors: must be from 1 to 4294967295, got 4294967296"));
    CHECK(f.error(head + "max_connections = 0\n") ==
          f.at(10, "limits.max_connections: must be at least 1, got 0"));
    const Config c = f.parse(head + "max_line_length = 512\nhigh_watermark = 4096\n");
    CHECK(c.limits.maxLineLength == 512);
    CHECK(c.limits.highWatermark == 4096);
  }

  TEST_CASE("numbers: out of range TLS settings") {
    Fixture f;
    CHECK(f.error(kBase + "tickets_per_handshake = 9\n") ==
          f.at(9, "tls.tickets_per_handshake: must be from 0 to 8, got 9"));
    CHECK(f.error(kBase + "tickets_per_handshake = -1\n") ==
          f.at(9, "tls.tickets_per_handshake: must be from 0 to 8, got -1"));
    CHECK(f.error(kBase + "session_cache_size = -1\n") ==
          f.at(9, "tls.session_cache_size: must be at least 0, got -1"));
    CHECK(f.parse(kBase + "tickets_per_handshake = 0\n").tls.ticketsPerHandshake == 0);
  }

  TEST_CASE("tls.min_version: only the two spellings") {
    Fixture f;
    CHECK(f.error(kBase + "min_version = \"TLSv1.1\"\n") ==
          f.at(9, "tls.min_version: expected \"TLSv1.2\" or \"TLSv1.3\", got \"TLSv1.1\""));
    CHECK(f.error(kBase + "min_version = \"tlsv1.3\"\n") ==
          f.at(9, "tls.min_version: expected \"TLSv1.2\" or \"TLSv1.3\", got \"tlsv1.3\""));
  }

  TEST_CASE("listeners: duplicate names and bad names") {
    Fixture f;
    const std::string tail = kBase.substr(kBase.find("[backend]"));
    CHECK(f.error("[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:25\"\n"
                  "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:26\"\n" +
                  tail) ==
          f.at(5, "listener[1].name: duplicate listener name 'mx' (also listener[0])"));
    CHECK(f.error("[[listener]]\nname = \"\"\naddress = \"0.0.0.0:25\"\n" + tail) ==
          f.at(2, "listener[0].name: must not be empty"));
    CHECK(f.error("[[listener]]\nname = \"m x\"\naddress = \"0.0.0.0:25\"\n" + tail) ==
          f.at(2, "listener[0].name: may contain only letters, digits, '-', '_' and '.'"));
  }

  TEST_CASE("local_domains: normalised to lower case without one trailing dot") {
    Fixture f;
    const Config c =
        f.parse(kBase +
                "[policy]\nlocal_domains = [\"Example.COM.\", \".Sub.Example.com\", "
                "\"[192.0.2.1]\", \"[IPv6:2001:DB8::1]\", \"xn--bcher-kva.example\"]\n");
    CHECK(c.policy.localDomains == std::vector<std::string>{"example.com", ".sub.example.com",
                                                            "[192.0.2.1]", "[ipv6:2001:db8::1]",
                                                            "xn--bcher-kva.example"});
  }

  TEST_CASE("local_domains: invalid names are refused with their index and line") {
    Fixture f;
    const std::string head = kBase + "[policy]\nlocal_domains = [\n\"ok.example\",\n";
    const auto bad = [&](const std::string& value) { return f.error(head + value + "]\n"); };
    const auto message = [&](const std::string& written) {
      return f.at(12, "policy.local_domains[1]: '" + written +
                          "' is not a domain name, \".domain\" or address literal");
    };
    CHECK(bad("\"exa mple.com\"") == message("exa mple.com"));
    CHECK(bad("\"-bad.example\"") == message("-bad.example"));
    CHECK(bad("\"bad-.example\"") == message("bad-.example"));
    CHECK(bad("\"a..example\"") == message("a..example"));
    CHECK(bad("\"\"") == message(""));
    CHECK(bad("\".\"") == message("."));
    CHECK(bad("\"..example.com\"") == message("..example.com"));
    CHECK(bad("\"example.com..\"") == message("example.com.."));
    CHECK(bad("\"192.0.2.1\"") == message("192.0.2.1"));
    CHECK(bad("\"[192.0.2.300]\"") == message("[192.0.2.300]"));
    CHECK(bad("\"[192.0.2.1].\"") == message("[192.0.2.1]."));
    CHECK(bad("\".[192.0.2.1]\"") == message(".[192.0.2.1]"));
    CHECK(bad("\"under_score.example\"") == message("under_score.example"));
    CHECK(bad("\"" + std::string(64, 'a') + ".example\"") ==
          message(std::string(64, 'a') + ".example"));
  }

  TEST_CASE("policy.digest: the three names, sha256 by default, an empty policy table too") {
    Fixture f;
    CHECK(f.parse(kBase + "[policy]\ndigest = \"sha256\"\n").policy.digest ==
          FingerprintDigest::Sha256);
    CHECK(f.parse(kBase + "[policy]\ndigest = \"sha1\"\n").policy.digest ==
          FingerprintDigest::Sha1);
    CHECK(f.parse(kBase + "[policy]\ndigest = \"md5\"\n").policy.digest == FingerprintDigest::Md5);
    CHECK(f.parse(kBase + "[policy]\n").policy.digest == FingerprintDigest::Sha256);
  }

  TEST_CASE("policy.digest: other names and types are refused with the line") {
    Fixture f;
    const std::string head = kBase + "[policy]\nlocal_domains = []\n";
    const auto message = [&](const std::string& got) {
      return f.at(11,
                  "policy.digest: expected \"sha256\", \"sha1\" or \"md5\", got \"" + got + "\"");
    };
    CHECK(f.error(head + "digest = \"SHA256\"\n") == message("SHA256"));
    CHECK(f.error(head + "digest = \"sha512\"\n") == message("sha512"));
    CHECK(f.error(head + "digest = \"sha-256\"\n") == message("sha-256"));
    CHECK(f.error(head + "digest = \"\"\n") == message(""));
    CHECK(f.error(head + "digest = 256\n") ==
          f.at(11, "policy.digest: expected string, got integer"));
  }

  TEST_CASE("backend.identity: the four names, auto by default") {
    Fixture f;
    const std::string head = kBase.substr(0, kBase.find("[tls]"));
    const std::string tls = kBase.substr(kBase.find("[tls]"));
    CHECK(f.parse(head + "identity = \"auto\"\n" + tls).backend.identity == IdentityMode::Auto);
    CHECK(f.parse(head + "identity = \"xclient\"\n" + tls).backend.identity ==
          IdentityMode::Xclient);
    CHECK(f.parse(head + "identity = \"xforward\"\n" + tls).backend.identity ==
          IdentityMode::Xforward);
    CHECK(f.parse(head + "identity = \"none\"\n" + tls).backend.identity == IdentityMode::None);
    CHECK(f.parse(kBase).backend.identity == IdentityMode::Auto);
  }

  TEST_CASE("backend.identity: other names and types are refused with the line") {
    Fixture f;
    const std::string head = kBase.substr(0, kBase.find("[tls]"));
    const std::string tls = kBase.substr(kBase.find("[tls]"));
    const auto message = [&](const std::string& got) {
      return f.at(6,
                  "backend.identity: expected \"auto\", \"xclient\", \"xforward\" or \"none\", "
                  "got \"" +
                      got + "\"");
    };
    CHECK(f.error(head + "identity = \"XCLIENT\"\n" + tls) == message("XCLIENT"));
    CHECK(f.error(head + "identity = \"received\"\n" + tls) == message("received"));
    CHECK(f.error(head + "identity = \"\"\n" + tls) == message(""));
    CHECK(f.error(head + "identity = true\n" + tls) ==
          f.at(6, "backend.identity: expected string, got boolean"));
    CHECK(f.error(head + "identities = \"auto\"\n" + tls) ==
          f.at(6, "backend.identities: unknown key"));
  }

  TEST_CASE("backend.received_header: a boolean, on by default") {
    Fixture f;
    const std::string head = kBase.substr(0, kBase.find("[tls]"));
    const std::string tls = kBase.substr(kBase.find("[tls]"));
    CHECK(f.parse(kBase).backend.receivedHeader);
    CHECK(f.parse(head + "received_header = true\n" + tls).backend.receivedHeader);
    CHECK_FALSE(f.parse(head + "received_header = false\n" + tls).backend.receivedHeader);
    CHECK(f.error(head + "received_header = \"yes\"\n" + tls) ==
          f.at(6, "backend.received_header: expected boolean, got string"));
    CHECK(f.error(head + "received_header = 0\n" + tls) ==
          f.at(6, "backend.received_header: expected boolean, got integer"));
  }

  TEST_CASE("identityModeKeyword spells every mode as the config does") {
    CHECK(identityModeKeyword(IdentityMode::Auto) == "auto");
    CHECK(identityModeKeyword(IdentityMode::Xclient) == "xclient");
    CHECK(identityModeKeyword(IdentityMode::Xforward) == "xforward");
    CHECK(identityModeKeyword(IdentityMode::None) == "none");
  }

  TEST_CASE("digestKeyword and digestSize") {
    CHECK(digestKeyword(FingerprintDigest::Sha256) == "sha256");
    CHECK(digestKeyword(FingerprintDigest::Sha1) == "sha1");
    CHECK(digestKeyword(FingerprintDigest::Md5) == "md5");
    CHECK(digestSize(FingerprintDigest::Sha256) == 32);
    CHECK(digestSize(FingerprintDigest::Sha1) == 20);
    CHECK(digestSize(FingerprintDigest::Md5) == 16);
  }

  TEST_CASE(
      "policy.relay_networks: IPv4, IPv6, bracketed IPv6 and bare addresses kept as written") {
    Fixture f;
    const Config c =
        f.parse(kBase +
                "[policy]\nrelay_networks = [\"192.0.2.0/24\", \"2001:db8::/32\", "
                "\"[2001:db8:1::]/48\", \"198.51.100.7\", \"[::1]\", \"0.0.0.0/0\"]\n");
    CHECK(c.policy.relayNetworks == std::vector<std::string>{"192.0.2.0/24", "2001:db8::/32",
                                                             "[2001:db8:1::]/48", "198.51.100.7",
                                                             "[::1]", "0.0.0.0/0"});
    CHECK(f.parse(kBase + "[policy]\nrelay_networks = []\n").policy.relayNetworks.empty());
  }

  TEST_CASE("policy.relay_networks: a bad CIDR is refused with its index, line and reason") {
    Fixture f;
    const std::string head =
        kBase + "[policy]\nrelay_networks = [\n\"10.0.0.0/8\",\n\"192.0.2.0/24\",\n";
    const auto bad = [&](const std::string& value) { return f.error(head + value + "]\n"); };
    const auto message = [&](const std::string& written, const std::string& reason) {
      return f.at(13, "policy.relay_networks[2]: bad CIDR '" + written + "': " + reason);
    };
    CHECK(bad("\"192.0.2.1/24\"") ==
          message("192.0.2.1/24", "host bits set beyond /24 (use '192.0.2.0/24')"));
    CHECK(bad("\"2001:db8::1/32\"") ==
          message("2001:db8::1/32", "host bits set beyond /32 (use '2001:db8::/32')"));
    CHECK(bad("\"192.0.2.0/33\"") ==
          message("192.0.2.0/33", "prefix length must be a number from 0 to 32"));
    CHECK(bad("\"2001:db8::/129\"") ==
          message("2001:db8::/129", "prefix length must be a number from 0 to 128"));
    CHECK(bad("\"192.0.2.0/\"") ==
          message("192.0.2.0/", "prefix length must be a number from 0 to 32"));
    CHECK(bad("\"example.com/24\"") == message("example.com/24", "not an IPv4 or IPv6 address"));
    CHECK(bad("\"192.0.2/24\"") == message("192.0.2/24", "not an IPv4 or IPv6 address"));
    CHECK(bad("\"[192.0.2.0]/24\"") ==
          message("[192.0.2.0]/24", "brackets are only for IPv6 addresses"));
    CHECK(bad("\"[2001:db8::/32\"") == message("[2001:db8::/32", "unbalanced brackets"));
    CHECK(bad("\"\"") == message("", "empty"));
    CHECK(bad("\"/24\"") == message("/24", "missing address"));
  }

  TEST_CASE("policy.relay_networks: wrong types") {
    Fixture f;
    CHECK(f.error(kBase + "[policy]\nrelay_networks = \"192.0.2.0/24\"\n") ==
          f.at(10, "policy.relay_networks: expected array of strings, got string"));
    CHECK(f.error(kBase + "[policy]\nrelay_networks = [\"192.0.2.0/24\", 10]\n") ==
          f.at(10, "policy.relay_networks[1]: expected string, got integer"));
  }

  TEST_CASE("cidr: accepted forms and their canonical text") {
    const auto canonical = [](std::string_view text) { return parseCidr(text).toString(); };
    CHECK(canonical("192.0.2.0/24") == "192.0.2.0/24");
    CHECK(canonical("192.0.2.7") == "192.0.2.7/32");
    CHECK(canonical("192.0.2.7/32") == "192.0.2.7/32");
    CHECK(canonical("0.0.0.0/0") == "0.0.0.0/0");
    CHECK(canonical("2001:db8::/32") == "2001:db8::/32");
    CHECK(canonical("[2001:db8::]/32") == "2001:db8::/32");
    CHECK(canonical("2001:DB8::7") == "2001:db8::7/128");
    CHECK(canonical("[2001:db8::7]") == "2001:db8::7/128");
    CHECK(canonical("::/0") == "::/0");
    CHECK(canonical("10.128.0.0/9") == "10.128.0.0/9");
    CHECK_FALSE(parseCidr("192.0.2.0/24").v6);
    CHECK(parseCidr("2001:db8::/32").v6);
    CHECK(parseCidr("192.0.2.0/24").prefix == 24);
  }

  TEST_CASE("cidr: an IPv4-mapped IPv6 network becomes the IPv4 network") {
    const Cidr mapped = parseCidr("::ffff:192.0.2.0/120");
    CHECK_FALSE(mapped.v6);
    CHECK(mapped.prefix == 24);
    CHECK(mapped.toString() == "192.0.2.0/24");
    CHECK(parseCidr("[::ffff:127.0.0.0]/104").toString() == "127.0.0.0/8");
    CHECK(parseCidr("::ffff:192.0.2.7").toString() == "192.0.2.7/32");
    CHECK(parseCidr("::ffff:0:0/96").toString() == "0.0.0.0/0");
    // Shorter than /96 it covers more than the mapped block: stays IPv6.
    CHECK(parseCidr("::fffe:0:0/95").v6);
  }

  TEST_CASE("cidr: refusals") {
    const std::pair<const char*, const char*> cases[] = {
        {"", "empty"},
        {"/8", "missing address"},
        {"[]/8", "missing address"},
        {"[::1", "unbalanced brackets"},
        {"::1]", "unbalanced brackets"},
        {"[[::1]]", "unbalanced brackets"},
        {"[192.0.2.1]", "brackets are only for IPv6 addresses"},
        {"192.0.2.256", "not an IPv4 or IPv6 address"},
        {"192.0.2", "not an IPv4 or IPv6 address"},
        {"192.0.02.0/24", "not an IPv4 or IPv6 address"},
        {" 192.0.2.0/24", "not an IPv4 or IPv6 address"},
        {"fe80::1%eth0", "not an IPv4 or IPv6 address"},
        {"2001:db8:::/32", "not an IPv4 or IPv6 address"},
        {"localhost", "not an IPv4 or IPv6 address"},
        {"192.0.2.0/24 ", "prefix length must be a number from 0 to 32"},
        {"192.0.2.0/024", "prefix length must be a number from 0 to 32"},
        {"192.0.2.0/+24", "prefix length must be a number from 0 to 32"},
        {"192.0.2.0/-1", "prefix length must be a number from 0 to 32"},
        {"192.0.2.0/24/8", "prefix length must be a number from 0 to 32"},
        {"192.0.2.0/1000", "prefix length must be a number from 0 to 32"},
        {"::/00", "prefix length must be a number from 0 to 128"},
        {"192.0.2.128/24", "host bits set beyond /24 (use '192.0.2.0/24')"},
        {"192.0.2.1/0", "host bits set beyond /0 (use '0.0.0.0/0')"},
        {"10.1.0.0/9", "host bits set beyond /9 (use '10.0.0.0/9')"},
        {"::1/0", "host bits set beyond /0 (use '::/0')"},
        {"2001:db8::4000/113", "host bits set beyond /113 (use '2001:db8::/113')"},
    };
    for (const auto& [text, reason] : cases) {
      const std::string written = text;
      CAPTURE(written);
      CHECK_THROWS_WITH_AS(parseCidr(text), reason, std::invalid_argument);
    }
    // inet_pton would stop at the NUL and see only "192.0.2.0".
    CHECK_THROWS_WITH_AS(parseCidr(std::string_view("192.0.2.0\0junk/24", 17)),
                         "not an IPv4 or IPv6 address", std::invalid_argument);
  }

  TEST_CASE("policy.reload_poll_interval and reload_debounce: defaults, values, limits") {
    Fixture f;
    const std::string head = kBase + "[policy]\n";
    const Config c = f.parse(head + "reload_poll_interval = 5\nreload_debounce = \"10s\"\n");
    CHECK(c.policy.reloadPollInterval == seconds(5));
    CHECK(c.policy.reloadDebounce == seconds(10));
    CHECK(f.parse(head + "reload_debounce = \"1ms\"\n").policy.reloadDebounce == milliseconds(1));
    CHECK(f.error(head + "reload_poll_interval = 0\n") ==
          f.at(10, "policy.reload_poll_interval: must be greater than 0"));
    CHECK(f.error(head + "reload_poll_interval = \"169h\"\n") ==
          f.at(10, "policy.reload_poll_interval: must be at most 168h (7 days)"));
    CHECK(f.error(head + "reload_poll_interval = \"soon\"\n") ==
          f.at(10,
               "policy.reload_poll_interval: expected a duration such as 30, \"500ms\", \"30s\", "
               "\"5m\" or \"1h\", got \"soon\""));
    CHECK(f.error(head + "\nreload_debounce = \"0ms\"\n") ==
          f.at(11, "policy.reload_debounce: must be greater than 0"));
    CHECK(f.error(head + "reload_debounce = \"10001ms\"\n") ==
          f.at(10, "policy.reload_debounce: must be at most 10s"));
    CHECK(f.error(head + "reload_debounce = 11\n") ==
          f.at(10, "policy.reload_debounce: must be at most 10s"));
  }

  TEST_CASE("hostname: must be a plain host name (no line injection)") {
    Fixture f;
    CHECK(f.error("hostname = \"mx.example.com\\r\\n250 x\"\n" + kBase) ==
          f.at(1, "hostname: 'mx.example.com\r\n250 x' is not a valid host name"));
    CHECK(f.error("hostname = \"\"\n" + kBase) == f.at(1, "hostname: '' is not a valid host name"));
    CHECK(f.error(kBase.substr(0, kBase.find("[tls]")) + "helo_name = \"a b\"\n" +
                  kBase.substr(kBase.find("[tls]"))) ==
          f.at(6, "backend.helo_name: 'a b' is not a valid host name"));
  }

}  // TEST_SUITE

}  // namespace certrelay::config
