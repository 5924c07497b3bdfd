// The log for unit_admin: certrelay_admin logs through proxy/log.h, whose implementation lives
// in certrelay_proxy, which unit_admin does not link (it would pull in the whole proxy). This
// stands in for it and keeps the lines, so that tests can check what the admin code logs.

#include <doctest/doctest.h>

#include <mutex>
#include <string>
#include <vector>

#include "proxy/log.h"

namespace certrelay {
namespace {

std::mutex mutex;
std::vector<std::string> lines;

}  // namespace

namespace log::detail {

void emit(Level level, std::string_view sessionId, std::string_view message,
          std::span<const Field>) {
  std::string text;
  if (level == Level::Warning) {
    text = "warning: ";
  } else if (level == Level::Error) {
    text = "error: ";
  }
  if (!sessionId.empty()) {
    text += std::string(sessionId) + ": ";
  }
  text += message;
  const std::lock_guard<std::mutex> lock(mutex);
  lines.push_back(std::move(text));
}

}  // namespace log::detail

namespace admin::test {

// Declared where used (the admin tests): the lines logged so far, warnings as "warning: ...".
std::vector<std::string> loggedLines();
bool logged(const std::string& line);

std::vector<std::string> loggedLines() {
  const std::lock_guard<std::mutex> lock(mutex);
  return lines;
}

bool logged(const std::string& line) {
  const std::lock_guard<std::mutex> lock(mutex);
  for (const std::string& l : lines) {
    if (l == line) {
      return true;
    }
  }
  return false;
}

}  // namespace admin::test
}  // namespace certrelay

TEST_CASE("admin log capture: keeps each line with its level") {
  certrelay::log::warning("admin: capture check");
  CHECK(certrelay::admin::test::logged("warning: admin: capture check"));
}
