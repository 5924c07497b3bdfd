#pragma once
// Rewrites a client's DATA stream into a canonical one for the backend, streaming.
//
// Security role: this is the SMTP-smuggling barrier (hostile-inputs.md 1.6, SM-01, SM-02). Input
// lines may end in CR LF, bare LF or bare CR; every one of them leaves as CR LF. End of data is
// recognised only as "." on a line of its own that is terminated by CR LF *and* preceded by a
// CR LF line end (or the start of the data): `<CRLF>.<CRLF>`. Every other "." line (`\n.\n`,
// `\r.\r`, `\n.\r\n`, `\r\n.\r\r\n`, ...) is ordinary content. The output therefore holds
// exactly one terminator, written by finish().
//
// Dot handling (documented rule): each input line is read as an RFC 5321 section 4.5.2
// receiver reads it, i.e. the first '.' of any line that starts with '.' is deleted, whatever
// ended the previous line. The resulting content line is then written as a sender writes it:
// one '.' is prepended when it starts with '.'. So "..foo" stays "..foo", an unstuffed ".foo"
// becomes "foo", and a lone "." line that is not the terminator becomes an empty line.
// NUL and 8-bit bytes pass unchanged. State is a few bytes: nothing is held whole, and the
// output does not depend on how the input is split across feed() calls.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace certrelay::smtp {

class DataCanonicalizer {
 public:
  // Consumes input up to and including the end-of-data marker. Appends canonical content to
  // `out` (without the terminator). Returns the number of input bytes consumed; when it is less
  // than input.size(), or equal and done() became true, end of data was reached and the
  // remaining bytes belong to the next command.
  std::size_t feed(std::string_view input, std::string& out);

  bool done() const { return done_; }
  // Appends the terminator ".\r\n" (after the last content line's CR LF) to `out`.
  // Content that did not end with a line end gets one first (only possible when finish() is
  // called before done()). Afterwards done() is true and feed() consumes nothing until reset().
  void finish(std::string& out);

  // Message bytes seen so far (canonical content, for size limits and logs).
  std::uint64_t contentBytes() const { return contentBytes_; }

  void reset();

 private:
  // Where the reader is inside the current input line. Bytes that cannot be classified yet (a
  // leading '.', a CR that may or may not be followed by LF) are held in the state, not in a
  // buffer.
  enum class State : std::uint8_t {
    LineStart,  // nothing of the line seen yet
    Dot,        // the line began with '.', which is held back (deleted or the terminator)
    DotCr,      // the line is ".\r" so far: terminator if LF follows and prevCrlf_
    Middle,     // inside a content line, its bytes already written
    MiddleCr,   // inside a line (possibly empty), a CR held back
  };

  // Ends the current line in `out` with CR LF; `crlf` says whether the input used CR LF.
  void endLine(std::string& out, bool crlf);
  // Resolves a held state (Dot, DotCr, MiddleCr) with the next input byte `c`. Returns the bytes
  // consumed: 0 when `c` starts the next line.
  std::size_t feedHeld(char c, std::string& out);

  State state_ = State::LineStart;
  bool done_ = false;
  bool prevCrlf_ = true;  // the previous input line ended with CR LF; the start of data counts
  std::uint64_t contentBytes_ = 0;
};

}  // namespace certrelay::smtp
