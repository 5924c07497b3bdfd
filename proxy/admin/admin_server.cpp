#include "proxy/admin/admin_server.h"

#include <http_parser.h>
#include <uv.h>

#include <algorithm>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>

#include "common/assert.h"
#include "proxy/admin/admin_routes.h"
#include "proxy/log.h"

namespace certrelay::admin {
namespace {

class Connection;

// After the last answer on a connection the server half-closes and reads (and drops) what the
// client still sends, for this long and up to this much, before closing: closing with unread
// bytes makes the kernel send a reset, which can destroy the answer before the client read it
// (an oversized request's 431 in particular).
constexpr std::chrono::milliseconds kLingerTime{2'000};
constexpr std::size_t kLingerBytes = std::size_t{64} * 1024;
constexpr std::size_t kReadBufferSize = std::size_t{16} * 1024;

std::string uvError(const char* what, int rc) {
  return std::string(what) + ": " + uv_strerror(rc);
}

// "127.0.0.1:9901" / "[::1]:9901" of a socket address, "unknown" when it has none.
std::string describe(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(addr);
    if (uv_ip4_name(&v4, host, sizeof host) == 0) {
      return std::string(host) + ":" + std::to_string(ntohs(v4.sin_port));
    }
  } else if (addr.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(addr);
    if (uv_ip6_name(&v6, host, sizeof host) == 0) {
      return "[" + std::string(host) + "]:" + std::to_string(ntohs(v6.sin6_port));
    }
  }
  return "unknown";
}

Method methodOf(unsigned method) {
  switch (method) {
    case HTTP_GET:
      return Method::Get;
    case HTTP_HEAD:
      return Method::Head;
    case HTTP_POST:
      return Method::Post;
    default:
      break;
  }
  return Method::Other;
}

}  // namespace

struct AdminServer::Impl {
  Impl(const config::Admin& adminConfig, AdminHandler& adminHandler, const AdminLimits& bounds)
      : config(adminConfig), handler(adminHandler), limits(bounds) {}

  [[nodiscard]] bool listen(std::string& error);
  void run();
  void onStop();
  void onConnection(int status);
  // A connection that no longer counts against the limit: it is closing, or lingering after
  // its last answer (and gone within kLingerTime).
  void retire(Connection* connection);
  void forget(Connection* connection);
  void closeLoop();

  const config::Admin config;
  AdminHandler& handler;
  const AdminLimits limits;
  http_parser_settings settings{};
  uv_loop_t loop{};
  uv_tcp_t listener{};
  uv_async_t stopAsync{};
  std::uint16_t port = 0;
  std::thread thread;
  std::mutex stopMutex;  // stop() from several threads: one sends and joins
  // Loop thread only.
  std::unordered_set<Connection*> connections;  // every open one, for stop()
  std::unordered_set<Connection*> active;       // those counted against the limit
  bool refusingLogged = false;
  char readBuffer[kReadBufferSize];
};

namespace {

// One accepted admin connection: reads one request at a time, answers it, and either waits for
// the next one (keep-alive) or half-closes and lingers. Owns itself: deleted once both of its
// handles are closed.
class Connection {
 public:
  explicit Connection(AdminServer::Impl& server) : server_(server) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
  }

  // Accepts the pending connection; on failure it closes (and deletes) itself.
  [[nodiscard]] bool accept(uv_stream_t* listener);
  void serve();
  // Over the connection limit: a short 503 (best effort, the socket buffer takes it) and close.
  void refuse();
  void close();

  static int onUrl(http_parser* parser, const char* at, std::size_t length);
  static int onHeadersComplete(http_parser* parser);
  static int onBody(http_parser* parser, const char* at, std::size_t length);
  static int onMessageComplete(http_parser* parser);

 private:
  enum class Phase { Reading, Writing, Lingering, Closing };

