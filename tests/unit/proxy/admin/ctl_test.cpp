// `certrelay ctl` against a real AdminServer on loopback, and its usage errors.

#include "proxy/admin/ctl.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "proxy/admin/admin_server.h"

namespace certrelay::admin {
namespace {

class ReadyHandler final : public AdminHandler {
 public:
  std::vector<Check> liveness() override { return {}; }
  std::vector<Check> readiness() override {
    const std::lock_guard<std::mutex> lock(mutex_);
    return ready_;
  }
  std::string metrics() override { return ""; }
  void drain() override { ++drains; }
  void reload() override { ++reloads; }
  void setReadiness(std::vector<Check> checks) {
    const std::lock_guard<std::mutex> lock(mutex_);
    ready_ = std::move(checks);
  }
  std::atomic<int> drains{0};
  std::atomic<int> reloads{0};

 private:
  std::mutex mutex_;
  std::vector<Check> ready_{{"backend", true, ""}};
};

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

Outcome ctl(const std::vector<std::string>& args) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = runCtl(args, out, err);
  return {code, out.str(), err.str()};
}

// A temporary directory with a valid config whose [admin] section is `admin` ("" = none).
class ConfigDir {
 public:
  ConfigDir() {
    char pattern[] = "/tmp/certrelay-ctl-test-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    dir_ = pattern;
  }
  ~ConfigDir() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  ConfigDir(const ConfigDir&) = delete;
  ConfigDir& operator=(const ConfigDir&) = delete;

  std::string write(const std::string& admin) {
    const std::string data = CERTRELAY_TEST_DATA_DIR "/config/";
    const std::filesystem::path file = dir_ / "certrelay.toml";
    std::ofstream(file) << "hostname = \"mx.example.com\"\nworkers = 1\n\n[[listener]]\n"
                           "name = \"mx\"\naddress = \"127.0.0.1:0\"\n\n[backend]\n"
                           "address = \"127.0.0.1:10025\"\n\n[tls]\ncert = \""
                        << data << "tls.crt\"\nkey = \"" << data << "tls.key\"\n"
                        << (admin.empty() ? "" : "\n[admin]\naddress = \"" + admin + "\"\n");
    return file.string();
  }

 private:
  std::filesystem::path dir_;
};

std::unique_ptr<AdminServer> serve(AdminHandler& handler, const std::string& host) {
  config::Admin admin;
  admin.enabled = true;
  admin.address = config::Endpoint{host, 0};
  std::string error;
  auto server = AdminServer::start(admin, handler, error);
  REQUIRE_MESSAGE(server != nullptr, error);
  return server;
}

// A loopback port nobody listens on (bound, then closed).
std::uint16_t closedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("ctl: usage errors exit 2 and say what is wrong") {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : {Case{{}, "which command? drain, reload or health"},
                        Case{{"stop"}, "unknown command 'stop'"},
                        Case{{"drain", "reload"}, "one command at a time"},
                        Case{{"drain", "-c"}, "-c needs a file name"},
                        Case{{"drain", "--force"}, "unknown option '--force'"}}) {
    const Outcome o = ctl(c.args);
    CAPTURE(o.err);
    CHECK(o.code == 2);
    CHECK(o.err.find("certrelay ctl: " + c.says) == 0);
    CHECK(o.err.find("usage: certrelay ctl drain|reload|health") != std::string::npos);
    CHECK(o.out.empty());
  }
  const Outcome help = ctl({"--help"});
  CHECK(help.code == 0);
  CHECK(help.out.find("usage: certrelay ctl") == 0);
}

TEST_CASE("ctl: without a usable config or [admin] address nothing is asked (exit 2)") {
  ConfigDir dir;
  Outcome o = ctl({"drain", "-c", "/nonexistent/certrelay.toml"});
  CHECK(o.code == 2);
  CHECK(o.err.find("/nonexistent/certrelay.toml") != std::string::npos);

  const std::string file = dir.write("");
  o = ctl({"health", "--config", file});
  CHECK(o.code == 2);
  CHECK(o.err == "certrelay ctl: " + file +
                     " has no [admin] address: ctl talks to the admin endpoint, which is off\n");
}

TEST_CASE("ctl: an unreachable endpoint is exit 2, and says so") {
  ConfigDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(closedPort());
  const Outcome o = ctl({"drain", "--config=" + dir.write(address)});
  CHECK(o.code == 2);
  CHECK(o.err ==
        "certrelay ctl: cannot reach the admin endpoint " + address + ": Connection refused\n");
}

TEST_CASE("ctl: drain, reload and health against a running admin endpoint") {
  ReadyHandler handler;
  auto server = serve(handler, "127.0.0.1");
  ConfigDir dir;
  const std::string file = dir.write("127.0.0.1:" + std::to_string(server->port()));

  Outcome o = ctl({"drain", "-c", file});
  CHECK(o.code == 0);
  CHECK(o.out == "draining\n");
  CHECK(handler.drains == 1);

  o = ctl({"-c", file, "reload"});
  CHECK(o.code == 0);
  CHECK(o.out == "reloading\n");
  CHECK(handler.reloads == 1);

  o = ctl({"health", "-c", file});
  CHECK(o.code == 0);
  CHECK(o.out == "[+]backend ok\nreadyz check passed\n");

  handler.setReadiness({{"backend", false, "connect: connection refused"}});
  o = ctl({"health", "-c", file});
  CHECK(o.code == 1);
  CHECK(o.out == "[-]backend failed: connect: connection refused\nreadyz check failed\n");
  CHECK(o.err == "certrelay ctl: health: the admin endpoint answered 503 Service Unavailable\n");
}

TEST_CASE("ctl: a wildcard admin address is reached through loopback") {
  ReadyHandler handler;
  auto server = serve(handler, "0.0.0.0");
  ConfigDir dir;
  const Outcome o = ctl({"drain", "-c", dir.write("0.0.0.0:" + std::to_string(server->port()))});
  CHECK(o.code == 0);
  CHECK(handler.drains == 1);
}

}  // namespace certrelay::admin
