#pragma once
// One client connection: the glue between a smtp::Dialogue (every SMTP rule) and the I/O it
// needs: the client socket, the session timer, the TLS engine, write corking, backpressure, one
// teardown, and the BackendConnection the dialogue asks for.
//
// Ownership, stated once:
// - A Session owns itself: it is created by accept() and deletes itself from the close callback
//   of its last libuv handle, so no libuv callback ever runs on a freed session. The Worker's set
//   is a registry of live sessions (for drain and the shutdown deadline), not an owner.
// - The Session owns its BackendConnection while attached (backend_). closeBackend() detaches
//   it; from then on the connection owns itself, finishes (QUIT, close) and deletes itself.
// - The Session owns its tls::Engine; the dialogue holds a pointer to the engine's PeerFacts,
//   valid for the session's lifetime.

#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "config/config.h"
#include "policy/networks.h"
#include "proxy/backend_connection.h"
#include "proxy/client_limits.h"
#include "proxy/metrics.h"
#include "proxy/net_util.h"
#include "proxy/reverse_dns.h"
#include "proxy/smtp/dialogue.h"
#include "tls/engine.h"

namespace certrelay::proxy {

class Worker;

class Session final : public smtp::DialogueHost, public BackendEvents, public ReverseDns::Handler {
 public:
  // Takes over `fd`, a connection accepted on a socket of `listener`. `proxyNetworks`:
  // the peers that may send a PROXY protocol header (listener.proxy_protocol), else null.
  static void accept(Worker& worker, const config::Listener& listener,
                     const policy::NetworkList* proxyNetworks, int fd);

  // Graceful stop: an idle session is told 421 4.3.2 at once, a busy one when it is done.
  // `fast`: only a message in flight is waited for (smtp::Dialogue::drain).
  void drain(bool fast);
  // Shutdown deadline passed: close now, whatever the state.
  void forceClose();

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

 private:
  Session(Worker& worker, const config::Listener& listener,
          const policy::NetworkList* proxyNetworks);
  ~Session() override;

  // --- client transport ---
  void start();
  // The addresses are known (from the socket, or from the PROXY header): log the connection,
  // greet (or start implicit TLS).
  void beginDialogue();
  void onClientRead(ssize_t nread, const uv_buf_t* buf);
  // A read's bytes once the dialogue exists: to the TLS engine, or to the dialogue.
  void consumeClientBytes(std::string_view bytes);
  void onPlaintext(std::string_view bytes);
  // Ciphertext from the client through the engine, and the plaintext on to the dialogue.
  void pumpTls(std::string_view ciphertext);
  void startClientWrite();
  // While corked, replies collect in out_: what one read (of the client or of the backend)
  // produces for the client leaves in one write, e.g. the TLS ticket with the EHLO reply, or a
  // 221 with its close_notify.
  void uncorkClient();
  void onClientWriteDone(int status);
  void updateReading();
  void onTimer();
  void teardown(const char* reason);
  void onHandleClosed();
  // The TLS handshake ended: established (`ok`), failed, or abandoned by the teardown (metrics).
  void handshakeEnded(bool ok);
  // Counts this connection in the per-client limits (limits.client_connections and
  // _connection_rate); the limit it is over, if any, with the count.
  std::optional<std::pair<smtp::ClientLimit, std::uint64_t>> countConnection();
  // The per-client table had no room: counted and, now and then, logged.
  void clientTableFull();

  // --- PROXY protocol (session_proxy_header.cpp) ---
  // Before the greeting on a proxy_protocol listener: refuses a peer outside proxy_networks,
  // else waits (timeouts.proxy_header) for the header.
  void awaitProxyHeader();
  void onProxyHeaderBytes(std::string_view bytes);
  void refuseProxyConnection(std::string_view why);

