#include "proxy/smtp/data_canonicalizer.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/data_canonicalizer_reference.h"

namespace certrelay::smtp {
namespace {

using namespace std::string_literals;

struct Run {
  std::string out;           // content plus, when done, the terminator from finish()
  std::size_t consumed = 0;  // input bytes the canonicaliser took
  bool done = false;
  std::uint64_t contentBytes = 0;
};

// Feeds `input` cut at `cuts` (ascending offsets); stops feeding once done(), as the session
// does, and calls finish() only when end of data was seen.
Run runPieces(std::string_view input, const std::vector<std::size_t>& cuts) {
  DataCanonicalizer canon;
  Run run;
  std::size_t from = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  for (std::size_t to : ends) {
    if (canon.done()) {
      break;
    }
    const std::string_view piece = input.substr(from, to - from);
    const std::size_t n = canon.feed(piece, run.out);
    REQUIRE(n <= piece.size());
    if (n < piece.size()) {
      REQUIRE(canon.done());  // stopping short means end of data, nothing else
    }
    run.consumed += n;
    from = to;
  }
  run.done = canon.done();
  run.contentBytes = canon.contentBytes();
  if (run.done) {
    canon.finish(run.out);
  }
  return run;
}

Run runWhole(std::string_view input) {
  return runPieces(input, {});
}

Run runByteByByte(std::string_view input) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < input.size(); ++i) {
    cuts.push_back(i);
  }
  return runPieces(input, cuts);
}

// Reads `wire` as a strict RFC 5321 receiver would and returns the content lines (dot-stuffing
// removed), or nullopt if the stream is not canonical: a CR not followed by LF, an LF not
// preceded by CR, a line starting with '.' that is not stuffed, no terminator, or anything
// after the terminator.
std::optional<std::vector<std::string>> receiverParse(std::string_view wire) {
  for (std::size_t i = 0; i < wire.size(); ++i) {
    if (wire[i] == '\r' && (i + 1 == wire.size() || wire[i + 1] != '\n')) {
      return std::nullopt;
    }
    if (wire[i] == '\n' && (i == 0 || wire[i - 1] != '\r')) {
      return std::nullopt;
    }
  }
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < wire.size()) {
    const std::size_t crlf = wire.find("\r\n", pos);
    if (crlf == std::string_view::npos) {
      return std::nullopt;  // unterminated last line
    }
    const std::string_view line = wire.substr(pos, crlf - pos);
    pos = crlf + 2;
    if (line == ".") {
      if (pos != wire.size()) {
        return std::nullopt;  // a second message would follow: smuggling
      }
      return lines;
    }
    if (!line.empty() && line[0] == '.') {
      if (line.size() < 2 || line[1] != '.') {
        return std::nullopt;  // not stuffed
      }
      lines.emplace_back(line.substr(1));
    } else {
      lines.emplace_back(line);
    }
  }
  return std::nullopt;  // no terminator
}

std::uint64_t contentSize(const std::vector<std::string>& lines) {
  std::uint64_t n = 0;
  for (const std::string& l : lines) {
    n += l.size() + 2;
  }
  return n;
}

std::size_t countTerminators(std::string_view wire) {
  std::size_t n = wire.substr(0, 3) == ".\r\n" ? 1 : 0;
  for (std::size_t p = wire.find("\r\n.\r\n"); p != std::string_view::npos;
       p = wire.find("\r\n.\r\n", p + 1)) {
    ++n;
  }
  return n;
}

// Checks that whole, byte-by-byte and every single split give `expectedOut` and consume
// `expectedConsumed` bytes, and that the output parses as exactly one canonical message.
void checkAllSplits(std::string_view input, std::string_view expectedOut,
                    std::size_t expectedConsumed) {
  const Run whole = runWhole(input);
  REQUIRE(whole.done);
  CHECK(whole.out == expectedOut);
  CHECK(whole.consumed == expectedConsumed);
  CHECK(countTerminators(whole.out) == 1);
  const auto lines = receiverParse(whole.out);
  REQUIRE(lines.has_value());
  CHECK(whole.contentBytes == contentSize(*lines));

  const Run bytes = runByteByByte(input);
  CHECK(bytes.out == whole.out);
  CHECK(bytes.consumed == whole.consumed);
  CHECK(bytes.contentBytes == whole.contentBytes);

  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    CAPTURE(cut);
    const Run split = runPieces(input, {cut});
    CHECK(split.out == whole.out);
    CHECK(split.consumed == whole.consumed);
    CHECK(split.contentBytes == whole.contentBytes);
  }
}

