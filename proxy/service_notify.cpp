#include "proxy/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace certrelay::proxy {
namespace {

// The address $NOTIFY_SOCKET names; false when it names none this code can use.
bool notifyAddress(sockaddr_un& addr, socklen_t& length) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr) {
    return false;
  }
  const std::string_view name(env);
  // A path ("/run/systemd/notify") or an abstract name ("@..."); nothing else (relative paths,
  // "vsock:" of newer systemd) is used.
  if (name.size() < 2 || (name[0] != '/' && name[0] != '@') || name.size() > sizeof addr.sun_path) {
    return false;
  }
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.data(), name.size());
  if (name[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract: the name is the bytes after the NUL, not terminated
  }
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  return true;
}

}  // namespace

bool notifyService(std::string_view state) {
  sockaddr_un addr{};
  socklen_t length = 0;
  if (state.empty() || !notifyAddress(addr, length)) {
    return false;
  }
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  ssize_t sent = -1;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&addr), length);
  } while (sent < 0 && errno == EINTR);
  static_cast<void>(::close(fd));
  return sent == static_cast<ssize_t>(state.size());
}

bool notifyReady() {
  return notifyService("READY=1");
}

bool notifyReloading() {
  timespec now{};
  static_cast<void>(::clock_gettime(CLOCK_MONOTONIC, &now));
  const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                    static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
  return notifyService("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool notifyStopping() {
  return notifyService("STOPPING=1");
}

}  // namespace certrelay::proxy