  // --- smtp::DialogueHost: the dialogue's actions ---
  void sendToClient(std::string_view wire) override;
  void startTls() override;
  void armTimer(std::chrono::milliseconds timeout) override;
  void closeClient() override;
  bool openBackend(const smtp::ClientIdentity& identity, bool early) override;
  void closeBackend() override;
  void backendCommand(std::string_view line, smtp::BackendPurpose purpose,
                      smtp::Ticket ticket) override;
  void backendMail(std::string_view line, smtp::Ticket ticket, std::string_view ident,
                   std::string_view proto) override;
  void backendContent(std::string_view bytes, smtp::ContentTiming timing) override;
  std::string* backendContentBuffer() override;
  void backendContentAppended(std::size_t bytes) override;
  void backendEndContent(std::string_view lastBytes, smtp::Ticket ticket) override;
  void log(log::Level level, std::string_view message, std::span<const log::Field> fields) override;
  std::shared_ptr<const policy::Policy> policy() override;
  std::shared_ptr<const smtp::Capabilities> backendCapabilities() override;
  std::time_t wallClock() override;
  std::uint64_t monotonicMs() override;
  bool underStress() override;
  std::uint64_t countRate(smtp::RateEvent event, bool identity, std::string_view key) override;
  void outcome(smtp::Outcome what, std::string_view identity, std::uint64_t bytes) override;

  // --- BackendEvents ---
  void onBackendReady(const smtp::Capabilities& capabilities) override;
  void onBackendReply(smtp::BackendPurpose purpose, smtp::Ticket ticket,
                      const smtp::Reply& reply) override;
  void onBackendFailure(smtp::BackendFailure failure, const std::string& detail) override;
  void onBackendWritable() override;
  void onBackendReadBegin() override { ++clientCork_; }
  void onBackendReadEnd() override { uncorkClient(); }
  void onBackendIdle() override;

  // --- ReverseDns::Handler: the client's name (dns.reverse_lookup) ---
  void onClientName(const smtp::ClientName& name) override;

  Worker& worker_;
  const config::Config& config_;
  const config::Listener& listener_;
  Metrics* metrics_;                          // null: nothing is counted
  const Metrics::Listener* listenerMetrics_;  // null without metrics
  std::string id_;
  PeerAddress peer_;   // the client (from the PROXY header on such listeners); its name once known
  PeerAddress local_;  // the address the client connected to (likewise)

  const policy::NetworkList* proxyNetworks_;  // null: the listener takes no PROXY header
  bool awaitingProxyHeader_ = false;
  std::string proxyBuffer_;  // what came so far of the header (bounded by its maximum size)
  std::string proxyPeer_;    // the balancer's address, when a header named another client

  uv_tcp_t client_{};
  uv_timer_t timer_{};
  uv_write_t writeReq_{};
  int openHandles_ = 0;
  bool reading_ = false;
  bool closeAfterFlush_ = false;  // closing: the last bytes are flushed, nothing more is read
  bool tornDown_ = false;
  std::string out_;       // bytes (ciphertext under TLS) waiting for the write in flight
  std::string inflight_;  // bytes of the write in flight
  int clientCork_ = 0;    // > 0: startClientWrite() waits (see uncorkClient)

  tls::ContextPtr tlsContext_;        // the snapshot this session started with
  std::unique_ptr<tls::Engine> tls_;  // set from the 220 to STARTTLS on
  std::uint64_t tlsStarted_ = 0;      // uv_hrtime() at startTls()
  bool handshakeOpen_ = false;        // started, not yet counted as ended
  BackendConnection* backend_ = nullptr;
  // Per-client limits: null when none is configured or the client is exempt.
  ClientLimits* clientLimits_ = nullptr;
  std::int64_t clientSlot_ = -1;  // this connection's slot in clientLimits_ (-1: not counted)
  std::optional<smtp::Dialogue> dialogue_;  // constructed once the addresses are known
  // The reverse lookup of peer_ while it runs (started with the dialogue); null before, after
  // its outcome, and when lookups are off.
  ReverseDns::Lookup* lookup_ = nullptr;
};

}  // namespace certrelay::proxy
