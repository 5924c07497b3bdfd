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
  // BDAT chunk data (RFC 3030): appends up to `max` buffered bytes, raw (not lines: CR, LF, NUL
  // and anything else pass unchanged), to `out`, removes them from the buffer and returns how
  // many were moved (0 when nothing is buffered). Bytes that arrive later come in through
  // feed() as usual and are taken by the next call.
  //
  // Call it only at a command boundary, i.e. after next() returned Line (the BDAT command
  // itself), and keep calling it instead of next() until the chunk is complete. Never call it
  // while an over-long line is being discarded (after next() returned TooLong and before that
  // line's LF arrived): feed() drops bytes in that state, and they would be lost from the chunk.
  // A BDAT command is never an over-long line, so a session that follows this order cannot get
  // there.
  std::size_t takeBytes(std::size_t max, std::string& out);

 private:
  // Marks `n` buffered bytes as consumed, compacting the buffer when worthwhile.
  void consume(std::size_t n);
  std::size_t max_;
  std::string buffer_;
  std::size_t pos_ = 0;      // start of the unconsumed part of buffer_
  bool discarding_ = false;  // inside an over-long line, dropping bytes until LF
};

}  // namespace certrelay::smtp
