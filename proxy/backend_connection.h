#pragma once
// One connection from the proxy to the backend MTA, and the identity handshake on it.
//
// Security role: the backend must never see a session under the proxy's own (possibly trusted)
// address. In Session mode the connection becomes ready only after the backend accepted one
// XCLIENT carrying the real client (ADDR last); a backend that does not offer XCLIENT or refuses
// it is a configuration error reported as a failure, never a silent fallback.
//
// Flow: connect -> 220 greeting -> EHLO <proxy name> -> (Session) XCLIENT ... -> 220/250 ->
// EHLO <client helo> -> ready. With backend.tls = "starttls", STARTTLS -> 220 -> handshake ->
// EHLO <proxy name> again follow the first EHLO, and only the second EHLO's capabilities count;
// with "implicit", the handshake comes first, right after connect (proxy/backend_tls.h: no
// plaintext fallback, ever). Commands the session sends before that are queued and flushed
// once ready, keeping RFC 2920's rules as a client: a sync-point command (DATA, QUIT; every
// command and the end of data when the backend lacks PIPELINING) is the last of its group.
//
// Failover: a connection is given the backend addresses to try, in order. A failure before it
// is ready (connect refused or timed out, greeting or EHLO refused, XCLIENT not offered) moves on
// to the next address with the commands queued so far kept: nothing was written for them yet, so
// the client sees nothing of it. Only when the last address failed too is the failure reported.
//
// Lifetime: created with start(), owned by whoever attached it (its BackendEvents) until
// detachAndClose() or a failure; from then on it owns itself, finishes on its own (QUIT, close)
// and deletes itself from its last libuv close callback.

#include <uv.h>

#include <atomic>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "proxy/backend_set.h"
#include "proxy/backend_tls.h"
#include "proxy/smtp/backend_events.h"
#include "proxy/smtp/capabilities.h"
#include "proxy/smtp/fifo.h"
#include "proxy/smtp/identity_handoff.h"
#include "proxy/smtp/reply.h"
#include "proxy/smtp/xclient.h"

namespace certrelay::proxy {

class Metrics;

using smtp::BackendFailure;
using smtp::BackendPurpose;

// What a BackendConnection tells the one who attached it (a Session, or the capability probe).
class BackendEvents {
 public:
  virtual ~BackendEvents() = default;
  virtual void onBackendReady(const smtp::Capabilities& capabilities) = 0;
  virtual void onBackendReply(BackendPurpose purpose, std::uint64_t tag,
                              const smtp::Reply& reply) = 0;
  // After this call the connection is closing and owns itself; drop the pointer. Every reply
  // still owed will never come. Only ever called from the connection's own libuv callbacks,
  // never from inside one of its send methods.
  virtual void onBackendFailure(BackendFailure failure, const std::string& detail) = 0;
  // The outgoing buffer fell below the low watermark (resume reading the client).
  virtual void onBackendWritable() = 0;
  // Bracket the replies delivered from one read of the backend socket, so that they can be
  // answered with one write. End is called even if the listener detached meanwhile (the
  // connection is only destroyed in a later loop turn).
  virtual void onBackendReadBegin() {}
  virtual void onBackendReadEnd() {}
  // The connection has been ready with nothing outstanding for timeouts.backend_idle. The
  // listener may drop it (it is not closed otherwise).
  virtual void onBackendIdle() {}
};

class BackendConnection {
 public:
  enum class Mode : std::uint8_t {
    Session,  // full identity handshake, then forward commands
    Probe,    // greeting and EHLO only, to learn the capabilities; ready = probe done
  };

  // `targets`: the addresses to try, in order (Probe mode: one); empty = a failure
  // (Unreachable) reported from a later loop turn. `metrics` (may be null) times the connection
  // from connect to ready. `tls`: the backend TLS generation (SharedState::backendTls) when
  // backend.tls is set; null there fails every connection (never plaintext).
  static BackendConnection* start(
      uv_loop_t* loop, const config::Config& config, BackendEvents* listener, Mode mode,
      std::vector<BackendAddress> targets, smtp::ClientIdentity identity, std::string logId,
      Metrics* metrics = nullptr,
      const std::atomic<config::IdentityMode>* identityInForce = nullptr,
      tls::ClientContextPtr tls = nullptr);

