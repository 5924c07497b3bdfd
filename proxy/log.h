#pragma once
// One line per event on stdout, in the words mail operators grep for; text or JSON ([log]).
//
// Text (the default): `<UTC ISO-8601 time, µs> certrelay[<pid>]: [<level>: ][<session id>: ]
// <message>`, the level written for debug, warning and error only (Postfix's style). Fields are
// not printed: the sentence already carries them.
//
// JSON: one object per line, keys in this order:
//   {"ts":"2026-12-02T11:00:00.123Z","level":"info","session":"0A1B2C000001","msg":"...",<fields>}
// `ts` in milliseconds; `level` is debug|info|warning|error; `session` only when there is one;
// `msg` is the text mode's sentence (without the level and session prefixes); each Field
// becomes a key after them (a string, a number or a boolean). A field named like one of the
// four fixed keys is written as `field_<name>`; keys are the caller's constants, kept unique by
// the caller. Strings are escaped as nlohmann::json's dump(-1, ' ', false, replace) does:
// `"` `\` and \b \f \n \r \t with a backslash, other bytes below 0x20 as \u00xx (lower-case
// hex), valid UTF-8 (DEL included) as is, and each maximal invalid UTF-8 subpart (a stray
// byte, a truncated or overlong sequence, a surrogate) as one U+FFFD. So a line is valid JSON
// and stays one line whatever bytes a message or a field holds. The escaper is this module's
// own, not nlohmann's (building and dumping a line with nlohmann::ordered_json took about
// 1.4 µs against 0.2 µs), and the tests compare the two byte for byte.
//
// Levels: configure() sets the minimum once at start-up, before other threads exist; a line
// below it costs one branch (line() and the helpers are inline). A message that is expensive to
// build is guarded by enabled() (`if (log::enabled(log::Level::Debug)) log::debug(...)`).
//
// Lines never interleave: each reaches stdout whole, in one write(2) of at most PIPE_BUF bytes
// where it fits (a pipe write that size is atomic even with several writers).
//
// Event-loop threads batch: between beginBatching() and endBatching() a thread's debug and info
// lines collect in a thread-local buffer. The buffer is written (one write(2), at most PIPE_BUF
// bytes unless one line is longer) before it would exceed kBatchBytes, and otherwise when the
// thread's loop finds it due: flushIfDue() once per loop iteration, plus a timer for the delay
// it returns, so that no line waits more than about the flush interval ([log] flush_interval,
// 50 ms by default; 0 writes at the end of each loop iteration). Warnings and errors are
// written at once, after whatever was batched before them, so the order within a thread is kept.

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace certrelay::config {
struct Log;
}

namespace certrelay::log {

enum class Level { Debug, Info, Warning, Error };

// One structured value of a line: a JSON key in JSON mode, ignored in text mode. Views: the
// strings must outlive the call only (a braced list of fields in the call is fine).
struct Field {
  enum class Kind : unsigned char { Text, Signed, Unsigned, Bool };

  Field() = default;
  Field(std::string_view k, std::string_view v) : key(k), text(v) {}
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) Field(std::string_view k, T v)
      : key(k),
        number(static_cast<std::uint64_t>(v)),
        kind(std::is_signed_v<T> ? Kind::Signed : Kind::Unsigned) {}
  // A template so that a string literal never converts to bool.
  template <std::same_as<bool> B>
  Field(std::string_view k, B v) : key(k), number(v ? 1 : 0), kind(Kind::Bool) {}

  std::string_view key;
  std::string_view text;
  std::uint64_t number = 0;  // a Signed value's two's complement bits
  Kind kind = Kind::Text;
};

// Sets the format and the minimum level ([log]). Called once at start-up, before worker threads
// exist; until then lines are text, Info and up.
void configure(const config::Log& settings);

namespace detail {
inline std::atomic<Level> threshold{Level::Info};
inline std::atomic<bool> json{false};
void emit(Level level, std::string_view sessionId, std::string_view message,
          std::span<const Field> fields);
}  // namespace detail

// Whether a line of this level is written at all.
inline bool enabled(Level level) {
  return level >= detail::threshold.load(std::memory_order_relaxed);
}
// Whether fields are written (JSON): a caller that must build them first asks this.
inline bool structured() {
  return detail::json.load(std::memory_order_relaxed);
}

inline void line(Level level, std::string_view sessionId, std::string_view message,
                 std::span<const Field> fields) {
  if (enabled(level)) {
    detail::emit(level, sessionId, message, fields);
  }
}
inline void line(Level level, std::string_view sessionId, std::string_view message,
                 std::initializer_list<Field> fields = {}) {
  line(level, sessionId, message, std::span<const Field>(fields.begin(), fields.size()));
}
inline void debug(std::string_view message) {
  line(Level::Debug, {}, message);
}
inline void info(std::string_view message) {
  line(Level::Info, {}, message);
}
inline void warning(std::string_view message) {
  line(Level::Warning, {}, message);
}
inline void error(std::string_view message) {
  line(Level::Error, {}, message);
}

// Batching for the calling thread (see above). endBatching() flushes.
constexpr std::size_t kBatchBytes = 4096;
constexpr std::chrono::milliseconds kDefaultFlushInterval{50};
void beginBatching();
void endBatching();
// Writes the calling thread's batched lines now; a no-op when there are none.
void flush();
// Whether the calling thread's batched lines should be written now: kBatchBytes pending, or the
// oldest of them waiting for the flush interval or more.
bool flushDue();
// flush() if flushDue(). Returns how long until the lines still pending are due (whole
// milliseconds, rounded up, at least 1), or nullopt when none are pending.
std::optional<std::chrono::milliseconds> flushIfDue();

// Appends `text` as the contents of a JSON string (without the quotes), escaped as above.
void appendJsonString(std::string& out, std::string_view text);

// Tests: the clock that dates batched lines (nullptr: std::chrono::steady_clock::now).
using Clock = std::chrono::steady_clock::time_point (*)();
void setClockForTesting(Clock clock);

}  // namespace certrelay::log
