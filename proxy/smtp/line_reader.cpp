#include "proxy/smtp/line_reader.h"

#include <algorithm>

#include "common/idle_buffer.h"

namespace certrelay::smtp {

namespace {
// Consumed bytes are erased from the front once they exceed this, so a long pipelined burst
// does not keep every already-returned line in memory while next() walks through it.
constexpr std::size_t kCompactThreshold = std::size_t{16} * 1024;
}  // namespace

void LineReader::feed(std::string_view bytes) {
  if (discarding_) {
    const std::size_t lf = bytes.find('\n');
    if (lf == std::string_view::npos) {
      return;  // still inside the over-long line: drop, never buffer
    }
    discarding_ = false;
    bytes.remove_prefix(lf + 1);
  }
  buffer_.append(bytes.data(), bytes.size());
}

LineReader::Result LineReader::next(std::string& line) {
  const std::size_t lf = buffer_.find('\n', pos_);
  if (lf == std::string::npos) {
    if (buffered() >= max_) {
      // Even before its LF arrives the line is longer than the cap (the LF counts too). Report
      // it once; feed() drops the rest up to the LF.
      buffer_.clear();
      pos_ = 0;
      discarding_ = true;
      return Result::TooLong;
    }
    // Only a partial line shorter than the cap remains: moving it to the front is cheap and
    // keeps memory O(cap).
    buffer_.erase(0, pos_);
    pos_ = 0;
    return Result::NeedMore;
  }

  const std::size_t start = pos_;
  const std::size_t length = lf - start + 1;  // the cap counts the line end too
  Result result = Result::TooLong;
  if (length <= max_) {
    std::size_t end = lf;
    if (end > start && buffer_[end - 1] == '\r') {
      --end;  // only the CR directly before the LF; any other CR stays in the line
    }
    line.assign(buffer_, start, end - start);
    result = Result::Line;
  }
  consume(lf + 1 - pos_);
  return result;
}

void LineReader::consume(std::size_t n) {
  pos_ += n;
  // Keep memory O(cap): drop the consumed prefix once it is empty or large.
  if (pos_ == buffer_.size()) {
    releaseIdleBuffer(buffer_);  // a large read's memory goes back (common/idle_buffer.h)
    pos_ = 0;
  } else if (pos_ >= kCompactThreshold) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
}

void LineReader::clear() {
  buffer_.clear();
  buffer_.shrink_to_fit();
  pos_ = 0;
  discarding_ = false;
}

std::string LineReader::takeRemainder() {
  std::string rest = buffer_.substr(pos_);
  buffer_.clear();
  pos_ = 0;
  discarding_ = false;
  return rest;
}

std::size_t LineReader::takeBytes(std::size_t max, std::string& out) {
  const std::size_t n = std::min(max, buffered());
  out.append(buffer_, pos_, n);
  consume(n);
  return n;
}

}  // namespace certrelay::smtp
