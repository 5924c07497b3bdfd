#pragma once
// The SMTP dialogue of one client session, without I/O: events in, actions out.
//
// Sans-I/O, like tls::Engine and Python's h11: no socket, no event loop, no clock. The host (the
// Session in production, a recorder in tests) feeds it events (client bytes, TLS established,
// backend ready/reply/failure/idle, timer expiry, drain) and applies the actions it calls on
// DialogueHost (bytes for the client, start TLS, a command or content for the backend, open or
// close the backend, arm the timer, close). Every rule of the product that is about SMTP lives
// here, so each can be proved by a transcript in milliseconds and fuzzed as a whole.
//
// Invariants (each checked where it is relied on):
// - Replies reach the client in command order: every command takes exactly one slot of one
//   ReplyQueue (RFC 2920); the proxy's own commands to the backend take none.
// - 250 to end of data only ever comes from the backend. A backend lost, restarted or refusing
//   the proxy at any point of a transaction gives the command in flight a 4xx (451 4.3.0; for
//   the end of data "status unknown"), never a 5xx the backend did not send.
// - A backend reply that makes no sense for its command is never relayed (protocol error: 451,
//   backend dropped). Every reply the backend owes is tracked here (owed_), in order.
// - Every RCPT is decided against the policy snapshot current at that RCPT; a refused one never
//   reaches the backend; only re-serialised, allow-listed commands are forwarded.
// - STARTTLS discards every buffered byte and all pre-TLS state (CVE-2011-0411, RFC 3207 4.2).
// - DATA is rewritten into a canonical stream; bytes sent behind a refused DATA or BDAT are never
//   read as commands.
// - Memory is bounded: lines by limits.max_line_length, read-ahead by limits.high_watermark,
//   replies owed by kMaxUnfilledReplies.
//
// Re-entrancy: the host must not call an event method from inside an action. The backend
// connection reports failures from its own callbacks only, never from inside a send.

#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/config.h"
#include "policy/relay_policy.h"
#include "proxy/log.h"
#include "proxy/smtp/backend_events.h"
#include "proxy/smtp/capabilities.h"
#include "proxy/smtp/client_name.h"
#include "proxy/smtp/command.h"
#include "proxy/smtp/data_canonicalizer.h"
#include "proxy/smtp/fifo.h"
#include "proxy/smtp/line_reader.h"
#include "proxy/smtp/peer.h"
#include "proxy/smtp/reply_queue.h"
#include "proxy/smtp/transaction.h"
#include "proxy/smtp/xclient.h"
#include "tls/peer_facts.h"

namespace certrelay::smtp {

using Ticket = ReplyQueue::Ticket;

// Where content bytes go: now, or with the next write (the proxy's Received header waits for
// the client's first content bytes so that both leave in one write).
enum class ContentTiming : std::uint8_t { Now, WithNextWrite };

// What became of one recipient or one message (for metrics), reported once, when it is known.
// A message is content the client sent to its end (the final dot, or BDAT LAST's chunk).
enum class Outcome : std::uint8_t {
  RcptRelayed,          // a non-local recipient (a trusted client): the backend said 2xx
  RcptLocal,            // a local recipient: the backend said 2xx
  RcptRelayDenied,      // the proxy's 454 Relay access denied
  RcptBackendRejected,  // the backend said 4xx or 5xx
  MessageAccepted,      // the backend said 2xx to the end of data
  MessageRejected,      // the backend said 5xx
  MessageDeferred,      // 4xx: the backend's, or the proxy's when the backend was lost before
  MessageUnknown,       // the final reply never came: the backend was lost after the end of data
};

// A per-client limit refusing a new connection (limits.client_connections, _connection_rate).
enum class ClientLimit : std::uint8_t { Connections, ConnectionRate };
// A per-client rate counted at MAIL and RCPT (limits.client_message_rate, _recipient_rate).
enum class RateEvent : std::uint8_t { Message, Recipient };

class DialogueHost {
 public:
  virtual ~DialogueHost() = default;

