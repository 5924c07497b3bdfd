#include "proxy/smtp/data_canonicalizer.h"

#include <bit>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace certrelay::smtp {

namespace {

// Index of the first CR or LF in data[from, size), or size if there is none.
//
// Nearly all of the canonicaliser's time on ordinary mail (CRLF lines of ~76 octets) is this
// search, so on x86-64 (where SSE2 is always available) it tests 16 bytes per step. It never
// reads past `size`: the last partial block is done byte by byte. Elsewhere the plain loop is
// used (a memchr for each of CR and LF would rescan the same bytes, or go quadratic on input
// that has only one of them).
std::size_t findLineEndByte(const char* data, std::size_t from, std::size_t size) {
  std::size_t i = from;
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  for (; size - i >= 16; i += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
    const __m128i hits = _mm_or_si128(_mm_cmpeq_epi8(block, cr), _mm_cmpeq_epi8(block, lf));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(hits));
    if (mask != 0) {
      return i + static_cast<std::size_t>(std::countr_zero(mask));
    }
  }
#endif
  while (i < size && data[i] != '\r' && data[i] != '\n') {
    ++i;
  }
  return i;
}

}  // namespace

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
  const char* const data = input.data();
  const std::size_t size = input.size();
  // Canonical input comes out the same size (bare CR/LF grow it, deleted dots shrink it), so
  // one reservation usually covers the whole call; more is left to the string's own growth.
  out.reserve(out.size() + size + 2);

  std::size_t i = 0;
  while (i < size) {
    const char c = data[i];
    switch (state_) {
      case State::LineStart:
      case State::Middle: {
        // Fast path. Canonical lines (content, CR LF; "..x" at a line start) leave exactly as
        // they came, so they are not copied one by one: [run, i) is a stretch of input that is
        // also output and is appended in one go when something else is needed (a bare line end,
        // a deleted dot, the end of the input). The byte-wise states below see only what
        // remains: a '.' line start that may be the terminator, and bytes held at the end of
        // a feed. Locals hold the state here and are written back at the end.
        bool lineStart = state_ == State::LineStart;
        bool crlf = prevCrlf_;
        std::size_t run = i;
        std::size_t stuffing = 0;  // stuffing dots inside [run, i): output but not content
        State next = State::Middle;
        const auto flush = [&](std::size_t to) {
          out.append(data + run, to - run);
          contentBytes_ += to - run - stuffing;
          stuffing = 0;
        };
        for (;;) {
          if (lineStart) {
            if (i == size) {
              next = State::LineStart;
              break;
            }
            if (data[i] == '.') {
              const char after = i + 1 < size ? data[i + 1] : '\n';
              if (after == '.') {
                // ".." is a stuffed line: the receiver rule deletes one dot, the sender rule
                // adds it back, so the bytes stay; only the count differs.
                ++stuffing;
                i += 2;
              } else if (after != '\r' && after != '\n') {
                // An unstuffed dot before content: deleted. (`after` is '\n' too when the dot
                // is the last input byte, which goes to the Dot state below.)
                flush(i);
                run = ++i;
              } else {
                // ".\r", ".\n" or a '.' ending the input: maybe the terminator. Byte by byte.
                flush(i);
                run = ++i;
                next = State::Dot;
                break;
              }
              // The line start is handled; every path below sets lineStart again or leaves.
            }
          }
          const std::size_t end = findLineEndByte(data, i, size);
          if (end == size) {
            // Content up to the end of the input (or nothing after "..").
            i = size;
            next = State::Middle;
            break;
          }
          if (data[end] == '\r') {
            if (end + 1 == size) {
              // A CR ending the input: whether it is CR LF is known only on the next feed.
              flush(end);
              run = i = size;
              next = State::MiddleCr;
              break;
            }
            if (data[end + 1] == '\n') {
              i = end + 2;  // CR LF: copied as it is
              crlf = true;
            } else {
              // Bare CR: written as CR LF. The CR stays in the run, the LF is added after it.
              flush(end + 1);
              out.push_back('\n');
              ++contentBytes_;
              run = i = end + 1;
              crlf = false;
            }
          } else {
            // Bare LF (a CR before it would have been found first): a CR is inserted before
            // it, and the LF starts the next run.
            flush(end);
            out.push_back('\r');
            ++contentBytes_;
            run = end;
            i = end + 1;
            crlf = false;
          }
          lineStart = true;
        }
        flush(i);
        prevCrlf_ = crlf;
        state_ = next;
        break;
      }

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