  static Connection* of(const uv_handle_t* handle) {
    return static_cast<Connection*>(handle->data);
  }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  [[nodiscard]] bool startReading();
  void stopReading();
  [[nodiscard]] bool armDeadline(std::chrono::milliseconds in);
  void onRead(ssize_t nread, const uv_buf_t* buf);
  void feed();
  void answer();
  void fail(int status);
  void send(const Response& response, const Framing& framing);
  void onWritten(int status);
  void nextRequest();
  void linger();
  void onDeadline();
  bool requestStarted() const { return headBytes_ > 0 || !inbox_.empty(); }
  std::string peer();

  AdminServer::Impl& server_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_write_t writeReq_{};
  uv_shutdown_t shutdownReq_{};
  bool tcpOpen_ = false;
  bool timerOpen_ = false;
  int openHandles_ = 0;  // handles closing, not yet closed
  bool reading_ = false;
  Phase phase_ = Phase::Reading;
  http_parser parser_{};
  std::string inbox_;   // received, not yet parsed (at most one read's worth)
  std::string url_;     // the request-target, in pieces from on_url
  std::string outbox_;  // the answer being written (one at a time)
  std::size_t headBytes_ = 0;
  std::size_t bodyBytes_ = 0;
  std::size_t lingered_ = 0;
  bool headDone_ = false;
  bool messageDone_ = false;
  bool tooLarge_ = false;
  bool keepAlive_ = false;
  bool closeAfterWrite_ = false;
};

bool Connection::accept(uv_stream_t* listener) {
  int rc = uv_tcp_init(&server_.loop, &tcp_);
  if (rc != 0) {
    log::warning(uvError("admin: accept: uv_tcp_init", rc));
    delete this;  // no handle to close
    return false;
  }
  tcp_.data = this;
  tcpOpen_ = true;
  rc = uv_timer_init(&server_.loop, &timer_);
  if (rc == 0) {
    timer_.data = this;
    timerOpen_ = true;
    rc = uv_accept(listener, stream());
  }
  if (rc != 0) {
    log::warning(uvError("admin: accept", rc));
    close();
    return false;
  }
  return true;
}

void Connection::serve() {
  if (!armDeadline(server_.limits.requestDeadline) || !startReading()) {
    close();
  }
}

void Connection::refuse() {
  static constexpr std::string_view kRefusal =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: 27\r\nConnection: close\r\n\r\ntoo many admin connections\n";
  uv_buf_t buf =
      uv_buf_init(const_cast<char*>(kRefusal.data()), static_cast<unsigned>(kRefusal.size()));
  // A partial or failed write only loses the courtesy: the close says the same.
  (void)uv_try_write(stream(), &buf, 1);
  close();
}

void Connection::close() {
  if (phase_ == Phase::Closing) {
    return;
  }
  phase_ = Phase::Closing;
  server_.forget(this);
  const uv_close_cb closed = [](uv_handle_t* handle) {
    Connection* self = of(handle);
    if (--self->openHandles_ == 0) {
      delete self;
    }
  };
  // Counted first: the callbacks run later, from the loop, never from uv_close itself.
  openHandles_ = (tcpOpen_ ? 1 : 0) + (timerOpen_ ? 1 : 0);
  if (tcpOpen_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), closed);
  }
  if (timerOpen_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), closed);
  }
}

bool Connection::startReading() {
  if (reading_) {
    return true;
  }
  const int rc = uv_read_start(
      stream(),
      [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
        // One buffer per loop: every read is consumed (copied to inbox_) before the next one.
        AdminServer::Impl& server = of(handle)->server_;
        *buf = uv_buf_init(server.readBuffer, sizeof server.readBuffer);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        of(reinterpret_cast<uv_handle_t*>(s))->onRead(nread, buf);
      });
  if (rc != 0) {
    log::warning(uvError("admin: uv_read_start", rc));
    return false;
  }
  reading_ = true;
  return true;
}

void Connection::stopReading() {
  if (reading_) {
    // uv_read_stop cannot fail on a TCP handle (it returns 0 always since libuv 1.0).
    (void)uv_read_stop(stream());
    reading_ = false;
  }
}