  // --- actions on the client connection ---
  // Plaintext for the client; the host encrypts it once TLS is established.
  virtual void sendToClient(std::string_view wire) = 0;
  // The 220 to STARTTLS has been sent: the client's next bytes are a TLS handshake.
  virtual void startTls() = 0;
  // The session's one timer; arming it replaces the previous deadline.
  virtual void armTimer(std::chrono::milliseconds timeout) = 0;
  // Close after the bytes sent so far (with close_notify under TLS). No event is expected after.
  virtual void closeClient() = 0;

  // --- actions on the backend (at most one connection at a time) ---
  // False when backend.max_connections does not allow it now: `early` (ahead of MAIL, at EHLO)
  // only below 80% of the cap, at MAIL below the cap. Nothing else happens then.
  virtual bool openBackend(const ClientIdentity& identity, bool early) = 0;
  // QUIT if the connection is usable, then close. No backend event follows.
  virtual void closeBackend() = 0;
  virtual void backendCommand(std::string_view line, BackendPurpose purpose, Ticket ticket) = 0;
  // MAIL FROM: in XFORWARD mode preceded by XFORWARD carrying `ident` and `proto`.
  virtual void backendMail(std::string_view line, Ticket ticket, std::string_view ident,
                           std::string_view proto) = 0;
  virtual void backendContent(std::string_view bytes, ContentTiming timing) = 0;
  // Where canonical DATA content may be appended in place, in order after everything submitted
  // so far (the backend connection's write buffer), or null: then it goes through
  // backendContent(). Canonicalising straight into the write buffer saves a copy of every message
  // body. The buffer is valid until the next call on the host; the dialogue reports what it
  // appended with backendContentAppended() before any other call.
  virtual std::string* backendContentBuffer() { return nullptr; }
  virtual void backendContentAppended(std::size_t bytes) { (void)bytes; }
  // The last content bytes, ending with the terminator; the final reply fills `ticket`.
  virtual void backendEndContent(std::string_view lastBytes, Ticket ticket) = 0;

  // --- environment ---
  // One line of the session's log; `fields` are for JSON (log::structured()), empty otherwise.
  virtual void log(log::Level level, std::string_view message,
                   std::span<const log::Field> fields) = 0;
  virtual std::shared_ptr<const policy::Policy> policy() = 0;
  // What the backend last announced to the proxy; null until it answered once.
  virtual std::shared_ptr<const Capabilities> backendCapabilities() = 0;
  virtual std::time_t wallClock() = 0;
  // Monotonic milliseconds (limits.min_data_rate); the host's cached loop time will do.
  virtual std::uint64_t monotonicMs() = 0;
  // Whether the process is near limits.max_connections (over 80% of it): shorter timeouts.
  virtual bool underStress() = 0;
  // One more MAIL or RCPT by `key` (a listed identity when `identity`, else the client address):
  // the count in the current rate window, this one included, summed over the process; 0 when it
  // is not counted (an exempt client, or no room to count it).
  virtual std::uint64_t countRate(RateEvent event, bool identity, std::string_view key) = 0;

  // --- reports ---
  // A recipient's or a message's result, once, when it is known (see Outcome). `identity`: with
  // config.metrics.perIdentity, the listed identity of a client trusted by its certificate, else
  // "". `bytes`: a message's content bytes (DATA after canonicalisation, or the BDAT chunks), 0
  // for a recipient.
  virtual void outcome(Outcome what, std::string_view identity, std::uint64_t bytes) = 0;
};

struct DialogueSettings {
  const config::Config& config;
  const config::Listener& listener;
  std::string id;     // the session id, as in the logs
  PeerAddress peer;   // the client
  PeerAddress local;  // the address the client connected to
  // A reverse lookup of peer.addr is running (dns.reverse_lookup): its outcome comes later through
  // onClientName(), and MAIL waits for it. False: the name is unknown (noLookup()) from the start.
  bool nameLookup = false;
};

class Dialogue {
 public:
  // Replies owed by the backend before the proxy stops parsing more pipelined commands: bounds
  // the memory one client can make the session hold.
  static constexpr std::size_t kMaxUnfilledReplies = 256;

