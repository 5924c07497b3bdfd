#include "proxy/smtp/data_canonicalizer.h"

namespace certrelay::smtp {

void DataCanonicalizer::endLine(std::string& out, bool crlf) {
  out.append("\r\n");
  contentBytes_ += 2;
  prevCrlf_ = crlf;
  state_ = State::LineStart;
}

std::size_t DataCanonicalizer::feed(std::string_view input, std::string& out) {
  if (done_) {
    return 0;
  }
  std::size_t i = 0;
  while (i < input.size()) {
    const char c = input[i];
    switch (state_) {
      case State::LineStart:
        if (c == '.') {
          // Held back: either the terminator or a dot the receiver rule deletes.
          state_ = State::Dot;
        } else if (c == '\r') {
          state_ = State::MiddleCr;
        } else if (c == '\n') {
          endLine(out, false);
        } else {
          out.push_back(c);
          ++contentBytes_;
          state_ = State::Middle;
        }
        ++i;
        break;

      case State::Dot:
        if (c == '\r') {
          state_ = State::DotCr;
        } else if (c == '\n') {
          endLine(out, false);  // "." ended by bare LF: content is the empty line
        } else {
          if (c == '.') {
            out.push_back('.');  // the content line starts with '.': stuff it again
          }
          out.push_back(c);
          ++contentBytes_;
          state_ = State::Middle;
        }
        ++i;
        break;

      case State::DotCr:
        if (c == '\n') {
          ++i;
          if (prevCrlf_) {
            // <CRLF>.<CRLF>: the only end of data. The bytes after it are not ours.
            done_ = true;
            state_ = State::LineStart;
            return i;
          }
          endLine(out, true);  // "." after a bare line end: content, an empty line
        } else {
          // "." ended by a bare CR: an empty content line. `c` starts the next line, so it is
          // not consumed here.
          endLine(out, false);
        }
        break;

      case State::Middle: {
        // Fast path: copy up to the next line-end byte in one go.
        std::size_t end = i;
        while (end < input.size() && input[end] != '\r' && input[end] != '\n') {
          ++end;
        }
        out.append(input.data() + i, end - i);
        contentBytes_ += end - i;
        i = end;
        if (i < input.size()) {
          if (input[i] == '\r') {
            state_ = State::MiddleCr;
          } else {
            endLine(out, false);
          }
          ++i;
        }
        break;
      }

      case State::MiddleCr:
        if (c == '\n') {
          endLine(out, true);
          ++i;
        } else {
          endLine(out, false);  // bare CR; `c` belongs to the next line
        }
        break;
    }
  }
  return i;
}

void DataCanonicalizer::finish(std::string& out) {
  // Before done() a line may be open (held dot, held CR, or plain content): close it so the
  // terminator below is on a line of its own. After done() the state is LineStart.
  if (state_ != State::LineStart) {
    endLine(out, false);
  }
  out.append(".\r\n");
  done_ = true;
}

void DataCanonicalizer::reset() {
  *this = DataCanonicalizer{};
}

}  // namespace certrelay::smtp
