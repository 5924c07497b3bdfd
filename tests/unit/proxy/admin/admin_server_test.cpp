// The admin server over real loopback sockets, with a scripted AdminHandler. The client is
// blocking, every read bounded by a 5 s timeout, so a server bug fails a test instead of hanging
// it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "proxy/admin/admin_server.h"

namespace certrelay::admin {

namespace test {
// log_capture_test.cpp: what the admin code logged.
std::vector<std::string> loggedLines();
bool logged(const std::string& line);
}  // namespace test

namespace {

class FakeHandler final : public AdminHandler {
 public:
  std::vector<Check> liveness() override {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (throwing_) {
      throw std::runtime_error("boom");
    }
    return live_;
  }
  std::vector<Check> readiness() override {
    const std::lock_guard<std::mutex> lock(mutex_);
    return ready_;
  }
  std::string metrics() override {
    const std::lock_guard<std::mutex> lock(mutex_);
    return metrics_;
  }
  void drain() override { ++drains; }
  void reload() override { ++reloads; }

  void setLiveness(std::vector<Check> checks) {
    const std::lock_guard<std::mutex> lock(mutex_);
    live_ = std::move(checks);
  }
  void setReadiness(std::vector<Check> checks) {
    const std::lock_guard<std::mutex> lock(mutex_);
    ready_ = std::move(checks);
  }
  void setMetrics(std::string text) {
    const std::lock_guard<std::mutex> lock(mutex_);
    metrics_ = std::move(text);
  }
  void setThrowing(bool throwing) {
    const std::lock_guard<std::mutex> lock(mutex_);
    throwing_ = throwing;
  }

  std::atomic<int> drains{0};
  std::atomic<int> reloads{0};

 private:
  std::mutex mutex_;
  std::vector<Check> live_{{"ping", true, ""}};
  std::vector<Check> ready_{{"certificate", true, ""}, {"backend", true, ""}};
  std::string metrics_ = "# TYPE certrelay_up gauge\ncertrelay_up 1\n";
  bool throwing_ = false;
};

config::Admin loopbackAdmin(std::uint16_t port = 0) {
  config::Admin admin;
  admin.enabled = true;
  admin.address = config::Endpoint{"127.0.0.1", port};
  return admin;
}

std::unique_ptr<AdminServer> startAdmin(AdminHandler& handler, const AdminLimits& limits = {}) {
  std::string error;
  auto server = AdminServer::start(loopbackAdmin(), handler, error, limits);
  if (!server) {
    throw std::runtime_error("admin server did not start: " + error);
  }
  return server;
}

// A connected blocking client socket, closed on destruction.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      throw std::runtime_error("socket failed");
    }
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect failed");
    }
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        throw std::runtime_error("send failed");
      }
      sent += static_cast<std::size_t>(n);
    }
  }

  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    std::string header(const std::string& name) const {
      const auto it = headers.find(name);
      return it == headers.end() ? std::string() : it->second;
    }
  };

  // One response; `head`: the answer to a HEAD (no body whatever Content-Length says).
  Response read(bool head = false) {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) {
        throw std::runtime_error("connection ended before a response head: '" + buffer_ + "'");
      }
    }
    Response response = parseHead(buffer_.substr(0, end));
    buffer_.erase(0, end + 4);
    const std::size_t length = head ? 0 : std::stoul(response.header("content-length"));
    while (buffer_.size() < length) {
      if (!fill()) {
        throw std::runtime_error("connection ended inside a body");
      }
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  Response request(const std::string& raw, bool head = false) {
    send(raw);
    return read(head);
  }

  // True when the server closed (EOF or reset) with nothing more to read; false when bytes came
  // or nothing happened within the receive timeout.
  bool closedByServer() {
    if (!buffer_.empty()) {
      return false;
    }
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  int fd() const { return fd_; }

 private:
  bool fill() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  static Response parseHead(const std::string& head) {
    Response response;
    std::size_t lineEnd = head.find("\r\n");
    const std::string statusLine = head.substr(0, lineEnd);
    response.status = std::stoi(statusLine.substr(statusLine.find(' ') + 1, 3));
    while (lineEnd != std::string::npos) {
      const std::size_t start = lineEnd + 2;
      lineEnd = head.find("\r\n", start);
      const std::string line = head.substr(start, lineEnd - start);
      const std::size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      response.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    return response;
  }

  int fd_ = -1;
  std::string buffer_;
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

}  // namespace

TEST_CASE("admin: GET /livez is 200 ok, or 503 naming the failing check") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  Client::Response r = client.request(get("/livez"));
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  CHECK(r.header("content-type") == "text/plain; charset=utf-8");
  CHECK(r.header("cache-control") == "no-store");
  CHECK(test::logged("admin: listening on 127.0.0.1:" + std::to_string(server->port())));

  handler.setLiveness({{"ping", true, ""}, {"worker-1", false, "loop stalled for 12s"}});
  r = client.request(get("/livez"));
  CHECK(r.status == 503);
  CHECK(r.body == "[+]ping ok\n[-]worker-1 failed: loop stalled for 12s\nlivez check failed\n");
}

TEST_CASE("admin: /healthz is an alias of /livez") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  CHECK(client.request(get("/healthz")).body == "ok\n");
  handler.setLiveness({{"worker-0", false, "stuck"}});
  const Client::Response r = client.request(get("/healthz"));
  CHECK(r.status == 503);
  CHECK(r.body == "[-]worker-0 failed: stuck\nhealthz check failed\n");
}