  // The address this connection uses (or tried last): "127.0.0.1:2525"; "" without any.
  std::string address() const;

  // Queues a command line (without CR LF). Its reply goes to onBackendReply with `tag`.
  void sendCommand(std::string_view line, BackendPurpose purpose, std::uint64_t tag);
  // MAIL FROM: in XFORWARD mode it is preceded by XFORWARD carrying the client, `proto` (RFC 3848
  // name, e.g. ESMTPSA) and `ident` (the proxy's message id).
  void sendMail(std::string_view line, std::uint64_t tag, std::string_view ident,
                std::string_view proto);
  // Raw bytes that belong right after the most recently submitted command: message content
  // after the 354, or a BDAT chunk after its BDAT line (held with that line while it is queued).
  void sendContent(std::string_view bytes);
  // As sendContent, but the bytes wait for the next write instead of causing one: content
  // that is known to be followed by more (the proxy's Received header before the client's).
  void holdContent(std::string_view bytes);
  // The write buffer itself, for content appended in place (smtp::DialogueHost::
  // backendContentBuffer): only when such bytes would go straight into it through sendContent()
  // (ready, no command queued before them, no TLS to encrypt them first); null otherwise. The
  // caller appends, then reports the count with contentAppended() before any other call.
  std::string* contentBuffer();
  void contentAppended(std::size_t bytes);
  // Writes the last content bytes, which end with the terminator, and expects the final reply.
  void endContent(std::string_view lastBytes, std::uint64_t tag);

  // While corked, commands only queue and content waits; uncork() writes them as one group
  // (content first, in the order submitted). The session corks
  // around everything it parses from one read, so a pipelined client group reaches the backend
  // as one write (a backend that answers a command's reply before reading on, like smtp-sink,
  // otherwise waits for a delayed ACK: ~40 ms per group).
  void cork() { ++corked_; }
  void uncork();

  // `counter` is decremented when this connection is gone (its socket closed): the session that
  // incremented it for backend.max_connections hands it over.
  void countIn(std::atomic<std::size_t>* counter) { counter_ = counter; }

  // Bytes not yet taken by the kernel, queued commands and chunks included (backpressure).
  std::size_t queuedBytes() const { return out_.size() + inflight_.size() + queuedWire_; }

  // The listener is never called again. Sends QUIT if the session is usable (during the set-up:
  // once the reply it awaits came, within kQuitTimeout), then closes.
  void detachAndClose();

  BackendConnection(const BackendConnection&) = delete;
  BackendConnection& operator=(const BackendConnection&) = delete;

