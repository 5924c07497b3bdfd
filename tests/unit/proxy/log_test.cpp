// proxy/log: line layout (text and JSON), levels, JSON escaping against nlohmann::json, batching
// per thread (4 KiB, 50 ms), and whole lines in pipe-atomic writes.

#include "proxy/log.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"

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

// Sets [log] for the life of the object; the defaults (text, info) come back after.
class Configured {
 public:
  Configured(config::LogFormat format, config::LogLevel level,
             std::chrono::milliseconds flushInterval = kDefaultFlushInterval) {
    config::Log settings;
    settings.format = format;
    settings.level = level;
    settings.flushInterval = flushInterval;
    configure(settings);
  }
  ~Configured() { configure(config::Log{}); }
  Configured(const Configured&) = delete;
  Configured& operator=(const Configured&) = delete;
};

// The clock that dates batched lines, moved by hand for the life of the object.
std::chrono::steady_clock::time_point fakeTime;
std::chrono::steady_clock::time_point fakeNow() {
  return fakeTime;
}
class FakeClock {
 public:
  FakeClock() {
    fakeTime = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    setClockForTesting(&fakeNow);
  }
  ~FakeClock() { setClockForTesting(nullptr); }
  FakeClock(const FakeClock&) = delete;
  FakeClock& operator=(const FakeClock&) = delete;
  void advance(std::chrono::microseconds by) { fakeTime += by; }
};