TEST_CASE("admin: /readyz, and ?verbose lists every check Kubernetes style") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  Client::Response r = client.request(get("/readyz"));
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");

  r = client.request(get("/readyz?verbose"));
  CHECK(r.status == 200);
  CHECK(r.body == "[+]certificate ok\n[+]backend ok\nreadyz check passed\n");

  handler.setReadiness(
      {{"certificate", true, ""}, {"backend", false, "connect: connection refused"}});
  r = client.request(get("/readyz?verbose"));
  CHECK(r.status == 503);
  CHECK(r.body ==
        "[+]certificate ok\n[-]backend failed: connect: connection refused\nreadyz check failed\n");
  // Not verbose, a failure still says which check failed and why.
  r = client.request(get("/readyz"));
  CHECK(r.status == 503);
  CHECK(r.body.find("[-]backend failed: connect: connection refused\n") != std::string::npos);
  CHECK(client.request(get("/readyz?a=1&verbose=1")).body.find("[+]certificate ok\n") == 0);
}

TEST_CASE("admin: a check's text is kept to one line") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  handler.setReadiness({{"back\nend", false, "line one\r\n[+]forged ok"}});
  const Client::Response r = client.request(get("/readyz"));
  CHECK(r.body == "[-]back?end failed: line one??[+]forged ok\nreadyz check failed\n");
}

TEST_CASE("admin: /metrics carries the Prometheus content type and the handler's text") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  const Client::Response r = client.request(get("/metrics"));
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r.body == "# TYPE certrelay_up gauge\ncertrelay_up 1\n");
}