 private:
  // How long a closing connection waits to get its QUIT out (and, during the set-up, for the
  // reply before it).
  static constexpr std::chrono::milliseconds kQuitTimeout{2'000};

  enum class Phase : std::uint8_t {
    Reconnecting,  // the socket of a failed attempt is closing; the next address follows
    Connecting,
    TlsHandshake,  // implicit: right after connect; starttls: after the 220 to STARTTLS
    Greeting,
    ProxyEhlo,
    Starttls,  // STARTTLS sent, its 220 awaited
    Xclient,
    ClientEhlo,
    Ready,
    Closing,
  };
  struct Expected {
    BackendPurpose purpose;
    std::uint64_t tag;
    bool syncPoint;
  };
  struct Queued {
    std::string wire;  // with CR LF (plus any chunk bytes that follow the command)
    Expected expected;
    std::string xforwardIdent;  // MAIL only: IDENT and PROTO for XFORWARD
    std::string xforwardProto;
  };

  BackendConnection(uv_loop_t* loop, const config::Config& config, BackendEvents* listener,
                    Mode mode, std::vector<BackendAddress> targets, smtp::ClientIdentity identity,
                    std::string logId, Metrics* metrics,
                    const std::atomic<config::IdentityMode>* identityInForce,
                    tls::ClientContextPtr tls);
  ~BackendConnection() {
    if (counter_ != nullptr) {
      counter_->fetch_sub(1, std::memory_order_relaxed);
    }
  }

  void connect();
  // Connects tcp_ (initialised, not connected) to targets_[attempt_].
  void connectTarget();
  // A set-up failure with addresses left to try: closes this attempt's socket and goes on with
  // the next address (from onRetrySocketClosed). False when the failure must be reported.
  bool tryNextTarget(BackendFailure failure, const std::string& detail);
  void onRetrySocketClosed();
  void onConnected(int status);
  void onRead(ssize_t nread, const uv_buf_t* buf);
  void handleReply(const smtp::Reply& reply);
  void handleSetupReply(const smtp::Reply& reply);
  // After an EHLO reply: STARTTLS when backend.tls needs it (true: the set-up goes on there, or
  // failed).
  bool startTlsIfNeeded();
  // The reply to STARTTLS: 220 starts the handshake, anything else fails the connection.
  void onStarttlsReply(const smtp::Reply& reply);
  // The 220 to STARTTLS, or the connect in implicit mode: the handshake starts.
  void beginTls();
  // Ciphertext from the backend; plaintext goes to parser_. False once the connection failed.
  bool readTls(std::string_view ciphertext);
  void onTlsEstablished();
  void onTlsFailed();
  // After the proxy's EHLO: XCLIENT, or ready at once (XFORWARD, none), or fail closed when the
  // hand-off in force is not offered.
  void startIdentityHandoff();
  void sendXclient();
  void becomeReady();
  // Ready (either mode): the connect-to-ready time goes to the metrics.
  void reportReady();
  std::string xforwardLines(const Queued& mail) const;
  void flushQueue();
  // Plaintext for the backend: encrypted first once TLS is on.
  void write(std::string_view bytes);
  // Bytes in out_ are ready: start a write if none is in flight, and watch the watermark.
  void flushOut();
  void startWrite();
  void onWriteDone(int status);
  // Content bytes go with the last queued command when it is not written yet: true if so.
  bool appendToQueuedCommand(std::string_view bytes);
  // Session mode, ready, nothing queued or outstanding: start the backend_idle countdown.
  void armIdleTimer();
  void armTimer(std::chrono::milliseconds timeout);
  void onTimer();
  void fail(BackendFailure failure, const std::string& detail);
  void failSoon(BackendFailure failure, std::string detail);
  void quitAndClose();
  void closeHandles();
  void onHandleClosed();

  uv_loop_t* loop_;
  const config::Config& config_;
  BackendEvents* listener_;
  Mode mode_;
  smtp::ClientIdentity identity_;
  std::string logId_;
  Metrics* metrics_;
  std::vector<BackendAddress> targets_;
  tls::ClientContextPtr tlsContext_;  // backend.tls's generation when this connection started
  std::unique_ptr<BackendTls> tls_;   // from the handshake on: every byte in or out goes through
  std::size_t attempt_ = 0;           // index in targets_ of the address in use
  std::atomic<std::size_t>* counter_ = nullptr;  // backend.max_connections (sessions)
  // The hand-off in force (SharedState::identityInForce): backend.identity, or what "auto"
  // resolved to at the first probe. Null: backend.identity as configured.
  const std::atomic<config::IdentityMode>* identityInForce_;
  std::uint64_t connectStarted_ = 0;  // uv_hrtime() at connect()
  smtp::IdentityHandoff handoff_ = smtp::IdentityHandoff::None;
  std::size_t queuedWire_ = 0;  // bytes held in queue_
  Phase phase_ = Phase::Connecting;

  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_connect_t connectReq_{};
  uv_write_t writeReq_{};
  int openHandles_ = 0;

  smtp::ReplyParser parser_;
  smtp::Capabilities capabilities_;
  bool greetsAsPostfix_ = false;  // from the 220 greeting, for capabilities_.postfix
  bool quitAtNextReply_ = false;  // detached during set-up: QUIT once the reply awaited came
  smtp::Fifo<std::string> xclientCommands_;  // remaining XCLIENT lines of a split identity
  smtp::Fifo<Expected> expected_;            // replies owed by the backend, in order
  smtp::Fifo<Queued> queue_;                 // commands not yet written
  bool waitingSync_ = false;                 // a sync-point command awaits its reply
  bool writePaused_ = false;                 // told the listener we are above the watermark
  std::string out_;                          // wire bytes waiting for the write in flight
  std::string inflight_;                     // bytes of the write in flight
  bool closeAfterWrite_ = false;
  // A failure found inside a call from the session (a synchronous connect or write error): it is
  // reported from the timer, never from inside that call (BackendEvents::onBackendFailure).
  std::optional<std::pair<BackendFailure, std::string>> pendingFailure_;
  int corked_ = 0;
};

}  // namespace certrelay::proxy
