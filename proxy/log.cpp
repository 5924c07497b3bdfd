#include "proxy/log.h"

#include <limits.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <string>

#include "config/config.h"

namespace certrelay::log {
namespace {

std::atomic<config::LogFormat> format{config::LogFormat::Text};
std::atomic<Clock> testClock{nullptr};
std::atomic<std::chrono::milliseconds::rep> flushIntervalMs{kDefaultFlushInterval.count()};

std::chrono::milliseconds flushInterval() {
  return std::chrono::milliseconds(flushIntervalMs.load(std::memory_order_relaxed));
}

// A thread's buffers are given back once a burst or a long line grew them beyond this.
constexpr std::size_t kKeptCapacity = std::size_t{64} * 1024;

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

struct ThreadState {
  ThreadState() = default;
  ThreadState(const ThreadState&) = delete;
  ThreadState& operator=(const ThreadState&) = delete;
  // A thread that ends while batching still gets its lines out.
  ~ThreadState() { writeLines(pending); }

  bool batching = false;
  std::string pending;
  std::chrono::steady_clock::time_point pendingSince;  // when the oldest pending line came
  std::string scratch;                                 // the line being formatted
  // The formatted "YYYY-mm-ddTHH:MM:SS" of lastSecond: a busy worker logs many lines a second.
  time_t lastSecond = -1;
  char stamp[32] = {};
  std::size_t stampLength = 0;
};

thread_local ThreadState state;

std::chrono::steady_clock::time_point now() {
  const Clock clock = testClock.load(std::memory_order_relaxed);
  return clock != nullptr ? clock() : std::chrono::steady_clock::now();
}

const std::string& programTag() {
  // The process never forks after start-up, so the pid is read once (it was one getpid(2) per
  // line before).
  static const std::string tag = " certrelay[" + std::to_string(getpid()) + "]: ";
  return tag;
}

// Appends `value` as exactly `width` (at most 6) decimal digits.
void appendDigits(std::string& out, unsigned long value, std::size_t width) {
  char digits[6];
  for (std::size_t i = width; i > 0; --i) {
    digits[i - 1] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(digits, width);
}

// "YYYY-mm-ddTHH:MM:SS.ffffffZ", or with milliseconds only.
void appendTimestamp(std::string& out, bool milliseconds) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  if (tv.tv_sec != state.lastSecond) {
    tm utc{};
    gmtime_r(&tv.tv_sec, &utc);
    state.stampLength = std::strftime(state.stamp, sizeof state.stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    state.lastSecond = tv.tv_sec;
  }
  out.append(state.stamp, state.stampLength);
  out.push_back('.');
  const auto micros = static_cast<unsigned long>(tv.tv_usec);
  if (milliseconds) {
    appendDigits(out, micros / 1000, 3);
  } else {
    appendDigits(out, micros, 6);
  }
  out.push_back('Z');
}

// How each ASCII byte is written inside a JSON string: 0 as is, otherwise the character after
// the backslash ('u' for \u00xx).
constexpr std::array<char, 128> kAsciiEscapes = [] {
  std::array<char, 128> table{};
  for (std::size_t c = 0; c < 0x20; ++c) {
    table[c] = 'u';
  }
  table['\b'] = 'b';
  table['\f'] = 'f';
  table['\n'] = 'n';
  table['\r'] = 'r';
  table['\t'] = 't';
  table['"'] = '"';
  table['\\'] = '\\';
  return table;
}();

void appendEscape(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char kind = kAsciiEscapes[c];
  out.push_back('\\');
  out.push_back(kind);
  if (kind == 'u') {
    out.append("00");
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
}

// Whether none of the 8 bytes in `word` needs a look: no byte below 0x20, no '"', no '\\', none
// from 0x80 (the "has less than" and "has zero byte" bit tricks: exact for "any", the only use).
bool plainWord(std::uint64_t word) {
  constexpr std::uint64_t kOnes = 0x0101010101010101;
  constexpr std::uint64_t kHigh = kOnes * 0x80;
  const std::uint64_t quotes = word ^ (kOnes * '"');
  const std::uint64_t backslashes = word ^ (kOnes * '\\');
  const std::uint64_t found = ((word - kOnes * 0x20) & ~word) | ((quotes - kOnes) & ~quotes) |
                              ((backslashes - kOnes) & ~backslashes) | word;
  return (found & kHigh) == 0;
}

// The length of the well-formed UTF-8 sequence at p[0], a byte >= 0x80 (the Unicode standard's
// table 3-7: no overlong form, no surrogate, nothing above U+10FFFF); or 0, and in `invalid` the
// length of its maximal subpart (at least 1), which one U+FFFD replaces.
std::size_t utf8Length(const unsigned char* p, std::size_t left, std::size_t& invalid) {
  const unsigned char lead = p[0];
  std::size_t length = 0;
  unsigned char low = 0x80;  // the second byte's range; later ones are 0x80-0xbf
  unsigned char high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    low = lead == 0xe0 ? 0xa0 : 0x80;
    high = lead == 0xed ? 0x9f : 0xbf;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    low = lead == 0xf0 ? 0x90 : 0x80;
    high = lead == 0xf4 ? 0x8f : 0xbf;
  } else {
    invalid = 1;
    return 0;
  }
  std::size_t i = 1;
  for (; i < length && i < left; ++i) {
    const unsigned char b = p[i];
    if (i == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xbf)) {
      break;
    }
  }
  if (i == length) {
    return length;
  }
  invalid = i;
  return 0;
}

std::string_view levelName(Level level) {
  switch (level) {
    case Level::Debug:
      return "debug";
    case Level::Info:
      return "info";
    case Level::Warning:
      return "warning";
    case Level::Error:
      return "error";
  }
  return "info";
}

void appendJsonValue(std::string& out, const Field& field) {
  char digits[24];
  std::to_chars_result end{};
  switch (field.kind) {
    case Field::Kind::Text:
      out.push_back('"');
      appendJsonString(out, field.text);
      out.push_back('"');
      return;
    case Field::Kind::Bool:
      out.append(field.number != 0 ? "true" : "false");
      return;
    case Field::Kind::Signed:
      end = std::to_chars(digits, digits + sizeof digits, static_cast<std::int64_t>(field.number));
      break;
    case Field::Kind::Unsigned:
      end = std::to_chars(digits, digits + sizeof digits, field.number);
      break;
  }
  out.append(digits, end.ptr);
}

bool reservedKey(std::string_view key) {
  return key == "ts" || key == "level" || key == "session" || key == "msg";
}

void formatJson(std::string& out, Level level, std::string_view sessionId, std::string_view message,
                std::span<const Field> fields) {
  out.append("{\"ts\":\"");
  appendTimestamp(out, true);
  out.append("\",\"level\":\"");
  out.append(levelName(level));
  out.push_back('"');
  if (!sessionId.empty()) {
    out.append(",\"session\":\"");
    appendJsonString(out, sessionId);
    out.push_back('"');
  }
  out.append(",\"msg\":\"");
  appendJsonString(out, message);
  out.push_back('"');
  for (const Field& field : fields) {
    out.append(",\"");
    if (reservedKey(field.key)) {
      out.append("field_");
    }
    appendJsonString(out, field.key);
    out.append("\":");
    appendJsonValue(out, field);
  }
  out.append("}\n");
}

void formatText(std::string& out, Level level, std::string_view sessionId,
                std::string_view message) {
  appendTimestamp(out, false);
  out.append(programTag());
  if (level != Level::Info) {
    out.append(levelName(level));
    out.append(": ");
  }
  if (!sessionId.empty()) {
    out.append(sessionId);
    out.append(": ");
  }
  out.append(message);
  out.push_back('\n');
}

// Adds a debug or info line to the batch; the batch is written before it would pass
// kBatchBytes, so that a batch is one write(2) of at most PIPE_BUF bytes.
void batch(const std::string& text) {
  if (!state.pending.empty() && state.pending.size() + text.size() > kBatchBytes) {
    flush();
  }
  if (state.pending.empty()) {
    state.pendingSince = now();
  }
  state.pending.append(text);
  if (state.pending.size() >= kBatchBytes) {
    flush();
  }
}

}  // namespace

void configure(const config::Log& settings) {
  format.store(settings.format, std::memory_order_relaxed);
  detail::json.store(settings.format == config::LogFormat::Json, std::memory_order_relaxed);
  flushIntervalMs.store(settings.flushInterval.count(), std::memory_order_relaxed);
  Level level = Level::Info;
  switch (settings.level) {
    case config::LogLevel::Debug:
      level = Level::Debug;
      break;
    case config::LogLevel::Info:
      level = Level::Info;
      break;
    case config::LogLevel::Warning:
      level = Level::Warning;
      break;
    case config::LogLevel::Error:
      level = Level::Error;
      break;
  }
  detail::threshold.store(level, std::memory_order_relaxed);
}

void detail::emit(Level level, std::string_view sessionId, std::string_view message,
                  std::span<const Field> fields) {
  std::string& out = state.scratch;
  out.clear();
  if (format.load(std::memory_order_relaxed) == config::LogFormat::Json) {
    formatJson(out, level, sessionId, message, fields);
  } else {
    formatText(out, level, sessionId, message);
  }
  if (state.batching && level <= Level::Info) {
    batch(out);
  } else {
    flush();
    writeAll(out.data(), out.size());
  }
  if (out.capacity() > kKeptCapacity) {
    std::string().swap(out);
  }
}

void appendJsonString(std::string& out, std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t copied = 0;  // text[copied, i) goes out as is when the run ends
  std::size_t i = 0;
  while (i < n) {
    std::uint64_t word = 0;
    if (n - i >= sizeof word) {
      std::memcpy(&word, p + i, sizeof word);
      if (plainWord(word)) {
        i += sizeof word;
        continue;
      }
    }
    const unsigned char c = p[i];
    if (c < 0x80 && kAsciiEscapes[c] == 0) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      std::size_t invalid = 0;
      const std::size_t length = utf8Length(p + i, n - i, invalid);
      if (length != 0) {
        i += length;
        continue;
      }
      out.append(text.data() + copied, i - copied);
      out.append("\xef\xbf\xbd");  // U+FFFD
      i += invalid;
      copied = i;
      continue;
    }
    out.append(text.data() + copied, i - copied);
    appendEscape(out, c);
    copied = ++i;
  }
  out.append(text.data() + copied, n - copied);
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
  if (state.pending.capacity() > kKeptCapacity) {
    state.pending.shrink_to_fit();  // a long line must not pin its buffer for the process's life
  }
}

bool flushDue() {
  return !state.pending.empty() &&
         (state.pending.size() >= kBatchBytes || now() - state.pendingSince >= flushInterval());
}

std::optional<std::chrono::milliseconds> flushIfDue() {
  if (state.pending.empty()) {
    return std::nullopt;
  }
  const auto waited = now() - state.pendingSince;
  const auto interval = flushInterval();
  if (state.pending.size() >= kBatchBytes || waited >= interval) {
    flush();
    return std::nullopt;
  }
  return std::max(std::chrono::milliseconds(1),
                  std::chrono::ceil<std::chrono::milliseconds>(interval - waited));
}

void setClockForTesting(Clock clock) {
  testClock.store(clock, std::memory_order_relaxed);
}

}  // namespace certrelay::log
