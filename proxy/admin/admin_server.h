#pragma once
// The admin endpoint: a small HTTP/1.1 server for probes, metrics, drain and reload.
//
// It runs on its own libuv loop and thread, so a stuck worker loop never delays a probe: the
// answer to /livez must come from a thread that is not the one being judged. The rest of the
// process is reached only through AdminHandler, whose methods run on the admin thread.
//
// Routes (HEAD works wherever GET does):
//   GET  /livez, /healthz   200 "ok\n"; 503 with every check, Kubernetes style ([+]/[-] lines)
//   GET  /readyz            the same for readiness; ?verbose lists every check also on success
//   GET  /metrics           200, Prometheus text exposition 0.0.4
//   POST /drain             202 "draining\n"  (the handler does the work)
//   POST /reload            202 "reloading\n"
//   anything else           404; a known path with the wrong method 405 with Allow
//
// Strict and bounded, because it listens on a network port that an orchestrator (not a person)
// talks to: the request line and headers at most AdminLimits::maxHead bytes (431), bodies read
// and ignored up to maxBody bytes (413 beyond), one deadline per request (408), at most
// maxConnections open at once (503 and close for the next one); an idle keep-alive connection
// is closed after the same deadline. Requests are parsed by http_parser; one request is answered
// at a time per connection (pipelined requests wait), so a client that does not read its
// answers cannot make the server queue more of them.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace certrelay::admin {

// One named check of liveness or readiness. `detail` says why it failed (empty: no reason).
struct Check {
  std::string name;
  bool ok = false;
  std::string detail;
  // Shown with ?verbose, never decides the status (one of several backends being down).
  bool informational = false;
};

// The process side. Every method is called on the admin thread, one at a time; the implementer
// makes them safe against its own threads. None may block for long: a probe times out.
class AdminHandler {
 public:
  virtual ~AdminHandler() = default;
  virtual std::vector<Check> liveness() = 0;   // all ok = live
  virtual std::vector<Check> readiness() = 0;  // all ok = ready
  virtual std::string metrics() = 0;           // Prometheus text exposition
  virtual void drain() = 0;
  virtual void reload() = 0;
};

// The bounds. The defaults are the product's; tests shorten the deadline.
struct AdminLimits {
  std::size_t maxHead = std::size_t{8} * 1024;        // request line + headers, CRLFs included
  std::size_t maxBody = std::size_t{4} * 1024;        // ignored body bytes; more is 413
  std::chrono::milliseconds requestDeadline{10'000};  // whole request read; also each answer
  std::size_t maxConnections = 64;
};

class AdminServer {
 public:
  // Binds and listens before returning (so "address in use" is a start-up error, in `error`,
  // e.g. "admin: cannot listen on 127.0.0.1:9901: address already in use"), then serves on a
  // thread of its own. nullptr on failure. `handler` must outlive the server.
  static std::unique_ptr<AdminServer> start(const config::Admin& config, AdminHandler& handler,
                                            std::string& error, const AdminLimits& limits = {});

  // Stops and joins.
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound port (the kernel's choice when the config says 0).
  std::uint16_t port() const;

  // Closes the listener and every connection, ends the thread and joins it. Thread-safe and
  // idempotent; not from an AdminHandler method (the admin thread cannot join itself).
  void stop();

  struct Impl;  // admin_server.cpp

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace certrelay::admin
