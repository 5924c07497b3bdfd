// proxy/service_notify: READY=1 / STOPPING=1 / RELOADING=1 reach the socket $NOTIFY_SOCKET
// names (a path, or an abstract "@name"), as one datagram; unset or unusable is a no-op.

#include "proxy/service_notify.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>

namespace certrelay::proxy {
namespace {

// Sets (or unsets) NOTIFY_SOCKET for the life of the object, then restores the old value.
class NotifyEnv {
 public:
  explicit NotifyEnv(const std::optional<std::string>& value) {
    if (const char* old = std::getenv("NOTIFY_SOCKET")) {
      old_ = old;
    }
    if (value) {
      ::setenv("NOTIFY_SOCKET", value->c_str(), 1);
    } else {
      ::unsetenv("NOTIFY_SOCKET");
    }
  }
  ~NotifyEnv() {
    if (old_) {
      ::setenv("NOTIFY_SOCKET", old_->c_str(), 1);
    } else {
      ::unsetenv("NOTIFY_SOCKET");
    }
  }
  NotifyEnv(const NotifyEnv&) = delete;
  NotifyEnv& operator=(const NotifyEnv&) = delete;

 private:
  std::optional<std::string> old_;
};

// A bound AF_UNIX datagram socket standing in for systemd's notify socket: a path in a fresh
// temporary directory, or an abstract name. Reads are bounded by a 5 s receive timeout.
class FakeManager {
 public:
  explicit FakeManager(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t length = 0;
    if (abstract) {
      std::random_device random;
      const std::string name =
          "certrelay-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(random());
      std::memcpy(addr.sun_path + 1, name.data(), name.size());
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
      env_ = "@" + name;
    } else {
      std::array<char, 64> dir{};
      std::strcpy(dir.data(), "/tmp/certrelay-notify.XXXXXX");
      REQUIRE(::mkdtemp(dir.data()) != nullptr);
      dir_ = dir.data();
      env_ = dir_ + "/notify";
      REQUIRE(env_.size() < sizeof addr.sun_path);
      std::memcpy(addr.sun_path, env_.data(), env_.size());
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + env_.size() + 1);
    }
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), length) == 0);
    timeval timeout{5, 0};
    REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == 0);
  }
  ~FakeManager() {
    ::close(fd_);
    if (!dir_.empty()) {
      ::unlink(env_.c_str());
      ::rmdir(dir_.c_str());
    }
  }
  FakeManager(const FakeManager&) = delete;
  FakeManager& operator=(const FakeManager&) = delete;

  const std::string& env() const { return env_; }

  // The next datagram; empty when none came within the timeout.
  std::string receive() const {
    std::array<char, 4096> buf{};
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
  }

  // True when no datagram is waiting.
  bool empty() const {
    std::array<char, 16> buf{};
    return ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT) < 0;
  }

 private:
  int fd_ = -1;
  std::string dir_;
  std::string env_;
};

TEST_CASE("NOTIFY_SOCKET unset: every call is a no-op") {
  NotifyEnv env(std::nullopt);
  CHECK_FALSE(notifyReady());
  CHECK_FALSE(notifyStopping());
  CHECK_FALSE(notifyReloading());
}

TEST_CASE("READY=1 and STOPPING=1 reach a path socket, one datagram each") {
  FakeManager manager(false);
  NotifyEnv env(manager.env());
  CHECK(notifyReady());
  CHECK(manager.receive() == "READY=1");
  CHECK(notifyStopping());
  CHECK(manager.receive() == "STOPPING=1");
  CHECK(manager.empty());
}

TEST_CASE("READY=1 reaches an abstract socket (@name)") {
  FakeManager manager(true);
  NotifyEnv env(manager.env());
  CHECK(notifyReady());
  CHECK(manager.receive() == "READY=1");
}

TEST_CASE("RELOADING=1 carries MONOTONIC_USEC") {
  FakeManager manager(false);
  NotifyEnv env(manager.env());
  CHECK(notifyReloading());
  const std::string got = manager.receive();
  CHECK(got.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  CHECK(got.size() > std::strlen("RELOADING=1\nMONOTONIC_USEC="));
}

TEST_CASE("an unusable NOTIFY_SOCKET is reported as false, never fails the process") {
  for (const std::string& value :
       {std::string(""), std::string("relative/notify"), std::string("@"),
        std::string("/nonexistent-dir/notify"), "/" + std::string(200, 'x')}) {
    CAPTURE(value);
    NotifyEnv env(value);
    CHECK_FALSE(notifyReady());
  }
}

TEST_CASE("a socket nobody reads any more: false, no signal, no exception") {
  std::string path;
  {
    FakeManager manager(false);
    path = manager.env();
  }
  NotifyEnv env(path);
  CHECK_FALSE(notifyStopping());
}

}  // namespace
}  // namespace certrelay::proxy
