#pragma once
// The reverse lookup of client addresses with forward confirmation (dns.reverse_lookup), run by
// c-ares on a worker's own libuv loop: one channel per worker, its sockets driven by uv_poll
// handles (ARES_OPT_SOCK_STATE_CB) and its retransmissions by a uv_timer (ares_timeout()), so
// no thread and no lock is involved. What a lookup's answers mean is smtp/client_name.h.
//
// Each lookup has a deadline (dns.timeout) of its own, kept by one more timer over a list in
// deadline order (every lookup has the same timeout, so the order of starting is the order of
// deadlines): past it the handler is told [TEMPUNAVAIL] at once, whatever c-ares still does.
// c-ares has no way to cancel one query, so a lookup that was cancelled or timed out stays
// allocated until c-ares ends its queries (its own retries are bounded to about the deadline).
//
// Per lookup: one PTR query, then one A or AAAA query, each a UDP datagram out and one in.
// Without ARES_FLAG_STAYOPEN c-ares opens a UDP socket per server when a query starts on an idle
// channel and closes it when the last query ends (socket, connect, ioctl, 3 fcntl, epoll_ctl for
// the uv_poll, close); lookups that overlap share it. Measured: 16 system calls per session
// (docs/configuration.md). A fresh socket per burst keeps the source port random, so spoofed
// answers are that much harder to get in; STAYOPEN would save the socket's 11 at that price.
//
// Threads: everything here runs on the worker's loop thread, except check(), called once on the
// main thread before any worker starts.

#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/smtp/client_name.h"

struct ares_channeldata;

namespace certrelay::proxy {

class ReverseDns {
 public:
  class Handler {
   public:
    // The outcome, once, from a later loop turn than start() (never from inside it), within
    // dns.timeout of start(). The lookup is gone after this call: drop the pointer first.
    virtual void onClientName(const smtp::ClientName& name) = 0;

   protected:
    ~Handler() = default;
  };
  struct Lookup;

  // Initialises c-ares (once per process) and tries a channel with `dns`'s settings: the reason
  // it cannot work, or "" when it can. Main thread, before the workers start.
  static std::string check(const config::Dns& dns);

  // A channel for `loop`; null (with the reason in `error`) when c-ares refuses it.
  static std::unique_ptr<ReverseDns> create(uv_loop_t* loop, const config::Dns& dns,
                                            std::string& error);
  ~ReverseDns();
  ReverseDns(const ReverseDns&) = delete;
  ReverseDns& operator=(const ReverseDns&) = delete;

  // Looks up the name of `addr` (numeric). Valid until the handler was called or cancel().
  Lookup* start(const std::string& addr, Handler* handler);
  // The handler will not be called.
  void cancel(Lookup* lookup);
  // Ends the channel (queries still running end with it) and closes every handle; the object
  // must live on until the loop ran their close callbacks. Nothing may be started afterwards.
  void close();

 private:
  struct Poll;

  ReverseDns(uv_loop_t* loop, const config::Dns& dns);
  bool init(std::string& error);

  // c-ares callbacks.
  static void onSocketState(void* data, int fd, int readable, int writable);
  static void onPtrAnswer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  static void onForwardAnswer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);

  void socketState(int fd, bool readable, bool writable);
  void process(int readFd, int writeFd);
  // The c-ares timer: retransmissions and c-ares' own timeouts, as ares_timeout() asks.
  void armAresTimer();
  void startForward(Lookup* lookup);
  // The outcome of `lookup`: delivered now, or (inside start()) from the deadline timer at once.
  void finish(Lookup* lookup, smtp::ClientName name);
  void deliver(Lookup* lookup, const smtp::ClientName& name);
  void onDeadline();
  void armDeadline();
  void link(Lookup* lookup);
  void unlink(Lookup* lookup);
  // Frees `lookup` once it is finished and c-ares owes it no more callbacks.
  static void release(Lookup* lookup);
  // A c-ares answer's lookup, one query fewer outstanding; null when the lookup is over (the
  // channel destroyed, or finished by its deadline): then it is released, not answered.
  static Lookup* answered(void* arg, int status);

  uv_loop_t* loop_;
  std::chrono::milliseconds timeout_;
  std::vector<config::Endpoint> servers_;
  ares_channeldata* channel_ = nullptr;
  uv_timer_t aresTimer_{};
  uv_timer_t deadlineTimer_{};
  bool timersOpen_ = false;
  std::vector<Poll*> polls_;  // one per socket c-ares watches (a few: per server, UDP and TCP)
  Lookup* head_ = nullptr;    // unfinished lookups, oldest (earliest deadline) first
  Lookup* tail_ = nullptr;
  bool starting_ = false;  // inside start(): an outcome must not reach the handler yet
  bool closed_ = false;
};

}  // namespace certrelay::proxy
