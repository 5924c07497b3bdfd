#pragma once
// Rewrites a client's DATA stream into a canonical one for the backend, streaming.
//
// Security role: this is the SMTP-smuggling barrier. Input lines may end in CR LF, bare LF or
// bare CR; every one of them leaves as CR LF. Every output line that starts with '.' is
// dot-stuffed. End of data is recognised only as "." on a line of its own that is terminated by
// CR LF *and* preceded by a CR LF line end (or the start of the data): `<CRLF>.<CRLF>`. Every
// other "." line (`\n.\n`, `\r.\r`, `\n.\r\n`, `\r\n.\r\r\n`, ...) is ordinary content and is
// dot-stuffed. The output therefore holds exactly one terminator, written by finish().
// NUL and 8-bit bytes pass unchanged. State is a few bytes: nothing is held whole.

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
  // Content that did not end with a line end gets one first.
  void finish(std::string& out);

  // Message bytes seen so far (canonical content, for size limits and logs).
  std::uint64_t contentBytes() const { return contentBytes_; }

  void reset();

 private:
  // Implementation-defined small state (position in line, pending CR, pending dot...).
  int state_ = 0;
  bool done_ = false;
  bool pendingCr_ = false;
  bool lastEndedWithCrlf_ = true;  // start of data counts as after CR LF
  bool atLineStart_ = true;
  std::uint64_t contentBytes_ = 0;
};

}  // namespace certrelay::smtp
