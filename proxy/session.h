#pragma once
// One client connection: the SMTP dialogue, STARTTLS, the relay decision per RCPT, and the
// hand-off of the transaction to the backend.
//
// Security role: this is where the non-negotiables are kept.
// - Replies reach the client in command order through one ReplyQueue (RFC 2920).
// - STARTTLS discards every buffered plaintext byte and all pre-TLS state (CVE-2011-0411).
// - Every RCPT is decided against the *current* policy snapshot; a refused one never reaches
//   the backend; only re-serialised, allow-listed commands are forwarded.
// - DATA is rewritten into a canonical stream; 250 to end of data only ever comes from the
//   backend, and an unknown outcome becomes 451 4.3.0.
// - Every wait has a deadline and every buffer a cap; reading stops while a peer's outgoing
//   buffer is above the high watermark.
//
// Lifetime: owned by its Worker's registry; deleted from the last libuv close callback, so a
// callback never runs on a freed session. BackendConnection is detached, never deleted, here.

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "policy/relay_policy.h"
#include "proxy/backend_connection.h"
#include "proxy/net_util.h"
#include "proxy/smtp/command.h"
#include "proxy/smtp/data_canonicalizer.h"
#include "proxy/smtp/fifo.h"
#include "proxy/smtp/line_reader.h"
#include "proxy/smtp/reply_queue.h"
#include "tls/engine.h"

namespace certrelay::proxy {

class Worker;

class Session final : public BackendConnection::Listener {
 public:
  // Accepts one connection from `server` (a listening socket of `listener`).
  static void accept(Worker& worker, const config::Listener& listener, uv_stream_t* server);

  // Graceful stop: an idle session is told 421 4.3.2 at once, a busy one at its next command.
  void drain();
  // Shutdown deadline passed: close now, whatever the state.
  void forceClose();

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

 private:
  enum class Phase : std::uint8_t {
    Command,       // reading commands
    TlsHandshake,  // after 220 Ready to start TLS, until the handshake completes
    Data,          // streaming message content to the backend
    DataDiscard,   // content whose backend is gone: read to the end, then 451
    Closing,       // flushing the last replies, then closing
  };

  Session(Worker& worker, const config::Listener& listener);
  ~Session() override;

  // --- client transport (session.cpp) ---
  void start();
  void onClientRead(ssize_t nread, const uv_buf_t* buf);
  void onPlaintext(std::string_view bytes);
  void pumpTls();
  void onHandshakeDone();
  void sendToClient(std::string_view wire);
  void startClientWrite();
  // While corked, replies collect in out_: what one read (of the client or of the backend)
  // produces for the client leaves in one write, e.g. the TLS ticket with the EHLO reply, or
  // a 221 with its close_notify.
  void uncorkClient();
  void onClientWriteDone(int status);
  void updateReading();
  void armClientTimer(std::chrono::milliseconds timeout);
  void onClientTimer();
  void closeAfterFlush();
  void teardown(const char* reason);
  void onHandleClosed();
  std::string clientName() const { return clientLogName(peer_); }

  // --- dialogue (session_commands.cpp) ---
  void processInput();
  void resumeInput();
  bool inputBlocked() const;
  void handleLine(const std::string& line);
  void handleCommand(smtp::Command& command);
  void onEhlo(const smtp::Command& command, bool extended);
  void onStarttls(const smtp::Command& command);
  void onMail(const smtp::Command& command);
  void onRcpt(const smtp::Command& command);
  void onData(const smtp::Command& command);
  void onBdat(const smtp::Command& command);
  void consumeChunk(std::string_view bytes);
  void onRset(const smtp::Command& command);
  void onQuit();
  void consumeData(std::string_view bytes);
  void flushReplies();
  void reply(std::string_view wire, bool closeAfter = false);
  void reject(std::string_view wire);  // a client error: counts toward limits.max_errors
  void resetTransaction();
  bool trusted(std::string* identity) const;
  std::string messageId() const;
  std::string protocolName() const;
  std::string receivedHeader() const;
  std::string rejectLogSuffix(const std::string& rcpt) const;

  // --- backend side (session_backend.cpp) ---
  void ensureBackend();
  void dropBackend();
  void onBackendReady(const smtp::Capabilities& capabilities) override;
  void onBackendReply(BackendPurpose purpose, std::uint64_t tag, smtp::Reply& reply) override;
  void onBackendFailure(BackendFailure failure, const std::string& detail,
                        const std::vector<BackendConnection::Outstanding>& outstanding) override;
  void onBackendWritable() override;
  void onBackendReadBegin() override { ++clientCork_; }
  void onBackendReadEnd() override { uncorkClient(); }
  void onBackendIdle() override;

  Worker& worker_;
  const config::Config& config_;
  const config::Listener& listener_;
  std::string id_;
  PeerAddress peer_;
  PeerAddress local_;
  Phase phase_ = Phase::Command;

  uv_tcp_t client_{};
  uv_timer_t timer_{};
  uv_write_t writeReq_{};
  int openHandles_ = 0;
  bool reading_ = false;
  bool closeAfterFlush_ = false;
  bool tornDown_ = false;
  bool draining_ = false;
  std::string out_;       // bytes (ciphertext under TLS) waiting for the write in flight
  std::string inflight_;  // bytes of the write in flight
  int clientCork_ = 0;    // > 0: startClientWrite() waits (see uncorkClient)

  tls::ContextPtr tlsContext_;           // the snapshot this session started with
  std::unique_ptr<tls::Engine> tls_;     // set from the 220 to STARTTLS on
  policy::CertificateKeys certificate_;  // fingerprints of the client certificate, if any

  smtp::LineReader lines_;
  smtp::DataCanonicalizer data_;
  smtp::ReplyQueue replies_;
  std::string scratch_;  // reused buffer for drained replies and canonical DATA

  BackendConnection* backend_ = nullptr;  // null until the first MAIL; detached, never deleted

  // Dialogue state; all of it is forgotten at STARTTLS.
  std::string helo_;
  bool esmtp_ = false;
  bool mailOpen_ = false;      // MAIL accepted locally (the backend may still refuse it)
  bool utf8_ = false;          // MAIL ... SMTPUTF8
  std::string mailFrom_;       // canonical sender, for logs
  std::size_t rcptTotal_ = 0;  // RCPT commands in this transaction
  std::size_t rcptForwarded_ = 0;
  bool awaitingDataReply_ = false;
  std::string firstRecipient_;        // for "for <rcpt>" in Received (one recipient only)
  bool bdatUsed_ = false;             // this transaction sends its content with BDAT
  bool headerSent_ = false;           // the Received header went out for this transaction
  std::uint64_t chunkRemaining_ = 0;  // BDAT chunk bytes still to come from the client
  bool chunkLast_ = false;
  bool chunkDiscard_ = false;  // a refused BDAT: its chunk is read and dropped
  // A command that must end its pipelining group (EHLO, HELO, STARTTLS, QUIT) and arrived while
  // replies were still owed: it waits here, and input stops, until they are all in.
  std::optional<std::string> deferredLine_;
  std::uint64_t dataTicket_ = 0;
  unsigned errors_ = 0;
  unsigned messages_ = 0;
  // "from=<...> size=N" of each message whose final reply is still awaited, oldest first: the
  // backend's verdict is logged on one line with it.
  smtp::Fifo<std::string> messageLogs_;
};

}  // namespace certrelay::proxy
