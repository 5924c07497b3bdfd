#pragma once
// One line per event on stdout, in the words mail operators grep for.
//
// Layout: `<UTC ISO-8601 time> certrelay[<pid>]: [<session id>: ]<message>`. Each line is
// written with a single write(2) so lines from different workers never interleave.

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

}  // namespace certrelay::log