// Reference for the differential tests below: the byte-at-a-time state machine, shared with
// the data_canonicalizer fuzz target (tests/support/data_canonicalizer_reference.h).
using test_support::Reference;
using test_support::referenceCanonicalize;

// One run of the real canonicaliser over `input` cut at `cuts` (ascending). Unlike runPieces it
// keeps feeding after done() (which must consume and write nothing) and always calls finish().
struct Observed {
  std::string out;
  std::size_t consumed = 0;
  bool done = false;
  std::uint64_t contentBytes = 0;
  std::string finished;
  bool feedAfterDoneIgnored = true;
};

Observed observe(std::string_view input, const std::vector<std::size_t>& cuts) {
  DataCanonicalizer canon;
  Observed o;
  std::size_t from = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  for (std::size_t to : ends) {
    const std::string_view piece = input.substr(from, to - from);
    from = to;
    if (canon.done()) {
      const std::size_t before = o.out.size();
      o.feedAfterDoneIgnored &= canon.feed(piece, o.out) == 0 && o.out.size() == before;
      continue;
    }
    const std::size_t n = canon.feed(piece, o.out);
    o.consumed += n;
    if (n != piece.size() && !canon.done()) {
      o.feedAfterDoneIgnored = false;  // stopping short is only allowed at end of data
    }
  }
  o.done = canon.done();
  o.contentBytes = canon.contentBytes();
  o.finished = o.out;
  canon.finish(o.finished);
  return o;
}

void checkAgainstReference(std::string_view input, const Reference& ref,
                           const std::vector<std::size_t>& cuts) {
  const Observed o = observe(input, cuts);
  if (o.out == ref.out && o.consumed == ref.consumed && o.done == ref.done &&
      o.contentBytes == ref.contentBytes && o.finished == ref.finished && o.feedAfterDoneIgnored) {
    return;  // the common case, kept cheap: one CHECK per input, not per split
  }
  std::string cutsText;  // doctest cannot print a vector itself
  for (std::size_t c : cuts) {
    cutsText += std::to_string(c) + " ";
  }
  CAPTURE(cutsText);
  CHECK(o.out == ref.out);
  CHECK(o.consumed == ref.consumed);
  CHECK(o.done == ref.done);
  CHECK(o.contentBytes == ref.contentBytes);
  CHECK(o.finished == ref.finished);
  CHECK(o.feedAfterDoneIgnored);
}

// Deterministic xorshift64, fixed seed: a failure reproduces on every run.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

// Inputs built from the pieces the rules care about, in random order: runs of ordinary bytes of
// every length around the 16-byte scanning blocks (and long lines), CR, LF, CRLF, dots at line
// starts, the end-of-data sequence and its SM-01 look-alikes. Ordinary bytes include NUL and
// bytes that differ from CR or LF only in the high bit.
std::string randomInput(Rng& rng, std::size_t targetSize, bool longLines) {
  static const std::string_view kOrdinary("abcXYZ .:\0\x8d\x8a\x0b\x0c\x0e\xff\t", 17);
  static const std::string_view kTokens[] = {
      "\r",        "\n",    "\r\n",  "\r\n",    "\r\n",        ".",      "..",     ".\r\n",
      "\r\n.\r\n", "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\r\r\n", "\r\r\n", "\r\n..", "\r\n.x",
  };
  std::string s;
  while (s.size() < targetSize) {
    const std::size_t pick = rng.below(10);
    if (pick < 5) {
      // A run of ordinary bytes: mostly short, sometimes a whole (or over-long) line.
      const std::size_t len = longLines && rng.below(8) == 0 ? 900 + rng.below(300) : rng.below(80);
      for (std::size_t k = 0; k < len; ++k) {
        s.push_back(rng.below(4) == 0 ? kOrdinary[rng.below(kOrdinary.size())] : 'm');
      }
    } else {
      s += kTokens[rng.below(std::size(kTokens))];
    }
  }
  return s;
}

// As randomInput, but with every end of data defused (its final LF replaced), so that the whole
// input is content and a long input exercises more than its first few hundred bytes.
std::string randomContent(Rng& rng, std::size_t targetSize) {
  std::string s = randomInput(rng, targetSize, true);
  for (Reference r = referenceCanonicalize(s); r.done; r = referenceCanonicalize(s)) {
    s[r.consumed - 1] = 'x';  // ".\r\n" becomes ".\rx": only bytes after it can change
  }
  return s;
}