  Dialogue(DialogueSettings settings, DialogueHost& host);
  Dialogue(const Dialogue&) = delete;
  Dialogue& operator=(const Dialogue&) = delete;

  // --- events ---
  // The connection was accepted: greeting, or 421 when over limits.max_connections or draining.
  void start(bool overConnectionLimit, bool draining);
  // Instead of start(): the client is over a per-client limit with `count` connections (open, or
  // new in the window): 421 4.7.0 and close (implicit TLS: close before TLS), with Postfix's
  // warning. `service`: the listener's name, as Postfix names its master.cf service.
  void refuseClient(ClientLimit limit, std::uint64_t count);
  // Plaintext from the client (decrypted under TLS).
  void onClientBytes(std::string_view bytes);
  // `facts` must stay valid (and unchanged) for the rest of the dialogue: the host's TLS engine
  // owns them and outlives it.
  void onTlsEstablished(const tls::PeerFacts& facts);
  // `address`: the backend the connection went to ("127.0.0.1:2525"), named in later log lines.
  void onBackendReady(const Capabilities& capabilities, std::string_view address = {});
  void onBackendReply(BackendPurpose purpose, Ticket ticket, const Reply& reply);
  // The backend connection is gone (no closeBackend() needed); every owed reply is answered 4xx.
  // `address`: the backend it used (or tried last), "" when it had none.
  void onBackendFailure(BackendFailure failure, std::string_view detail,
                        std::string_view address = {});
  // The backend connection has been idle for timeouts.backend_idle.
  void onBackendIdle();
  // The reverse lookup ended (within dns.timeout, settings.nameLookup only, once): the name for
  // the logs from now on, for the identity hand-off and the Received header. A MAIL that waited
  // for it goes on.
  void onClientName(const ClientName& name);
  void onTimer();
  // Graceful stop: an idle session is told 421 4.3.2 at once; a transaction runs to its end.
  // `fast`: only a message in flight (content being received, or its final reply owed) runs to
  // its end; the session is told 421 4.3.2 and closed otherwise.
  void drain(bool fast = false);

  // --- what the host asks ---
  // Whether the host should read from the client now (the host adds its own write backpressure).
  [[nodiscard]] bool wantsInput() const;
  // Message content is being read: the backend's outgoing queue paces the client.
  [[nodiscard]] bool inContent() const { return phase_ == Phase::Data || phase_ == Phase::Chunk; }
  [[nodiscard]] bool closing() const { return phase_ == Phase::Closing; }
  // Content is being received, or the final reply of a message is owed by the backend.
  [[nodiscard]] bool messageInFlight() const;
  [[nodiscard]] unsigned messages() const { return messages_; }
  [[nodiscard]] std::size_t bufferedInput() const { return lines_.buffered(); }

 private:
  enum class Phase : std::uint8_t {
    Pregreet,  // limits.greeting_delay: the greeting waits; any byte from the client is a refusal
    Command,   // reading commands
    TlsHandshake,  // after 220 Ready to start TLS, until the handshake completes
    Data,          // streaming DATA content (to the backend, or discarded when the backend is lost)
    Chunk,         // reading a BDAT chunk (forwarded or discarded)
    Closing,       // decided to close: nothing more is read
  };
  // A reply the backend owes, in the order the commands went out.
  struct Owed {
    BackendPurpose purpose = BackendPurpose::Internal;
    Ticket ticket = 0;
    bool utf8 = false;  // the transaction declared SMTPUTF8: UTF-8 reply text is allowed
    // What the outcome report needs once the reply is in: a RCPT's recipient is not local; a
    // message's content bytes; the identity to report (see DialogueHost::outcome).
    bool relayed = false;
    std::uint64_t bytes = 0;
    std::string identity{};
    std::string rcpt{};  // a RCPT's recipient, for the NOQUEUE line of a refusal
  };
  struct Chunk {
    std::uint64_t remaining = 0;
    bool last = false;
    bool discard = false;  // a refused BDAT, or a lost backend: its bytes are read and dropped
  };