TEST_CASE("admin: POST /drain and /reload are 202 and reach the handler") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  Client::Response r =
      client.request("POST /drain HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  CHECK(r.status == 202);
  CHECK(r.body == "draining\n");
  CHECK(handler.drains == 1);
  // Who asked for a drain is logged (a probe is not).
  const std::vector<std::string> lines = test::loggedLines();
  CHECK(std::count_if(lines.begin(), lines.end(), [](const std::string& line) {
          return line.rfind("admin: drain requested by 127.0.0.1:", 0) == 0;
        }) >= 1);
  r = client.request("POST /reload HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(r.status == 202);
  CHECK(r.body == "reloading\n");
  CHECK(handler.reloads == 1);
  // A small body is read and ignored.
  r = client.request("POST /reload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(r.status == 202);
  CHECK(handler.reloads == 2);
}

TEST_CASE("admin: an unknown path is 404, a wrong method 405 with Allow") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  CHECK(client.request(get("/")).status == 404);
  CHECK(client.request(get("/livez/")).status == 404);
  CHECK(client.request(get("/drainage")).status == 404);

  Client::Response r = client.request(get("/drain"));
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "POST");
  CHECK(handler.drains == 0);
  r = client.request("POST /livez HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "GET, HEAD");
  r = client.request("DELETE /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "GET, HEAD");
  // Still the same connection: 404 and 405 keep it open.
  CHECK(client.request(get("/livez")).status == 200);
}

TEST_CASE("admin: HEAD has the GET's status and headers and no body") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  Client::Response r = client.request("HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n", true);
  CHECK(r.status == 200);
  CHECK(r.header("content-length") == std::to_string(handler.metrics().size()));
  CHECK(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  handler.setReadiness({{"backend", false, "down"}});
  r = client.request("HEAD /readyz HTTP/1.1\r\nHost: t\r\n\r\n", true);
  CHECK(r.status == 503);
  // Had a body been sent after the HEAD's head, this would read it instead of the answer.
  r = client.request(get("/livez"));
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  CHECK(client.request("HEAD /drain HTTP/1.1\r\nHost: t\r\n\r\n", true).status == 405);
}

TEST_CASE("admin: keep-alive serves several requests; Connection: close is honoured") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  Client::Response r = client.request(get("/livez"));
  CHECK(r.status == 200);
  CHECK(r.header("connection").empty());
  r = client.request(get("/readyz"));
  CHECK(r.status == 200);
  r = client.request(get("/metrics", "Connection: close\r\n"));
  CHECK(r.status == 200);
  CHECK(r.header("connection") == "close");
  CHECK(client.closedByServer());
}

TEST_CASE("admin: HTTP/1.0 closes unless it asks for keep-alive") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  {
    Client client(server->port());
    const Client::Response r = client.request("GET /livez HTTP/1.0\r\n\r\n");
    CHECK(r.status == 200);
    CHECK(r.header("connection") == "close");
    CHECK(client.closedByServer());
  }
  Client client(server->port());
  Client::Response r = client.request("GET /livez HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(r.header("connection") == "keep-alive");
  r = client.request("GET /readyz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(r.status == 200);
}

TEST_CASE("admin: a request split into one-byte writes") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  int one = 1;
  ::setsockopt(client.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const std::string request =
      "POST /drain?x=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nX-Padding: abc\r\n\r\nxyz";
  for (const char c : request) {
    client.send(std::string(1, c));
  }
  const Client::Response r = client.read();
  CHECK(r.status == 202);
  CHECK(handler.drains == 1);
}

TEST_CASE("admin: pipelined requests are answered one by one, in order") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  client.send(get("/livez") + get("/nope") + "HEAD /readyz HTTP/1.1\r\nHost: t\r\n\r\n" +
              get("/metrics", "Connection: close\r\n") + get("/livez"));
  CHECK(client.read().status == 200);
  CHECK(client.read().status == 404);
  CHECK(client.read(true).status == 200);
  const Client::Response last = client.read();
  CHECK(last.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(last.header("connection") == "close");
  // The request after the one that said close is not answered.
  CHECK(client.closedByServer());
}

TEST_CASE("admin: a request head over 8 KiB is 431 and the connection closes") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  // Exactly 8 KiB of request line and headers is accepted...
  const std::string base = get("/livez", "X-Fill: \r\n");
  std::string fits = get("/livez", "X-Fill: " + std::string(8192 - base.size(), 'a') + "\r\n");
  REQUIRE(fits.size() == 8192);
  {
    Client client(server->port());
    CHECK(client.request(fits).status == 200);
  }
  // ... one byte more is not, whether it comes at once or in pieces.
  const std::string over =
      get("/livez", "X-Fill: " + std::string(8193 - base.size(), 'a') + "\r\n");
  {
    Client client(server->port());
    const Client::Response r = client.request(over);
    CHECK(r.status == 431);
    CHECK(r.header("connection") == "close");
    CHECK(client.closedByServer());
  }
  {
    Client client(server->port());
    client.send(over.substr(0, 4000));
    client.send(over.substr(4000, 4000));
    client.send(over.substr(8000));
    CHECK(client.read().status == 431);
  }
  // A head that never ends is cut at the limit, not buffered: sent without reading the answer
  // first, so the server must answer while the client is still sending.
  Client client(server->port());
  client.send("GET /livez HTTP/1.1\r\nX-Endless: " + std::string(std::size_t{64} * 1024, 'b'));
  CHECK(client.read().status == 431);
}

TEST_CASE("admin: a body over 4 KiB is 413, with Content-Length or chunked") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  {
    Client client(server->port());
    client.send("POST /drain HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" +
                std::string(4096, 'x'));
    CHECK(client.read().status == 202);
  }
  {
    // Refused on the head alone: the body is never waited for.
    Client client(server->port());
    const Client::Response r =
        client.request("POST /drain HTTP/1.1\r\nHost: t\r\nContent-Length: 4097\r\n\r\n");
    CHECK(r.status == 413);
    CHECK(r.header("connection") == "close");
    CHECK(client.closedByServer());
  }
  {
    Client client(server->port());
    const std::string chunk = "800\r\n" + std::string(0x800, 'y') + "\r\n";
    client.send("POST /reload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk +
                chunk + chunk + "0\r\n\r\n");
    CHECK(client.read().status == 413);
  }
  CHECK(handler.drains == 1);
  CHECK(handler.reloads == 0);
}

