#include "proxy/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string>

namespace certrelay::log {

void line(Level level, std::string_view sessionId, std::string_view message) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  char stamp[64];
  const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string out;
  out.reserve(96 + message.size());
  out.append(stamp, n);
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06ldZ", static_cast<long>(tv.tv_usec));
  out.append(frac);
  out.append(" certrelay[");
  out.append(std::to_string(getpid()));
  out.append("]: ");
  if (level == Level::Warning) {
    out.append("warning: ");
  } else if (level == Level::Error) {
    out.append("error: ");
  }
  if (!sessionId.empty()) {
    out.append(sessionId);
    out.append(": ");
  }
  out.append(message);
  out.push_back('\n');
  // A single write keeps the line whole; a short write on a pipe is retried for the rest.
  const char* p = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    const ssize_t w = ::write(STDOUT_FILENO, p, left);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;  // stdout gone: nothing sensible to do from a logger
    }
    p += w;
    left -= static_cast<std::size_t>(w);
  }
}

}  // namespace certrelay::log
