// Acceptor: accept4 on a worker's listening socket, and a reply instead of a silent close when
// the process is out of descriptors (acceptor.h).

#include "proxy/acceptor.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/assert.h"
#include "proxy/log.h"

namespace certrelay::proxy {
namespace {

// Connections accepted per readiness event before the loop turns again: fairness for the
// sessions already open; a longer queue is taken on the next turn.
constexpr int kAcceptBatch = 128;
// How long a listener without a reserve to give up stops accepting.
constexpr std::uint64_t kPauseMs = 100;
constexpr std::uint64_t kLogEveryMs = 1000;

int openReserve() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

std::string descriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return "?";
  }
  return std::to_string(limit.rlim_cur);
}

}  // namespace

ReservedDescriptor::ReservedDescriptor() : fd_(openReserve()) {}

ReservedDescriptor::~ReservedDescriptor() {
  release();
}

void ReservedDescriptor::release() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void ReservedDescriptor::reacquire() {
  if (fd_ < 0) {
    fd_ = openReserve();
  }
}

Acceptor::Acceptor(uv_loop_t* loop, int fd, std::string name, std::string greeting421,
                   ReservedDescriptor& reserve, OnConnection onConnection, OnRefused onRefused)
    : fd_(fd),
      name_(std::move(name)),
      greeting421_(std::move(greeting421)),
      reserve_(reserve),
      onConnection_(std::move(onConnection)),
      onRefused_(std::move(onRefused)) {
  // A timer on a live loop cannot fail to initialise; a poll can (a descriptor epoll refuses).
  const int timerInit = uv_timer_init(loop, &resume_);
  static_cast<void>(CERTRELAY_ASSERT(timerInit == 0));
  initError_ = uv_poll_init_socket(loop, &poll_, fd_);
  poll_.data = this;
  resume_.data = this;
}

Acceptor::~Acceptor() {
  static_cast<void>(CERTRELAY_ASSERT(closed_ || !started_));
}

int Acceptor::start() {
  started_ = true;
  if (initError_ != 0) {
    return initError_;
  }
  return uv_poll_start(&poll_, UV_READABLE, [](uv_poll_t* poll, int status, int) {
    auto* self = static_cast<Acceptor*>(poll->data);
    if (status != 0) {
      log::warning("listener " + self->name_ + ": accept: " + uv_strerror(status));
      return;
    }
    self->onReadable();
  });
}

void Acceptor::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  // uv_close removes the socket from epoll first; closing the descriptor after it is safe.
  if (initError_ == 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&resume_), nullptr);
  ::close(fd_);
}

void Acceptor::onReadable() {
  for (int i = 0; i < kAcceptBatch && !closed_; ++i) {
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      onConnection_(fd);
      continue;
    }
    const int error = errno;
    if (error == EINTR || error == ECONNABORTED) {
      continue;
    }
    if (error == EAGAIN || error == EWOULDBLOCK) {
      return;
    }
    if (error == EMFILE || error == ENFILE) {
      if (refuseOne(error)) {
        continue;
      }
      return;
    }
    log::warning("listener " + name_ + ": accept: " + std::strerror(error));
    return;
  }
}

bool Acceptor::refuseOne(int error) {
  if (!reserve_.held()) {
    // Another worker took the slot this one gave up last time: try to get one back, and wait
    // rather than spin on a socket that cannot be accepted.
    reserve_.reacquire();
    if (!reserve_.held()) {
      pause(error);
      return false;
    }
  }
  reserve_.release();
  const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    reserve_.reacquire();
    if (!reserve_.held()) {
      pause(error);
    }
    return false;
  }
  if (!greeting421_.empty()) {
    // Best effort: a fresh socket's send buffer takes one line; nothing waits for it.
    static_cast<void>(
        ::send(fd, greeting421_.data(), greeting421_.size(), MSG_DONTWAIT | MSG_NOSIGNAL));
  }
  ::close(fd);
  reserve_.reacquire();
  ++refusedUnlogged_;
  if (onRefused_) {
    onRefused_();
  }
  logRefusal(error, false);
  return true;
}

void Acceptor::logRefusal(int error, bool pausing) {
  const std::uint64_t now = uv_now(poll_.loop);
  if (lastLogMs_ != 0 && now - lastLogMs_ < kLogEveryMs) {
    return;
  }
  lastLogMs_ = now;
  std::string what = std::to_string(refusedUnlogged_) + " connection(s) " +
                     (greeting421_.empty() ? "closed" : "answered 421 and closed");
  if (pausing) {
    what += ", and no descriptor left to answer with: not accepting for " +
            std::to_string(kPauseMs) + " ms";
  }
  log::warning("listener " + name_ + ": out of file descriptors (" + std::strerror(error) +
               ", RLIMIT_NOFILE " + descriptorLimit() + "): " + what +
               "; raise the limit or lower limits.max_connections");
  refusedUnlogged_ = 0;
}

void Acceptor::pause(int error) {
  if (closed_) {
    return;
  }
  logRefusal(error, true);
  uv_poll_stop(&poll_);
  uv_timer_start(
      &resume_,
      [](uv_timer_t* timer) {
        auto* self = static_cast<Acceptor*>(timer->data);
        if (!self->closed_) {
          static_cast<void>(self->start());
        }
      },
      kPauseMs, 0);
}

}  // namespace certrelay::proxy