// What nlohmann::json writes for a string, the reference for the log's escaping.
std::string nlohmannString(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string logString(const std::string& text) {
  std::string out = "\"";
  appendJsonString(out, text);
  out.push_back('"');
  return out;
}

nlohmann::ordered_json parseLine(const std::string& text) {
  nlohmann::ordered_json parsed;
  REQUIRE_NOTHROW(parsed = nlohmann::ordered_json::parse(text));
  REQUIRE(parsed.is_object());
  return parsed;
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

TEST_CASE("log: lines below the configured level are not written") {
  CapturedStdout out;
  {
    const Configured settings(config::LogFormat::Text, config::LogLevel::Warning);
    CHECK_FALSE(enabled(Level::Debug));
    CHECK_FALSE(enabled(Level::Info));
    CHECK(enabled(Level::Warning));
    CHECK(enabled(Level::Error));
    debug("d");
    info("i");
    line(Level::Info, "S1", "i2", {{"key", "value"}});
    warning("w");
    error("e");
    const auto lines = splitLines(out.drain());
    REQUIRE(lines.size() == 2);
    CHECK(suffixAfterTag(lines[0]) == "warning: w");
    CHECK(suffixAfterTag(lines[1]) == "error: e");
  }
  {
    const Configured settings(config::LogFormat::Text, config::LogLevel::Error);
    warning("w");
    error("e");
    const auto lines = splitLines(out.drain());
    REQUIRE(lines.size() == 1);
    CHECK(suffixAfterTag(lines[0]) == "error: e");
  }
  debug("not by default");
  CHECK(out.drain().empty());
  CHECK(enabled(Level::Info));
}

TEST_CASE("log: debug lines, when enabled, say so and are batched like info lines") {
  CapturedStdout out;
  const Configured settings(config::LogFormat::Text, config::LogLevel::Debug);
  beginBatching();
  debug("detail");
  line(Level::Debug, "S1", "more");
  CHECK(out.drain().empty());
  flush();
  const auto lines = splitLines(out.drain());
  endBatching();
  REQUIRE(lines.size() == 2);
  CHECK(suffixAfterTag(lines[0]) == "debug: detail");
  CHECK(suffixAfterTag(lines[1]) == "debug: S1: more");
}

TEST_CASE("log: text lines do not print fields") {
  CapturedStdout out;
  line(Level::Info, "S1", "message accepted: from=<a@b.example> size=12",
       {{"from", "a@b.example"}, {"size", 12}, {"tls", true}});
  const auto lines = splitLines(out.drain());
  REQUIRE(lines.size() == 1);
  CHECK(suffixAfterTag(lines[0]) == "S1: message accepted: from=<a@b.example> size=12");
}

TEST_CASE("log: a JSON line is one object: ts, level, session, msg, then the fields") {
  CapturedStdout out;
  const Configured settings(config::LogFormat::Json, config::LogLevel::Info);
  const std::string sender = "alice@client.example";
  line(Level::Info, "0A1B2C000001", "message accepted by backend: from=<alice@client.example>",
       {{"from", sender},
        {"size", std::size_t{1432}},
        {"delta", -7},
        {"big", std::uint64_t{18446744073709551615U}},
        {"trusted", true}});
  const auto lines = splitLines(out.drain());
  REQUIRE(lines.size() == 1);
  const auto parsed = parseLine(lines[0]);
  std::vector<std::string> keys;
  for (const auto& item : parsed.items()) {
    keys.push_back(item.key());
  }
  CHECK(keys == std::vector<std::string>{"ts", "level", "session", "msg", "from", "size", "delta",
                                         "big", "trusted"});
  const std::string ts = parsed["ts"].get<std::string>();
  REQUIRE(ts.size() == 24);  // 2026-12-02T11:00:00.123Z
  CHECK(ts[4] == '-');
  CHECK(ts[10] == 'T');
  CHECK(ts[19] == '.');
  CHECK(ts[23] == 'Z');
  CHECK(parsed["level"] == "info");
  CHECK(parsed["session"] == "0A1B2C000001");
  CHECK(parsed["msg"] == "message accepted by backend: from=<alice@client.example>");
  CHECK(parsed["from"] == sender);
  CHECK(parsed["size"] == 1432);
  CHECK(parsed["delta"] == -7);
  CHECK(parsed["big"].get<std::uint64_t>() == 18446744073709551615U);
  CHECK(parsed["trusted"] == true);
}

TEST_CASE("log: JSON without a session has no session key; the level is a key, not a prefix") {
  CapturedStdout out;
  const Configured settings(config::LogFormat::Json, config::LogLevel::Debug);
  debug("d");
  warning("w");
  error("e");
  const auto lines = splitLines(out.drain());
  REQUIRE(lines.size() == 3);
  const std::array<const char*, 3> levels = {"debug", "warning", "error"};
  const std::array<const char*, 3> messages = {"d", "w", "e"};
  for (std::size_t i = 0; i < 3; ++i) {
    const auto parsed = parseLine(lines[i]);
    CHECK(parsed.size() == 3);
    CHECK_FALSE(parsed.contains("session"));
    CHECK(parsed["level"] == levels[i]);
    CHECK(parsed["msg"] == messages[i]);
  }
}

TEST_CASE("log: a field named like a fixed JSON key is written as field_<name>") {
  CapturedStdout out;
  const Configured settings(config::LogFormat::Json, config::LogLevel::Info);
  line(Level::Info, "S1", "the message", {{"msg", "other"}, {"session", 1}, {"ts", "t"}});
  const auto lines = splitLines(out.drain());
  REQUIRE(lines.size() == 1);
  const auto parsed = parseLine(lines[0]);
  CHECK(parsed["msg"] == "the message");
  CHECK(parsed["session"] == "S1");
  CHECK(parsed["field_msg"] == "other");
  CHECK(parsed["field_session"] == 1);
  CHECK(parsed["field_ts"] == "t");
}

TEST_CASE("log: hostile bytes in a message, a session id or a field stay one valid JSON line") {
  CapturedStdout out;
  const Configured settings(config::LogFormat::Json, config::LogLevel::Info);
  using namespace std::string_literals;
  const std::vector<std::string> hostile = {
      "nul\0inside"s,
      "cr\rlf\ncrlf\r\n",
      "\"quoted\" \\back\\slash\\",
      "\xff\xfe invalid \xc0\x80 overlong \xed\xa0\x80 surrogate \xe2\x82 truncated",
      "\x01\x1f\x7f \xe2\x82\xac euro \xf0\x9f\x93\xa7 mail",
      // Longer than PIPE_BUF once escaped, five times over (the capture takes 64 KiB a write).
      std::string(1000, '\n') + std::string(1000, '"') + std::string(1000, '\xff'),
      "ends mid-sequence \xf0\x9f\x93",
  };
  for (const std::string& bad : hostile) {
    line(Level::Warning, bad, bad, {{bad, bad}, {"k", bad}});
    const std::string written = out.drain();
    REQUIRE(written.size() > 1);
    CHECK(written.find('\n') == written.size() - 1);
    const auto parsed = parseLine(written.substr(0, written.size() - 1));
    const auto expected = nlohmann::ordered_json::parse(nlohmannString(bad));
    CHECK(parsed["session"] == expected);
    CHECK(parsed["msg"] == expected);
    CHECK(parsed["k"] == expected);
    CHECK(parsed[expected.get<std::string>()] == expected);
    CHECK(written.find(logString(bad)) != std::string::npos);
  }
}

TEST_CASE("log: JSON escaping is nlohmann::json's, byte for byte (every 1-2 byte string)") {
  std::string text;
  CHECK(logString(text) == nlohmannString(text));
  for (unsigned a = 0; a < 256; ++a) {
    for (unsigned b = 0; b < 256; ++b) {
      text.assign({static_cast<char>(a), static_cast<char>(b)});
      REQUIRE(logString(text) == nlohmannString(text));
      text.resize(1);
      REQUIRE(logString(text) == nlohmannString(text));
    }
  }
}

TEST_CASE("log: JSON escaping is nlohmann::json's, byte for byte (any byte in a long ASCII run)") {
  // Plain runs are scanned 8 bytes at a time: every byte value at every offset of two words,
  // alone and followed by a continuation byte.
  for (std::size_t at = 0; at < 17; ++at) {
    for (unsigned b = 0; b < 256; ++b) {
      std::string text(17, 'a');
      text[at] = static_cast<char>(b);
      REQUIRE(logString(text) == nlohmannString(text));
      text.insert(at + 1, 1, '\x80');
      REQUIRE(logString(text) == nlohmannString(text));
    }
  }
}

TEST_CASE("log: JSON escaping is nlohmann::json's, byte for byte (3-4 byte boundary strings)") {
  // Every kind of byte for the UTF-8 decoder: controls, escapes, ASCII, continuation ranges,
  // the lead bytes with narrowed second-byte ranges (E0, ED, F0, F4) and the never-valid ones.
  const std::vector<unsigned char> bytes = {
      0x00, 0x0a, 0x1f, 0x20, '"',  '\\', 'A',  0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
      0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
  std::string text(4, '\0');
  std::size_t mismatches = 0;
  for (unsigned char a : bytes) {
    for (unsigned char b : bytes) {
      for (unsigned char c : bytes) {
        text.resize(3);
        text[0] = static_cast<char>(a);
        text[1] = static_cast<char>(b);
        text[2] = static_cast<char>(c);
        mismatches += logString(text) != nlohmannString(text) ? 1 : 0;
        text.resize(4);
        for (unsigned char d : bytes) {
          text[3] = static_cast<char>(d);
          mismatches += logString(text) != nlohmannString(text) ? 1 : 0;
        }
      }
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("log: JSON escaping is nlohmann::json's, byte for byte (random strings)") {
  std::mt19937 random(20261202);
  // Half the bytes from the interesting end (controls, high bytes), half anything.
  std::uniform_int_distribution<int> length(0, 200);
  std::uniform_int_distribution<int> anyByte(0, 255);
  std::uniform_int_distribution<int> highByte(0x80, 0xff);
  std::uniform_int_distribution<int> kind(0, 3);
  std::string text;
  for (int round = 0; round < 20000; ++round) {
    text.resize(static_cast<std::size_t>(length(random)));
    for (char& c : text) {
      const int k = kind(random);
      c = static_cast<char>(k == 0   ? highByte(random)
                            : k == 1 ? anyByte(random) % 0x21
                                     : anyByte(random));
    }
    REQUIRE(logString(text) == nlohmannString(text));
  }
  const std::string valid = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7 \xf4\x8f\xbf\xbf";
  CHECK(logString(valid) == "\"" + valid + "\"");  // valid UTF-8 is kept as is
}

TEST_CASE("log: batched lines are written before they would pass 4 KiB, one write per batch") {
  CapturedStdout out;
  const std::string message(300, 'm');
  info(message);
  const std::size_t lineSize = out.drain().size();
  const std::size_t fit = kBatchBytes / lineSize;
  REQUIRE(fit * lineSize < kBatchBytes);  // so the batch is written when the next line comes
  beginBatching();
  for (std::size_t i = 0; i < fit; ++i) {
    info(message);
  }
  CHECK(out.drain().empty());
  info(message);
  std::vector<std::string> writes;
  out.drain(&writes);
  REQUIRE(writes.size() == 1);
  CHECK(writes[0].size() == fit * lineSize);
  CHECK(writes[0].size() <= PIPE_BUF);
  CHECK_FALSE(flushDue());  // the last line waits
  flush();
  CHECK(out.drain().size() == lineSize);
  endBatching();
}

TEST_CASE("log: batched lines are due 50 ms after the oldest of them (injected clock)") {
  CapturedStdout out;
  FakeClock clock;
  beginBatching();
  CHECK_FALSE(flushDue());
  CHECK_FALSE(flushIfDue().has_value());  // nothing pending: no timer needed
  info("oldest");
  clock.advance(std::chrono::milliseconds(30));
  info("newer");
  CHECK_FALSE(flushDue());
  CHECK(flushIfDue() == std::chrono::milliseconds(20));
  clock.advance(std::chrono::microseconds(19'500));
  CHECK(flushIfDue() == std::chrono::milliseconds(1));  // rounded up, never 0
  CHECK(out.drain().empty());
  clock.advance(std::chrono::microseconds(500));
  CHECK(flushDue());
  CHECK_FALSE(flushIfDue().has_value());
  CHECK(splitLines(out.drain()).size() == 2);
  // The next batch counts from its own first line.
  info("later");
  clock.advance(std::chrono::milliseconds(49));
  CHECK(flushIfDue() == std::chrono::milliseconds(1));
  CHECK(out.drain().empty());
  clock.advance(std::chrono::milliseconds(1));
  CHECK_FALSE(flushIfDue().has_value());
  CHECK(splitLines(out.drain()).size() == 1);
  endBatching();
}

TEST_CASE("log: the flush interval is [log] flush_interval, and 0 writes at the next check") {
  CapturedStdout out;
  FakeClock clock;
  {
    const Configured settings(config::LogFormat::Text, config::LogLevel::Info,
                              std::chrono::milliseconds(200));
    beginBatching();
    info("waits");
    clock.advance(std::chrono::milliseconds(150));
    CHECK(flushIfDue() == std::chrono::milliseconds(50));
    CHECK(out.drain().empty());
    clock.advance(std::chrono::milliseconds(50));
    CHECK_FALSE(flushIfDue().has_value());
    CHECK(splitLines(out.drain()).size() == 1);
  }
  {
    const Configured settings(config::LogFormat::Text, config::LogLevel::Info,
                              std::chrono::milliseconds(0));
    info("batched until the loop checks");
    CHECK(out.drain().empty());
    CHECK(flushDue());
    CHECK_FALSE(flushIfDue().has_value());
    CHECK(splitLines(out.drain()).size() == 1);
  }
  endBatching();
}

TEST_CASE("log: JSON lines batch like text lines") {
  CapturedStdout out;
  const Configured settings(config::LogFormat::Json, config::LogLevel::Info);
  beginBatching();
  info("one");
  info("two");
  CHECK(out.drain().empty());
  error("now");
  std::vector<std::string> writes;
  const auto lines = splitLines(out.drain(&writes));
  endBatching();
  CHECK(writes.size() == 2);  // the batch, then the error
  REQUIRE(lines.size() == 3);
  CHECK(parseLine(lines[0])["msg"] == "one");
  CHECK(parseLine(lines[1])["msg"] == "two");
  CHECK(parseLine(lines[2])["level"] == "error");
}

TEST_CASE("log: a thread that ends while batching still writes its lines") {
  CapturedStdout out;
  std::thread([] {
    beginBatching();
    info("left behind");
  }).join();
  const auto lines = splitLines(out.drain());
  REQUIRE(lines.size() == 1);
  CHECK(suffixAfterTag(lines[0]) == "left behind");
}

}  // namespace certrelay::log