  // --- commands (dialogue.cpp) ---
  void processInput();
  bool inputBlocked() const;
  void handleLine(const std::string& line);
  void handleCommand(const Command& command);
  void onEhlo(const Command& command, bool extended);
  void onStarttls(const Command& command);
  void onMail(const Command& command);
  void onRcpt(const Command& command);
  void onData(const Command& command);
  void onRset();
  void onForbidden(const std::string& line);
  // --- per-client rates (dialogue_limits.cpp) ---
  // False after refusing the command (450 4.7.1, Postfix's warning and NOQUEUE line).
  bool admitRate(RateEvent event, const std::string& rcpt);
  // A client that talked before the greeting (limits.greeting_delay): 554 5.5.0 and close.
  void onPregreet(std::string_view bytes);
  // The greeting delay passed in silence: the greeting.
  void greet();
  void refuseContentCommand(std::string_view wire);

  // --- content (dialogue_content.cpp) ---
  void onBdat(const Command& command);
  void consumeChunk(std::string_view bytes);
  void consumeData(std::string_view bytes);
  // End of data: `lastBytes` (the content not yet given to the host, the terminator included)
  // and the final reply owed; `bytes[used..]` are commands pipelined behind the dot.
  void endData(std::size_t used, std::string_view bytes, std::string_view lastBytes);
  // Content starts (354, or a BDAT): the clock of limits.min_data_rate starts over.
  void startContentClock();
  // timeouts.command, or timeouts.command_under_stress when the host is under stress.
  std::chrono::milliseconds commandTimeout() const;
  // `bytes` more content arrived: re-arms the content deadline (inactivity, and the minimum data
  // rate). False after closing the session for a client too slow.
  bool contentArrived(std::size_t bytes);
  std::string receivedHeader() const;

  // --- backend (dialogue_backend.cpp) ---
  // False when the host refused to open it (backend.max_connections).
  bool ensureBackend(bool early = false);
  void dropBackend();
  void sendToBackend(std::string_view line, BackendPurpose purpose);
  // `report`: what the outcome report needs (Owed's last three members; the rest is set here).
  void sendToBackend(std::string_view line, BackendPurpose purpose, Owed report);
  void failOwed(BackendFailure failure);
  // "backend 127.0.0.1:2525" for log lines; "backend" before any connection got an address.
  std::string backendName() const;
  void lostBackend(BackendFailure failure, std::string_view detail);
  void onDataReply(Ticket ticket, const Reply& reply);
  // The outcome of a RCPT or a message whose reply (`code`) the backend sent.
  void reportReply(const Owed& owed, int code);
  void report(const Owed& owed, Outcome what) { host_.outcome(what, owed.identity, owed.bytes); }
  void logFinalReply(const Reply& reply);
  void resumeInput();
  void closeIfDrainedIdle();