bool Connection::armDeadline(std::chrono::milliseconds in) {
  const int rc = uv_timer_start(
      &timer_, [](uv_timer_t* timer) { of(reinterpret_cast<uv_handle_t*>(timer))->onDeadline(); },
      static_cast<std::uint64_t>(in.count()), 0);
  if (rc != 0) {
    log::warning(uvError("admin: uv_timer_start", rc));
    return false;
  }
  return true;
}

void Connection::onRead(ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) {
    // UV_EOF or a reset: nothing more will come, and no answer can be owed that the client
    // still wants (one is only owed mid-request, and the client gave up on it).
    close();
    return;
  }
  if (phase_ == Phase::Lingering) {
    lingered_ += static_cast<std::size_t>(nread);
    if (lingered_ > kLingerBytes) {
      close();
    }
    return;
  }
  if (phase_ != Phase::Reading) {
    return;
  }
  inbox_.append(buf->base, static_cast<std::size_t>(nread));
  feed();
}

// Parses what has been received, one request at a time: the parser pauses at the end of the
// head (to check its size where it ends) and at the end of a message (so that pipelined
// requests wait in inbox_ while this one is answered).
void Connection::feed() {
  while (phase_ == Phase::Reading && !inbox_.empty()) {
    const bool inHead = !headDone_;
    const std::size_t parsed =
        http_parser_execute(&parser_, &server_.settings, inbox_.data(), inbox_.size());
    inbox_.erase(0, parsed);
    if (inHead) {
      // Paused in on_headers_complete, http_parser has not consumed the head's final LF yet
      // (it does on resuming, as a body byte): count it here.
      headBytes_ += parsed + (headDone_ ? 1 : 0);
    }
    const http_errno error = HTTP_PARSER_ERRNO(&parser_);
    if (error == HPE_PAUSED) {
      http_parser_pause(&parser_, 0);
    }
    if (inHead && headBytes_ > server_.limits.maxHead) {
      return fail(431);
    }
    if (error == HPE_HEADER_OVERFLOW) {
      return fail(431);
    }
    if (error != HPE_OK && error != HPE_PAUSED) {
      return fail(400);
    }
    if (tooLarge_) {
      return fail(413);
    }
    if (messageDone_) {
      return answer();
    }
    if (parser_.upgrade != 0) {
      return fail(400);  // an upgrade without a complete message: nothing to answer
    }
  }
}

void Connection::answer() {
  const Method method = methodOf(parser_.method);
  const bool isPost = method == Method::Post;
  const Response response = route(method, url_, isPost ? peer() : std::string(), server_.handler);
  Framing framing;
  framing.head = method == Method::Head;
  // An upgrade request (h2c, websocket) gets its answer and the end of the connection: what
  // follows on the wire is not HTTP/1.1 this server can read.
  framing.keepAlive = keepAlive_ && parser_.upgrade == 0;
  framing.http10 = parser_.http_major == 1 && parser_.http_minor == 0;
  send(response, framing);
}

void Connection::fail(int status) {
  Response response;
  response.status = status;
  switch (status) {
    case 408:
      response.body = "request timeout\n";
      break;
    case 413:
      response.body = "request body too large\n";
      break;
    case 431:
      response.body = "request header fields too large\n";
      break;
    default:
      response.body = "bad request\n";
      break;
  }
  Framing framing;
  framing.keepAlive = false;  // the parser's state is no longer trustworthy
  send(response, framing);
}

void Connection::send(const Response& response, const Framing& framing) {
  stopReading();
  phase_ = Phase::Writing;
  closeAfterWrite_ = !framing.keepAlive;
  outbox_ = serialize(response, framing);
  uv_buf_t buf = uv_buf_init(outbox_.data(), static_cast<unsigned>(outbox_.size()));
  writeReq_.data = this;
  const int rc = uv_write(&writeReq_, stream(), &buf, 1, [](uv_write_t* req, int status) {
    static_cast<Connection*>(req->data)->onWritten(status);
  });
  if (rc != 0) {
    close();
    return;
  }
  // A client that does not read its answer holds the connection no longer than a request may.
  if (!armDeadline(server_.limits.requestDeadline)) {
    close();
  }
}