const std::string kSmuggledTail =
    "mail FROM:<smuggled@x.example>\r\nrcpt TO:<victim@remote.example>\r\ndata\r\n"
    "Subject: smuggled\r\n\r\nhi\r\n.\r\n";

struct SmugglingCase {
  std::string ending;
  std::string canonical;  // what the ending becomes on the backend side
};

// hostile-inputs.md SM-01. Per the documented rule a non-terminating "." line loses its dot
// (RFC 5321 4.5.2 receiver rule), so each becomes empty lines; "\0." is ordinary content.
const std::vector<SmugglingCase> kSm01 = {
    {"\n.\n", "\r\n\r\n"},
    {"\n.\r", "\r\n\r\n"},
    {"\r.\n", "\r\n\r\n"},
    {"\r.\r", "\r\n\r\n"},
    {"\n.\r\n", "\r\n\r\n"},
    {"\r.\r\n", "\r\n\r\n"},
    {"\r\n\0.\r\n"s, "\r\n\0.\r\n"s},
    {"\r\n.\r\r\n", "\r\n\r\n\r\n"},
    {"\r\r\n.\r\r\n", "\r\n\r\n\r\n\r\n"},
};

TEST_SUITE("smtp") {
  TEST_CASE("data: SM-01 smuggling endings are content, never end of data") {
    for (const SmugglingCase& c : kSm01) {
      const std::string input = "X\r\n" + c.ending + kSmuggledTail;
      CAPTURE(input);
      // The tail leaves unchanged; its final ".\r\n" is now the one written by finish().
      const std::string expected = "X\r\n" + c.canonical + kSmuggledTail;
      checkAllSplits(input, expected, input.size());
      // The would-be commands are inside the one message.
      const auto lines = receiverParse(runWhole(input).out);
      REQUIRE(lines.has_value());
      CHECK(lines->back() == "hi");
    }
  }

  TEST_CASE("data: SM-01 endings with a dot line that has text after it") {
    // Same endings but the '.' starts a real content line: "..x" stays stuffed.
    for (const SmugglingCase& c : kSm01) {
      const std::string input = "X\r\n" + c.ending + "..x\r\n.\r\n";
      CAPTURE(input);
      const Run run = runWhole(input);
      REQUIRE(run.done);
      CHECK(run.consumed == input.size());
      const auto lines = receiverParse(run.out);
      REQUIRE(lines.has_value());
      CHECK(lines->back() == ".x");
      checkAllSplits(input, run.out, input.size());
    }
  }

  TEST_CASE("data: empty message is '.' right at the start") {
    checkAllSplits(".\r\n", ".\r\n", 3);
    CHECK(runWhole(".\r\n").contentBytes == 0);
    checkAllSplits(".\r\nQUIT\r\n", ".\r\n", 3);
  }

  TEST_CASE("data: a message of one empty line") {
    checkAllSplits("\r\n.\r\n", "\r\n.\r\n", 5);
    CHECK(runWhole("\r\n.\r\n").contentBytes == 2);
  }

  TEST_CASE("data: ordinary message passes unchanged") {
    const std::string msg = "From: a@x.example\r\nSubject: hi\r\n\r\nbody line\r\n.\r\n";
    checkAllSplits(msg, msg, msg.size());
    CHECK(runWhole(msg).contentBytes == msg.size() - 3);
  }

  TEST_CASE("data: dot-stuffed input round-trips unchanged") {
    const std::string msg = "..\r\n..foo\r\n...\r\n....bar\r\nx.\r\n.\r\n";
    checkAllSplits(msg, msg, msg.size());
    // Content is ".", ".foo", "..", "...bar", "x." (stuffing not counted).
    CHECK(runWhole(msg).contentBytes == 3 + 6 + 4 + 8 + 4);
  }

  TEST_CASE("data: an unstuffed leading dot is removed (RFC 5321 4.5.2 receiver rule)") {
    checkAllSplits(".foo\r\n.\r\n", "foo\r\n.\r\n", 9);
    checkAllSplits(".\rfoo\r\n.\r\n", "\r\nfoo\r\n.\r\n", 10);
  }

  TEST_CASE("data: bare CR and bare LF become CRLF") {
    checkAllSplits("a\rb\nc\r\n.\r\n", "a\r\nb\r\nc\r\n.\r\n", 10);
    checkAllSplits("\n\r\r\n.\r\n", "\r\n\r\n\r\n.\r\n", 7);
  }

  TEST_CASE("data: '.' CRLF after a bare line end is not the terminator") {
    const std::string input = "a\n.\r\nb\r\n.\r\n";
    checkAllSplits(input, "a\r\n\r\nb\r\n.\r\n", input.size());
    const std::string input2 = "a\r.\r\nb\r\n.\r\n";
    checkAllSplits(input2, "a\r\n\r\nb\r\n.\r\n", input2.size());
  }

  TEST_CASE("data: NUL and 8-bit bytes pass unchanged") {
    const std::string msg = "a\0b\xff\x80\r\n\0\r\n\xC3\xA9.\r\n.\r\n"s;
    checkAllSplits(msg, msg, msg.size());
  }

  TEST_CASE("data: bytes after the terminator are not consumed") {
    const std::string input = "hi\r\n.\r\nMAIL FROM:<b@x.example>\r\n";
    checkAllSplits(input, "hi\r\n.\r\n", 7);
    DataCanonicalizer canon;
    std::string out;
    CHECK(canon.feed(input, out) == 7);
    CHECK(canon.done());
    CHECK(canon.feed("more", out) == 0);
    CHECK(out == "hi\r\n");
  }

  TEST_CASE("data: terminator arriving exactly at the end of a feed") {
    DataCanonicalizer canon;
    std::string out;
    CHECK(canon.feed("hi\r\n.\r", out) == 6);
    CHECK_FALSE(canon.done());
    CHECK(canon.feed("\n", out) == 1);
    CHECK(canon.done());
    canon.finish(out);
    CHECK(out == "hi\r\n.\r\n");
  }

  TEST_CASE("data: contentBytes counts canonical content, not stuffing") {
    DataCanonicalizer canon;
    std::string out;
    canon.feed("ab\n", out);
    CHECK(canon.contentBytes() == 4);  // "ab\r\n"
    canon.feed("..c\r\n", out);
    CHECK(canon.contentBytes() == 4 + 4);  // ".c\r\n"
    CHECK(out == "ab\r\n..c\r\n");
  }

  TEST_CASE("data: finish() before end of data closes an open line first") {
    const std::pair<const char*, const char*> cases[] = {
        {"", ".\r\n"},
        {"abc", "abc\r\n.\r\n"},
        {"abc\r", "abc\r\n.\r\n"},
        {"abc\r\n", "abc\r\n.\r\n"},
        {"abc\n.", "abc\r\n\r\n.\r\n"},
        {"abc\r\n.", "abc\r\n\r\n.\r\n"},
        {"abc\r\n.\r", "abc\r\n\r\n.\r\n"},
        {"abc\r\n..", "abc\r\n..\r\n.\r\n"},
    };
    for (const auto& testCase : cases) {
      const auto& [input, expected] = testCase;
      CAPTURE(testCase.first);
      DataCanonicalizer canon;
      std::string out;
      CHECK(canon.feed(input, out) == std::string_view(input).size());
      CHECK_FALSE(canon.done());
      canon.finish(out);
      CHECK(out == expected);
      CHECK(receiverParse(out).has_value());
      CHECK(canon.done());
      CHECK(canon.feed("x\r\n", out) == 0);
      CHECK(out == expected);
    }
  }

  TEST_CASE("data: reset() starts a new message") {
    DataCanonicalizer canon;
    std::string out;
    canon.feed("a\r\n.\r\n", out);
    REQUIRE(canon.done());
    canon.reset();
    CHECK_FALSE(canon.done());
    CHECK(canon.contentBytes() == 0);
    CHECK(canon.feed("b\r\n", out) == 3);

    // After a bare LF ".\r\n" is content; reset() must restore "start of data counts as
    // after CRLF".
    canon.reset();
    std::string out2;
    canon.feed("a\n", out2);
    canon.reset();
    out2.clear();
    CHECK(canon.feed(".\r\n", out2) == 3);
    CHECK(canon.done());
    CHECK(out2.empty());
  }

  TEST_CASE("data: SM-02 property: random streams give canonical, split-independent output") {
    // Small alphabet so that dots, CRs and LFs meet in every combination.
    const char alphabet[] = {'\r', '\n', '.', '.', 'a', '\0'};
    std::uint64_t state = 0x9E3779B97F4A7C15ULL;
    auto rnd = [&state]() {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      return state;
    };
    for (int iter = 0; iter < 3000; ++iter) {
      std::string input;
      const std::size_t len = 1 + rnd() % 40;
      for (std::size_t i = 0; i < len; ++i) {
        input.push_back(alphabet[rnd() % sizeof(alphabet)]);
      }
      CAPTURE(input);
      const Run whole = runWhole(input);
      std::string out = whole.out;
      if (!whole.done) {
        CHECK(whole.consumed == input.size());
        DataCanonicalizer canon;
        std::string o;
        canon.feed(input, o);
        canon.finish(o);
        out = o;
      }
      const auto lines = receiverParse(out);
      REQUIRE(lines.has_value());
      CHECK(countTerminators(out) == 1);

      // Random three-way split.
      std::size_t a = rnd() % (input.size() + 1);
      std::size_t b = rnd() % (input.size() + 1);
      if (a > b) {
        std::swap(a, b);
      }
      const Run split = runPieces(input, {a, b});
      CHECK(split.out == whole.out);
      CHECK(split.consumed == whole.consumed);
      CHECK(runByteByByte(input).out == whole.out);

      // Canonical output is a fixed point: feeding it again changes nothing.
      const Run again = runWhole(out);
      REQUIRE(again.done);
      CHECK(again.out == out);
      CHECK(again.consumed == out.size());
    }
  }

  TEST_CASE("data: differential against a byte-at-a-time reference, all splits") {
    Rng rng{0x2545F4914F6CDD1DULL};
    for (int iter = 0; iter < 1000; ++iter) {
      const std::string input = randomInput(rng, 1 + rng.below(300), false);
      CAPTURE(input);
      const Reference ref = referenceCanonicalize(input);
      checkAgainstReference(input, ref, {});
      std::vector<std::size_t> cuts;
      for (std::size_t i = 1; i < input.size(); ++i) {
        cuts.push_back(i);
      }
      checkAgainstReference(input, ref, cuts);  // byte by byte
      for (std::size_t cut = 0; cut <= input.size(); ++cut) {
        checkAgainstReference(input, ref, {cut});
      }
    }
  }

  TEST_CASE("data: differential against a byte-at-a-time reference, random splits") {
    Rng rng{0x9E3779B97F4A7C15ULL};
    for (int iter = 0; iter < 300; ++iter) {
      // Larger inputs with long lines. Half end with the end-of-data sequence and bytes of the
      // next command, half stop without one (finish() then closes the open line).
      std::string input = randomContent(rng, 1 + rng.below(6000));
      if (iter % 2 == 0) {
        input += "\r\n.\r\nMAIL FROM:<a@x.example>\r\n";
      }
      CAPTURE(iter);
      const Reference ref = referenceCanonicalize(input);
      checkAgainstReference(input, ref, {});
      for (int round = 0; round < 8; ++round) {
        std::vector<std::size_t> cuts;
        const std::size_t maxPiece = round < 4 ? 1 + rng.below(40) : 1 + rng.below(2000);
        for (std::size_t at = 1 + rng.below(maxPiece); at < input.size();
             at += 1 + rng.below(maxPiece)) {
          cuts.push_back(at);
        }
        checkAgainstReference(input, ref, cuts);
      }
    }
  }

  TEST_CASE("data: differential on canonical text of typical lines") {
    // The production shape: CRLF lines of ~76 octets, some dot-stuffed, many per feed.
    Rng rng{0xD1B54A32D192ED03ULL};
    for (int iter = 0; iter < 50; ++iter) {
      std::string input;
      while (input.size() < std::size_t{10} * 1024) {
        const std::size_t len = rng.below(8) == 0 ? 0 : 60 + rng.below(20);
        if (rng.below(10) == 0) {
          input += "..";
        }
        input.append(len, static_cast<char>('A' + rng.below(26)));
        input += "\r\n";
      }
      input += ".\r\nQUIT\r\n";
      CAPTURE(iter);
      const Reference ref = referenceCanonicalize(input);
      REQUIRE(ref.done);
      checkAgainstReference(input, ref, {});
      for (const std::size_t piece : {1U, 7U, 16U, 77U, 78U, 1000U, 4096U}) {
        std::vector<std::size_t> cuts;
        for (std::size_t at = piece; at < input.size(); at += piece) {
          cuts.push_back(at);
        }
        checkAgainstReference(input, ref, cuts);
      }
    }
  }
}

}  // namespace
}  // namespace certrelay::smtp
