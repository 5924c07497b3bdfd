// proxy/log: line layout, batching per thread, and whole lines in pipe-atomic writes.

#include "proxy/log.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace certrelay::log {
namespace {

// Points stdout at a SOCK_SEQPACKET socket pair for the life of the object: each write(2) the
// logger makes arrives as one record, so the tests see how many writes there were and how big.
class CapturedStdout {
 public:
  CapturedStdout() {
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds_) == 0);
    REQUIRE(::fcntl(fds_[0], F_SETFL, O_NONBLOCK) == 0);
    saved_ = ::dup(STDOUT_FILENO);
    REQUIRE(saved_ >= 0);
    REQUIRE(::dup2(fds_[1], STDOUT_FILENO) == STDOUT_FILENO);
  }
  ~CapturedStdout() {
    ::dup2(saved_, STDOUT_FILENO);
    ::close(saved_);
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  CapturedStdout(const CapturedStdout&) = delete;
  CapturedStdout& operator=(const CapturedStdout&) = delete;

  // Everything written so far; `writes` gets one entry per write(2).
  std::string drain(std::vector<std::string>* writes = nullptr) {
    std::string all;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fds_[0], buf, sizeof buf);
      if (n <= 0) {
        return all;
      }
      all.append(buf, static_cast<std::size_t>(n));
      if (writes != nullptr) {
        writes->emplace_back(buf, static_cast<std::size_t>(n));
      }
    }
  }

 private:
  int fds_[2] = {-1, -1};
  int saved_ = -1;
};

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t nl = text.find('\n', start);
    REQUIRE(nl != std::string::npos);  // nothing but whole lines
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::string suffixAfterTag(const std::string& line) {
  const std::string tag = " certrelay[" + std::to_string(::getpid()) + "]: ";
  const std::size_t at = line.find(tag);
  REQUIRE(at != std::string::npos);
  return line.substr(at + tag.size());
}

}  // namespace

TEST_CASE("log: layout is time, program tag with pid, level, session id, message") {
  CapturedStdout out;
  line(Level::Warning, "00AB12000001", "something odd");
  const auto lines = splitLines(out.drain());
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].size() > 27);
  CHECK(lines[0][4] == '-');
  CHECK(lines[0][10] == 'T');
  CHECK(lines[0][26] == 'Z');
  CHECK(suffixAfterTag(lines[0]) == "warning: 00AB12000001: something odd");
}

TEST_CASE("log: without batching each line is written at once") {
  CapturedStdout out;
  info("first");
  CHECK(splitLines(out.drain()).size() == 1);
}

TEST_CASE("log: batched info lines wait for flush, in order") {
  CapturedStdout out;
  beginBatching();
  info("one");
  line(Level::Info, "S1", "two");
  CHECK(out.drain().empty());
  flush();
  std::vector<std::string> writes;
  const auto lines = splitLines(out.drain(&writes));
  endBatching();
  CHECK(writes.size() == 1);  // the point of batching: one system call for both
  REQUIRE(lines.size() == 2);
  CHECK(suffixAfterTag(lines[0]) == "one");
  CHECK(suffixAfterTag(lines[1]) == "S1: two");
}

TEST_CASE("log: a warning goes out at once, after the info lines batched before it") {
  CapturedStdout out;
  beginBatching();
  info("before");
  warning("now");
  const auto lines = splitLines(out.drain());
  endBatching();
  REQUIRE(lines.size() == 2);
  CHECK(suffixAfterTag(lines[0]) == "before");
  CHECK(suffixAfterTag(lines[1]) == "warning: now");
}

TEST_CASE("log: endBatching flushes and later lines are written at once") {
  CapturedStdout out;
  beginBatching();
  info("pending");
  endBatching();
  CHECK(splitLines(out.drain()).size() == 1);
  info("direct");
  CHECK(splitLines(out.drain()).size() == 1);
}

TEST_CASE("log: a large batch is written in whole lines of at most PIPE_BUF bytes per write") {
  CapturedStdout out;
  beginBatching();
  const std::string message(300, 'm');
  for (int i = 0; i < 100; ++i) {
    info(message + std::to_string(i));
  }
  flush();
  endBatching();
  std::vector<std::string> writes;
  const std::string all = out.drain(&writes);
  const auto lines = splitLines(all);
  REQUIRE(lines.size() == 100);
  for (int i = 0; i < 100; ++i) {
    CHECK(suffixAfterTag(lines[static_cast<std::size_t>(i)]) == message + std::to_string(i));
  }
  CHECK(writes.size() > 1);
  CHECK(writes.size() < 20);  // about 12 lines per write, not one write per line
  for (const auto& w : writes) {
    CHECK(w.size() <= PIPE_BUF);
    CHECK(w.back() == '\n');
  }
}

TEST_CASE("log: a line longer than PIPE_BUF is written whole, on its own") {
  CapturedStdout out;
  beginBatching();
  info("short");
  info(std::string(PIPE_BUF + 100, 'L'));
  info("after");
  flush();
  endBatching();
  std::vector<std::string> writes;
  const auto lines = splitLines(out.drain(&writes));
  REQUIRE(lines.size() == 3);
  REQUIRE(writes.size() == 3);
  CHECK(splitLines(writes[1]).size() == 1);
  CHECK(suffixAfterTag(lines[1]) == std::string(PIPE_BUF + 100, 'L'));
}

}  // namespace certrelay::log
