#include "proxy/log.h"

#include <limits.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <string>

namespace certrelay::log {
namespace {

// Lines above this are flushed without waiting for the loop iteration to end.
constexpr std::size_t kBatchLimit = std::size_t{64} * 1024;

struct ThreadState {
  bool batching = false;
  std::string pending;
  // The formatted "YYYY-mm-ddTHH:MM:SS" of lastSecond: a busy worker logs many lines a second.
  time_t lastSecond = -1;
  char stamp[32] = {};
  std::size_t stampLength = 0;
};

thread_local ThreadState state;

const std::string& programTag() {
  // The process never forks after start-up, so the pid is read once (it was one getpid(2) per
  // line before).
  static const std::string tag = " certrelay[" + std::to_string(getpid()) + "]: ";
  return tag;
}

void writeAll(const char* p, std::size_t left) {
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

// Writes whole lines, in pieces of at most PIPE_BUF bytes cut at line ends, so that no write
// can interleave with another thread's in a pipe. A single longer line goes out alone.
void writeLines(const std::string& text) {
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = start;
    while (end < text.size()) {
      const std::size_t nl = text.find('\n', end);
      const std::size_t next = nl == std::string::npos ? text.size() : nl + 1;
      if (next - start > PIPE_BUF && end > start) {
        break;
      }
      end = next;
    }
    writeAll(text.data() + start, end - start);
    start = end;
  }
}

void appendTimestamp(std::string& out) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  if (tv.tv_sec != state.lastSecond) {
    tm utc{};
    gmtime_r(&tv.tv_sec, &utc);
    state.stampLength = std::strftime(state.stamp, sizeof state.stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    state.lastSecond = tv.tv_sec;
  }
  out.append(state.stamp, state.stampLength);
  char frac[16];
  const int n = std::snprintf(frac, sizeof frac, ".%06ldZ", static_cast<long>(tv.tv_usec));
  out.append(frac, n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace

void line(Level level, std::string_view sessionId, std::string_view message) {
  std::string out;
  out.reserve(96 + message.size());
  appendTimestamp(out);
  out.append(programTag());
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
  if (state.batching && level == Level::Info) {
    state.pending.append(out);
    if (state.pending.size() >= kBatchLimit) {
      flush();
    }
    return;
  }
  flush();
  writeAll(out.data(), out.size());
}

void beginBatching() {
  state.batching = true;
}

void endBatching() {
  flush();
  state.batching = false;
}

void flush() {
  if (state.pending.empty()) {
    return;
  }
  writeLines(state.pending);
  state.pending.clear();
  if (state.pending.capacity() > kBatchLimit * 2) {
    state.pending.shrink_to_fit();  // a burst must not pin its buffer for the process's life
  }
}

}  // namespace certrelay::log
