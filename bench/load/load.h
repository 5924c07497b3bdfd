#pragma once
// certrelay-load: a STARTTLS SMTP load generator (one libuv loop, OpenSSL over memory BIOs).
// Shared definitions of the options, the run-wide statistics and the per-connection slot.

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace certrelay::load {

// How a transaction's commands are written (README.md, --behaviour).
enum class Behaviour {
  Lockstep,   // each command waits for its reply
  Grouped,    // MAIL+RCPT+DATA in one write, then the body and the dot
  BehindDot,  // as Grouped, and the dot shares a write with the next MAIL+RCPT+DATA
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 1;
  long sessions = 100;
  double duration = 60;
  int messages = 1;
  std::size_t bodySize = 1024;
  std::string rcpt = "user@remote.example";
  std::string from = "load@client.example";
  bool starttls = true;
  std::string cert, key, cafile;
  bool resume = false;
  Behaviour behaviour = Behaviour::Lockstep;
  bool bdat = false;
  bool idle = false;
  double hold = 10;
  int connectBatch = 0;              // connections being set up at once; 0 = no limit (a burst)
  std::vector<sockaddr_in> sources;  // local addresses bound round-robin; empty = the kernel's
  bool jsonOnly = false;
};

struct Stats {
  long sessionsStarted = 0;
  long sessionsDone = 0;
  long messages = 0;
  long handshakesFull = 0;
  long handshakesResumed = 0;
  long idleOpen = 0;
  std::map<std::string, long> errors;
  std::vector<double> sessionMs, handshakeMs, messageMs;
};

class Runner;

// One connection slot: runs sessions one after another until the run says stop.
class Slot {
 public:
  Slot(Runner& runner, int index);
  // The runner reserved a session for this slot; it waits for a setup place (--connect-batch).
  void queue() { busy_ = true; }
  void startSession();
  void quitIdle();
  // End of the run: abort a session still going (counted as "stopped"), close the handles.
  void shutdown();
  bool busy() const { return busy_; }
  bool idleOpen() const { return idleOpen_; }

 private:
  enum class Step {
    Greeting,
    Ehlo,
    StartTls,
    Handshake,
    EhloTls,
    Mail,
    Rcpt,
    Data,
    Body,
    BodyThenNext,  // behind-dot: the dot's 250 is owed, the next MAIL+RCPT+DATA is already out
    Quit,
    Idle,
  };

  void onConnected(int status);
  void onRead(ssize_t nread, const uv_buf_t* buf);
  void onCiphertext(const char* data, std::size_t len);
  void pumpTls();
  void onPlaintext(const char* data, std::size_t len);
  void onReply(int code);
  void startTls();
  void sendText(const std::string& text);
  void writeRaw(const std::string& bytes);
  void drainWbio();
  void beginMessage();
  void sendBody();
  void messageDone();
  void endSetup();
  bool bindSource();
  void advance();
  void afterEhlo();
  void fail(const std::string& kind);
  void finishSession(bool ok);
  void closeSocket();
  void armTimer();

  Runner& runner_;
  int index_;
  bool busy_ = false;
  bool idleOpen_ = false;
  bool inSetup_ = false;          // holds one of the runner's --connect-batch places
  std::uint64_t generation_ = 0;  // bumped per session: stale callbacks can tell
  uv_tcp_t* tcp_ = nullptr;       // one per session; freed by its close callback
  uv_timer_t timer_{};
  bool timerClosed_ = false;
  Step step_ = Step::Greeting;
  std::deque<int> expected_;  // reply codes still owed for the last command group
  int messagesLeft_ = 0;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;
  BIO* wbio_ = nullptr;
  SSL_SESSION* savedSession_ = nullptr;  // --resume: the previous session of this slot
  std::string in_;                       // plaintext not yet parsed into replies
  std::uint64_t sessionStart_ = 0, handshakeStart_ = 0, messageStart_ = 0;
  std::uint64_t nextMessageStart_ = 0;  // behind-dot: when the next MAIL went out
};

class Runner {
 public:
  explicit Runner(Options options);
  int run();

  // Used by slots.
  uv_loop_t* loop() { return &loop_; }
  const Options& options() const { return options_; }
  Stats& stats() { return stats_; }
  SSL_CTX* sslContext() { return ctx_; }
  const std::string& body() const { return body_; }
  const sockaddr_in& address() const { return address_; }
  bool mayStartSession();
  // Reserves a session for the slot and starts it once a setup place is free.
  void launch(Slot& slot);
  void setupEnded();
  const sockaddr_in* nextSource();
  void slotIdle();
  void slotFinished();

 private:
  void stop();
  void startQueued();
  bool raiseDescriptorLimit();
  void maybeHold();
  void report(double seconds);

  Options options_;
  uv_loop_t loop_{};
  uv_timer_t deadline_{};
  uv_timer_t holdTimer_{};
  SSL_CTX* ctx_ = nullptr;
  std::string body_;
  sockaddr_in address_{};
  std::vector<std::unique_ptr<Slot>> slots_;
  Stats stats_;
  std::deque<Slot*> queued_;  // sessions reserved, waiting for a --connect-batch place
  int settingUp_ = 0;
  bool startingQueued_ = false;
  std::size_t nextSource_ = 0;
  bool stopping_ = false;
  bool idleAnnounced_ = false;
};

std::uint64_t nowNs();

}  // namespace certrelay::load
