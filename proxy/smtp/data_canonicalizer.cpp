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

// Where the fast path stopped: the end of the input (at a line start or inside a line), or a byte
// it consumed but cannot classify yet. feed() maps this onto DataCanonicalizer's State.
enum class RunEnd : std::uint8_t {
  LineStart,  // the input ended at a line start
  Middle,     // the input ended inside a content line
  HeldCr,     // a CR ended the input: whether it is CR LF is known only on the next feed
  HeldDot,    // a '.' line start that may be the terminator: ".\r", ".\n" or '.' ending the input
};

// The fast path over one feed() call's input. Canonical lines (content, CR LF; "..x" at a line
// start) leave exactly as they came, so they are not copied one by one: [run, i) is a stretch of
// input that is also output and is appended in one go when something else is needed (a bare line
// end, a deleted dot, the end of the input). The byte-wise states see only what remains: a '.'
// line start that may be the terminator, and bytes held at the end of a feed. It lives in this
// file's anonymous namespace so that it is inlined into feed(): the search loop then keeps its
// SSE2 constants in registers from line to line.
struct RunCursor {
  const char* data;
  std::size_t size;
  std::size_t i;
  std::size_t run;
  std::size_t stuffing;  // stuffing dots inside [run, i): output but not content
  bool crlf;             // the last line end taken was CR LF
  std::string& out;
  std::uint64_t& contentBytes;

  void flush(std::size_t to) {
    out.append(data + run, to - run);
    contentBytes += to - run - stuffing;
    stuffing = 0;
  }

  // Takes the '.' that starts a line at data[i]. Returns false when it may be the terminator:
  // it is then consumed and left to the byte-wise states (RunEnd::HeldDot).
  bool takeLeadingDot() {
    const char after = i + 1 < size ? data[i + 1] : '\n';
    if (after == '.') {
      // ".." is a stuffed line: the receiver rule deletes one dot, the sender rule adds it back,
      // so the bytes stay; only the count differs.
      ++stuffing;
      i += 2;
      return true;
    }
    flush(i);
    run = ++i;
    // An unstuffed dot before content is deleted. (`after` is '\n' too when the dot is the last
    // input byte.) ".\r", ".\n" or a '.' ending the input: maybe the terminator. Byte by byte.
    return after != '\r' && after != '\n';
  }

  // Takes the CR or LF at data[end], the first one at or after i. Returns false for a CR that
  // ends the input (RunEnd::HeldCr).
  bool takeLineEnd(std::size_t end) {
    if (data[end] == '\r') {
      if (end + 1 == size) {
        flush(end);
        run = i = size;
        return false;
      }
      if (data[end + 1] == '\n') {
        i = end + 2;  // CR LF: copied as it is
        crlf = true;
      } else {
        // Bare CR: written as CR LF. The CR stays in the run, the LF is added after it.
        flush(end + 1);
        out.push_back('\n');
        ++contentBytes;
        run = i = end + 1;
        crlf = false;
      }
    } else {
      // Bare LF (a CR before it would have been found first): a CR is inserted before it, and
      // the LF starts the next run.
      flush(end);
      out.push_back('\r');
      ++contentBytes;
      run = end;
      i = end + 1;
      crlf = false;
    }
    return true;
  }

  // Copies lines from data[i, size) until the input ends or a byte must be held; everything up
  // to the returned stop has been appended to `out`. `lineStart`: i is at the start of a line.
  RunEnd scan(bool lineStart) {
    RunEnd stop = RunEnd::Middle;
    for (;;) {
      if (lineStart) {
        if (i == size) {
          stop = RunEnd::LineStart;
          break;
        }
        if (data[i] == '.' && !takeLeadingDot()) {
          stop = RunEnd::HeldDot;
          break;
        }
        // The line start is handled; every path below sets lineStart again or leaves.
      }
      const std::size_t end = findLineEndByte(data, i, size);
      if (end == size) {
        // Content up to the end of the input (or nothing after "..").
        i = size;
        stop = RunEnd::Middle;
        break;
      }
      if (!takeLineEnd(end)) {
        stop = RunEnd::HeldCr;
        break;
      }
      lineStart = true;
    }
    flush(i);
    return stop;
  }
};

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
    if (state_ != State::LineStart && state_ != State::Middle) {
      i += feedHeld(data[i], out);
      if (done_) {
        break;  // the bytes after the terminator are not ours
      }
      continue;
    }
    // Fast path. The cursor holds the state while it runs; it is written back here.
    RunCursor cursor{data, size, i, i, 0, prevCrlf_, out, contentBytes_};
    switch (cursor.scan(state_ == State::LineStart)) {
      case RunEnd::LineStart:
        state_ = State::LineStart;
        break;
      case RunEnd::Middle:
        state_ = State::Middle;
        break;
      case RunEnd::HeldCr:
        state_ = State::MiddleCr;
        break;
      case RunEnd::HeldDot:
        state_ = State::Dot;
        break;
    }
    prevCrlf_ = cursor.crlf;
    i = cursor.i;
  }
  return i;
}

std::size_t DataCanonicalizer::feedHeld(char c, std::string& out) {
  switch (state_) {
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
      return 1;

    case State::DotCr:
      if (c == '\n') {
        if (prevCrlf_) {
          // <CRLF>.<CRLF>: the only end of data.
          done_ = true;
          state_ = State::LineStart;
          return 1;
        }
        endLine(out, true);  // "." after a bare line end: content, an empty line
        return 1;
      }
      // "." ended by a bare CR: an empty content line. `c` starts the next line, so it is not
      // consumed here.
      endLine(out, false);
      return 0;

    case State::MiddleCr:
      if (c == '\n') {
        endLine(out, true);
        return 1;
      }
      endLine(out, false);  // bare CR; `c` belongs to the next line
      return 0;

    case State::LineStart:
    case State::Middle:
      break;  // the fast path's states (RunCursor), never held
  }
  return 0;
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
