#pragma once
// One line per event on stdout, in the words mail operators grep for.
//
// Layout: `<UTC ISO-8601 time> certrelay[<pid>]: [<session id>: ]<message>`. Lines never
// interleave: each reaches stdout whole, in one write(2) of at most PIPE_BUF bytes where it
// fits (a pipe write that size is atomic even with several writers).
//
// Event-loop threads may batch: between beginBatching() and endBatching() a thread's Info
// lines collect in a thread-local buffer that flush() writes in as few write(2) calls as
// possible. A worker flushes once per loop iteration, just before it waits for I/O, so a
// line is delayed by one iteration at most and a session's several lines cost one system
// call instead of one each (bench/RESULTS.md). Warnings and errors flush at once, after
// whatever was batched before them, so the order within a thread is kept.

#include <string_view>

namespace certrelay::log {

enum class Level { Info, Warning, Error };

void line(Level level, std::string_view sessionId, std::string_view message);
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
void beginBatching();
void endBatching();
// Writes the calling thread's batched lines now; a no-op when there are none.
void flush();

}  // namespace certrelay::log