void Connection::onWritten(int status) {
  if (phase_ == Phase::Closing) {
    return;  // UV_ECANCELED from close(): nothing to do
  }
  if (status != 0) {
    close();
    return;
  }
  outbox_.clear();
  if (closeAfterWrite_) {
    linger();
  } else {
    nextRequest();
  }
}

void Connection::nextRequest() {
  phase_ = Phase::Reading;
  url_.clear();
  headBytes_ = 0;
  bodyBytes_ = 0;
  headDone_ = false;
  messageDone_ = false;
  tooLarge_ = false;
  keepAlive_ = false;
  if (!armDeadline(server_.limits.requestDeadline) || !startReading()) {
    close();
    return;
  }
  feed();  // a pipelined request may be waiting already
}

void Connection::linger() {
  phase_ = Phase::Lingering;
  server_.retire(this);
  inbox_.clear();
  shutdownReq_.data = this;
  const int rc = uv_shutdown(&shutdownReq_, stream(), [](uv_shutdown_t* req, int status) {
    auto* self = static_cast<Connection*>(req->data);
    if (status != 0 && self->phase_ != Phase::Closing) {
      self->close();
    }
  });
  if (rc != 0 || !armDeadline(std::min(kLingerTime, server_.limits.requestDeadline)) ||
      !startReading()) {
    close();
  }
}

void Connection::onDeadline() {
  if (phase_ == Phase::Reading && requestStarted()) {
    fail(408);
    return;
  }
  close();  // idle between requests, an answer not read, or lingering done
}

std::string Connection::peer() {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return "unknown";
  }
  return describe(addr);
}

int Connection::onUrl(http_parser* parser, const char* at, std::size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  // Bounded by the head limit: feed() checks it after every read, before more is appended.
  self->url_.append(at, length);
  return 0;
}

int Connection::onHeadersComplete(http_parser* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->headDone_ = true;
  if ((parser->flags & F_CONTENTLENGTH) != 0 &&
      parser->content_length > self->server_.limits.maxBody) {
    self->tooLarge_ = true;  // answered at once: no reason to read a body that is refused
  }
  http_parser_pause(parser, 1);
  return 0;
}

int Connection::onBody(http_parser* parser, const char*, std::size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  self->bodyBytes_ += length;
  if (self->bodyBytes_ > self->server_.limits.maxBody) {
    self->tooLarge_ = true;  // a chunked body: its size is only known as it comes
    http_parser_pause(parser, 1);
  }
  return 0;
}

int Connection::onMessageComplete(http_parser* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->messageDone_ = true;
  self->keepAlive_ = http_should_keep_alive(parser) != 0;
  http_parser_pause(parser, 1);
  return 0;
}

}  // namespace

bool AdminServer::Impl::listen(std::string& error) {
  http_parser_settings_init(&settings);
  settings.on_url = &Connection::onUrl;
  settings.on_headers_complete = &Connection::onHeadersComplete;
  settings.on_body = &Connection::onBody;
  settings.on_message_complete = &Connection::onMessageComplete;

  const std::string where = "admin: cannot listen on " + config.address.toString() + ": ";
  sockaddr_storage addr{};
  if (uv_ip4_addr(config.address.host.c_str(), config.address.port,
                  reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(config.address.host.c_str(), config.address.port,
                  reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    error = where + "not a numeric IP address";
    return false;
  }
  int rc = uv_tcp_init(&loop, &listener);
  if (rc != 0) {
    error = where + uv_strerror(rc);
    return false;
  }
  listener.data = this;
  rc = uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) {
    // libuv reports a bind's EADDRINUSE from listen.
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 128, [](uv_stream_t* s, int status) {
      static_cast<Impl*>(s->data)->onConnection(status);
    });
  }
  if (rc != 0) {
    error = where + uv_strerror(rc);
    return false;
  }
  int len = sizeof addr;
  rc = uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) {
    error = where + "getsockname: " + uv_strerror(rc);
    return false;
  }
  port = ntohs(addr.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(addr).sin_port
                                         : reinterpret_cast<sockaddr_in6&>(addr).sin6_port);
  rc = uv_async_init(&loop, &stopAsync,
                     [](uv_async_t* async) { static_cast<Impl*>(async->data)->onStop(); });
  if (rc != 0) {
    error = uvError("admin: uv_async_init", rc);
    return false;
  }
  stopAsync.data = this;
  return true;
}