  // --- replies and helpers (dialogue.cpp) ---
  void reply(std::string_view wire, bool closeAfter = false);
  void reject(std::string_view wire);  // a client error: counts toward limits.max_errors
  // One more error; past limits.max_errors, 421 4.7.0 and close.
  void countError();
  // NOOP, RSET, VRFY, HELP: answered with `wire`; past limits.max_junk_commands an error too.
  void junk(std::string_view wire);
  void fill(Ticket ticket, std::string_view wire, bool closeAfter = false);
  void flushReplies();
  void closeOnBug(const char* what);
  void forgetPreTlsState();
  void resetTransaction();
  std::string listedIdentity() const;
  // The identity an outcome is reported with: listedIdentity() with metrics.per_identity only.
  std::string reportIdentity() const;
  std::string messageId() const;
  std::string protocolName() const;
  std::string clientName() const { return clientLogName(settings_.peer); }
  // The reverse lookup's outcome, logged (Postfix's warnings for a name that is not confirmed).
  void logClientName(const ClientName& name);
  std::string rejectLogSuffix(const std::string& rcpt) const;
  // Postfix's `NOQUEUE: reject: <stage> from <client>: <reply>; from=<> to=<> proto= helo=<>`
  // for a refusal at MAIL or RCPT, ours or the backend's. `reply` without its CRLF.
  void logReject(std::string_view stage, std::string_view reply, const std::string& rcpt);
  void logTlsEstablished(const tls::PeerFacts& facts);
  void refusedProxyLog(const Reply& reply);
  // A line of this session's log. In JSON, the session's fields (client, client_address,
  // client_port, helo, fingerprint, identity: those known so far) come first, then `event`.
  void note(log::Level level, std::string_view message, std::initializer_list<log::Field> event);
  void info(std::string_view message, std::initializer_list<log::Field> event = {}) {
    note(log::Level::Info, message, event);
  }
  void warn(std::string_view message, std::initializer_list<log::Field> event = {}) {
    note(log::Level::Warning, message, event);
  }

  DialogueSettings settings_;
  const config::Config& config_;
  DialogueHost& host_;
  Phase phase_ = Phase::Command;

  LineReader lines_;
  DataCanonicalizer data_;
  ReplyQueue replies_;
  std::string scratch_;  // reused buffer for drained replies and canonical DATA

  bool tlsStarted_ = false;              // STARTTLS accepted (the handshake may still run)
  const tls::PeerFacts* tls_ = nullptr;  // set once the handshake completed
  policy::CertificateKeys certificate_;  // fingerprints of the client certificate, if any

  bool backendOpen_ = false;
  // The client name as the identity hand-off and the Received header need it. Only the backend
  // needs it to be final: the greeting, EHLO and STARTTLS never wait; MAIL (which opens the
  // backend) waits in deferredLine_ until it is known, at most dns.timeout from accept.
  ClientName clientName_;
  bool nameKnown_ = true;
  // Inside TLS the backend is set up at EHLO (onEhlo); with the name still unknown that waits for
  // it too (cleared when the backend is dropped meanwhile).
  bool openWhenNamed_ = false;
  std::string backendAddress_;  // of the last backend connection that got that far (logs)
  Fifo<Owed> owed_;  // replies the backend owes, oldest first (Internal commands excluded)

  // Forgotten at STARTTLS and at a new EHLO.
  std::string helo_;
  bool esmtp_ = false;
  Transaction transaction_;
  std::uint64_t chunkedBytes_ = 0;    // BDAT bytes of the transaction, for the outcome report
  std::uint64_t contentStartMs_ = 0;  // limits.min_data_rate: since the 354 or the BDAT
  std::uint64_t contentBytes_ = 0;
  Chunk chunk_;

  // A command that must end its pipelining group (EHLO, HELO, STARTTLS, QUIT) and arrived while
  // replies were still owed: it waits here, and input stops, until they are all in.
  std::optional<std::string> deferredLine_;
  bool draining_ = false;
  unsigned errors_ = 0;
  std::size_t junkCommands_ = 0;  // since the last accepted MAIL
  unsigned messages_ = 0;
  // Each message whose final reply is still awaited, oldest first: the backend's verdict is
  // logged on one line with it.
  struct SentMessage {
    std::string from;
    std::size_t recipients = 0;
    std::uint64_t size = 0;
    bool chunked = false;  // BDAT: the size is the chunks'
  };
  Fifo<SentMessage> messageLogs_;
  // "from=<a@b> size=N" (or "(BDAT)"), as the text log shows a message.
  static std::string describe(const SentMessage& message);
  // "a@b" of "<a@b>" (a log field's form; "" for <>); anything else as it is; a null view, no
  // field at all, for "" (not known).
  static std::string_view bareAddress(const std::string& path);
};

}  // namespace certrelay::smtp