TEST_CASE("admin: a malformed request is 400 and closes") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  for (const std::string& bad :
       {std::string("BLAH\r\n\r\n"), std::string("GET /livez HTTP/9.9x\r\n\r\n"),
        std::string("GET /livez HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("POST /drain HTTP/1.1\r\nContent-Length: 1x\r\n\r\n")}) {
    CAPTURE(bad);
    Client client(server->port());
    const Client::Response r = client.request(bad);
    CHECK(r.status == 400);
    CHECK(client.closedByServer());
  }
  CHECK(handler.drains == 0);
}

TEST_CASE("admin: the request deadline: 408 mid-request, a silent close when idle") {
  FakeHandler handler;
  AdminLimits limits;
  limits.requestDeadline = std::chrono::milliseconds(200);
  auto server = startAdmin(handler, limits);
  {
    Client client(server->port());
    client.send("GET /livez HTTP/1.1\r\nHost:");
    const Client::Response r = client.read();
    CHECK(r.status == 408);
    CHECK(client.closedByServer());
  }
  {
    // Idle after an answer: closed without a word.
    Client client(server->port());
    CHECK(client.request(get("/livez")).status == 200);
    CHECK(client.closedByServer());
  }
  Client client(server->port());
  CHECK(client.closedByServer());
}

TEST_CASE("admin: a handler that throws gives 500, and the server keeps serving") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client client(server->port());
  handler.setThrowing(true);
  CHECK(client.request(get("/livez")).status == 500);
  CHECK(test::logged("warning: admin: /livez: handler failed: boom"));
  handler.setThrowing(false);
  CHECK(client.request(get("/livez")).status == 200);
}

TEST_CASE("admin: at most 64 connections; the next one gets 503 and is closed") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 64; ++i) {
    clients.push_back(std::make_unique<Client>(server->port()));
    // An answer proves the server accepted this one before the next connects.
    REQUIRE(clients.back()->request(get("/livez")).status == 200);
  }
  {
    Client extra(server->port());
    const Client::Response r = extra.read();
    CHECK(r.status == 503);
    CHECK(r.body == "too many admin connections\n");
    CHECK(extra.closedByServer());
  }
  CHECK(test::logged("warning: admin: 64 connections open; refusing more until one closes"));
  // The 64 still work, and a slot freed is a slot usable again.
  CHECK(clients.front()->request(get("/readyz")).status == 200);
  clients.front()->send(get("/livez", "Connection: close\r\n"));
  CHECK(clients.front()->read().status == 200);
  CHECK(clients.front()->closedByServer());
  Client again(server->port());
  CHECK(again.request(get("/livez")).status == 200);
}

TEST_CASE("admin: stop() closes a connected client and joins; it is idempotent") {
  FakeHandler handler;
  auto server = startAdmin(handler);
  Client idle(server->port());
  Client busy(server->port());
  CHECK(busy.request(get("/livez")).status == 200);
  busy.send("GET /livez HTTP/1.1\r\n");  // half a request
  std::thread other([&] { server->stop(); });
  server->stop();
  other.join();
  CHECK(idle.closedByServer());
  CHECK(busy.closedByServer());
  server->stop();
  server.reset();  // the destructor stops again: nothing left to do
}

TEST_CASE("admin: an address in use is a start-up error that names it") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::uint16_t port = ntohs(addr.sin_port);

  FakeHandler handler;
  std::string error;
  auto server = AdminServer::start(loopbackAdmin(port), handler, error);
  CHECK(server == nullptr);
  CHECK(error ==
        "admin: cannot listen on 127.0.0.1:" + std::to_string(port) + ": address already in use");
  ::close(fd);

  config::Admin bad = loopbackAdmin();
  bad.address.host = "localhost";
  CHECK(AdminServer::start(bad, handler, error) == nullptr);
  CHECK(error == "admin: cannot listen on localhost:0: not a numeric IP address");
}

TEST_CASE("admin: IPv6 loopback, port 0 reports the kernel's port") {
  FakeHandler handler;
  config::Admin admin = loopbackAdmin();
  admin.address.host = "::1";
  std::string error;
  auto server = AdminServer::start(admin, handler, error);
  if (server == nullptr) {
    MESSAGE("no IPv6 loopback here: " << error);
    return;
  }
  CHECK(server->port() != 0);
}

}  // namespace certrelay::admin