void AdminServer::Impl::onConnection(int status) {
  if (status != 0) {
    log::warning(uvError("admin: accept", status));
    return;
  }
  auto* connection = new Connection(*this);
  if (!connection->accept(reinterpret_cast<uv_stream_t*>(&listener))) {
    return;
  }
  if (active.size() >= limits.maxConnections) {
    if (!refusingLogged) {
      log::warning("admin: " + std::to_string(limits.maxConnections) +
                   " connections open; refusing more until one closes");
      refusingLogged = true;
    }
    connection->refuse();
    return;
  }
  connections.insert(connection);
  active.insert(connection);
  connection->serve();
}

void AdminServer::Impl::retire(Connection* connection) {
  if (active.erase(connection) > 0 && active.size() < limits.maxConnections) {
    refusingLogged = false;
  }
}

void AdminServer::Impl::forget(Connection* connection) {
  retire(connection);
  connections.erase(connection);
}

void AdminServer::Impl::onStop() {
  // close() removes the connection from the set: iterate over a copy.
  const std::vector<Connection*> open(connections.begin(), connections.end());
  for (Connection* connection : open) {
    connection->close();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&stopAsync), nullptr);
}

void AdminServer::Impl::run() {
  // Returns once onStop closed every handle and their close callbacks ran.
  const int rc = uv_run(&loop, UV_RUN_DEFAULT);
  if (rc != 0) {
    log::warning("admin: the loop ended with handles still active");
  }
}

// Closes whatever handle is still open (after a failed start, or a bug) and then the loop.
void AdminServer::Impl::closeLoop() {
  uv_walk(
      &loop,
      [](uv_handle_t* handle, void*) {
        if (uv_is_closing(handle) == 0) {
          uv_close(handle, nullptr);
        }
      },
      nullptr);
  // Runs the close callbacks; nothing else is left to run.
  (void)uv_run(&loop, UV_RUN_DEFAULT);
  const int rc = uv_loop_close(&loop);
  if (!CERTRELAY_ASSERT(rc == 0)) {
    log::error(uvError("admin: uv_loop_close", rc));
  }
}

std::unique_ptr<AdminServer> AdminServer::start(const config::Admin& config, AdminHandler& handler,
                                                std::string& error, const AdminLimits& limits) {
  auto impl = std::make_unique<Impl>(config, handler, limits);
  const int rc = uv_loop_init(&impl->loop);
  if (rc != 0) {
    error = uvError("admin: uv_loop_init", rc);
    return nullptr;
  }
  if (!impl->listen(error)) {
    impl->closeLoop();
    return nullptr;
  }
  Impl* raw = impl.get();
  try {
    impl->thread = std::thread([raw] { raw->run(); });
  } catch (const std::system_error& e) {
    error = std::string("admin: cannot start its thread: ") + e.what();
    impl->closeLoop();
    return nullptr;
  }
  log::info("admin: listening on " + config::Endpoint{config.address.host, impl->port}.toString());
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() {
  stop();
}

std::uint16_t AdminServer::port() const {
  return impl_->port;
}

void AdminServer::stop() {
  const std::lock_guard<std::mutex> lock(impl_->stopMutex);
  if (!impl_->thread.joinable()) {
    return;
  }
  if (!CERTRELAY_ASSERT(impl_->thread.get_id() != std::this_thread::get_id())) {
    return;  // called from a handler: joining would wait for itself forever
  }
  const int rc = uv_async_send(&impl_->stopAsync);
  if (!CERTRELAY_ASSERT(rc == 0)) {
    log::error(uvError("admin: stop: uv_async_send", rc));
    return;
  }
  impl_->thread.join();
  impl_->closeLoop();
}

}  // namespace certrelay::admin
