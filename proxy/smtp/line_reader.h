#pragma once
// Splits a client's command stream into lines, with a hard cap on line length.
//
// Rule (documented in README): a line ends at LF; one CR directly before the LF is removed.
// A bare CR inside a line is kept in the line (the command parser then refuses it), so a bare CR
// never ends a command. A line longer than the cap is reported once as TooLong and the rest of
// it, up to its LF, is discarded without being buffered: memory stays bounded by the cap.

#include <cstddef>
#include <string>
#include <string_view>

namespace certrelay::smtp {

class LineReader {
 public:
  explicit LineReader(std::size_t maxLineLength) : max_(maxLineLength) {}

  enum class Result { Line, NeedMore, TooLong };

  // Appends raw bytes. While the tail of an over-long line is being discarded, bytes up to its
  // LF are dropped here, so they are never buffered.
  void feed(std::string_view bytes);

  // Extracts the next complete line (without CR LF) into `line`.
  Result next(std::string& line);

  // Bytes received but not yet returned as a line (what STARTTLS must discard).
  std::size_t buffered() const { return buffer_.size() - pos_; }
  // Drops everything buffered (STARTTLS: CVE-2011-0411) and any too-long state.
  void clear();
  // Hands over the unconsumed bytes (entering DATA, where another parser takes over).
  std::string takeRemainder();

 private:
  std::size_t max_;
  std::string buffer_;
  std::size_t pos_ = 0;      // start of the unconsumed part of buffer_
  bool discarding_ = false;  // inside an over-long line, dropping bytes until LF
};

}  // namespace certrelay::smtp
