#pragma once
// Acceptor: one listening socket on a worker's loop. It accepts by itself (a uv_poll_t and
// accept4) instead of through uv_listen, for one reason: at descriptor exhaustion (EMFILE,
// ENFILE) libuv accepts and closes the waiting connections silently, and the client sees a
// connection cut with no reply. Here the worker's reserved descriptor is given up for a moment
// to accept the connection, answer it `421 4.3.2` (on plaintext listeners; an implicit-TLS
// client cannot read plaintext and is only closed), log it and close it, then taken back.
//
// Cost: uv_tcp_open() sets O_NONBLOCK itself (one ioctl per connection, which uv_accept does
// not need); nothing else on the path changes.

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace certrelay::proxy {

// A descriptor held open to be given up at EMFILE (one per worker, shared by its acceptors).
class ReservedDescriptor {
 public:
  ReservedDescriptor();
  ~ReservedDescriptor();
  ReservedDescriptor(const ReservedDescriptor&) = delete;
  ReservedDescriptor& operator=(const ReservedDescriptor&) = delete;

  // Closes the reserve (if held) so that the next descriptor the process asks for can succeed.
  void release();
  // Takes the reserve back (a no-op when held, or when the process is still at its limit).
  void reacquire();
  [[nodiscard]] bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

class Acceptor {
 public:
  // Receives each accepted descriptor (non-blocking, close-on-exec); it owns it from then on.
  using OnConnection = std::function<void(int fd)>;
  // Called for each connection refused at descriptor exhaustion (for the metric).
  using OnRefused = std::function<void()>;

  // `fd`: a bound, listening, non-blocking socket; the Acceptor closes it in close().
  // `greeting421`: the line sent to a connection refused at EMFILE, "" to close without a word.
  Acceptor(uv_loop_t* loop, int fd, std::string name, std::string greeting421,
           ReservedDescriptor& reserve, OnConnection onConnection, OnRefused onRefused);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Starts watching the socket; a libuv error code, 0 on success.
  int start();
  // Stops accepting and closes the socket (drain). The Acceptor must outlive the loop's next turn.
  void close();

 private:
  void onReadable();
  // At EMFILE/ENFILE: accepts one waiting connection on the reserve, answers and closes it.
  // False when that could not be done (nothing waiting, or no reserve to give up).
  bool refuseOne(int error);
  // One warning a second at most, with the count since the last one.
  void logRefusal(int error, bool pausing);
  // Without a reserve, a level-triggered poll on a socket that cannot be accepted would spin:
  // stop watching for a moment instead.
  void pause(int error);

  uv_poll_t poll_{};
  uv_timer_t resume_{};
  int fd_;
  std::string name_;
  std::string greeting421_;
  ReservedDescriptor& reserve_;
  OnConnection onConnection_;
  OnRefused onRefused_;
  int initError_ = 0;  // uv_poll_init_socket's, reported by start()
  bool started_ = false;
  bool closed_ = false;
  // Refusals since the last log line: one warning per second at most, with the count.
  std::uint64_t refusedUnlogged_ = 0;
  std::uint64_t lastLogMs_ = 0;
};

}  // namespace certrelay::proxy
