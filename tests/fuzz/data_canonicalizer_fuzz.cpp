// Fuzz target: smtp::DataCanonicalizer (the SMTP-smuggling barrier) against the byte-at-a-time
// reference of tests/support/data_canonicalizer_reference.h, a differential oracle.
//
// Input: byte 0 = how to split (fuzz_support.h), then the client's DATA stream (and whatever
// follows its end).
//
// Oracles, for the whole input, the fuzz-chosen pieces and byte by byte:
//  * output, bytes consumed, done(), contentBytes() and the finish()ed output equal the
//    reference's; feed() stops short only at end of data and takes nothing after it;
//  * the finished output is canonical, read as a strict RFC 5321 receiver would: CR LF line ends
//    only (no bare CR or LF), every line starting with '.' stuffed, exactly one terminator, at
//    the end; contentBytes() counts its content; fed again it comes out unchanged.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/smtp/data_canonicalizer.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/support/data_canonicalizer_reference.h"

namespace certrelay::smtp {
namespace {

struct Observed {
  std::string out;
  std::size_t consumed = 0;
  bool done = false;
  std::uint64_t contentBytes = 0;
  std::string finished;
  std::uint64_t contentBytesAfterFinish = 0;
};

Observed observe(const std::vector<std::string_view>& pieces) {
  DataCanonicalizer canon;
  Observed o;
  for (std::string_view piece : pieces) {
    const std::size_t before = o.out.size();
    if (canon.done()) {
      FUZZ_CHECK(canon.feed(piece, o.out) == 0);  // after end of data nothing is ours
      FUZZ_CHECK(o.out.size() == before);
      continue;
    }
    const std::size_t n = canon.feed(piece, o.out);
    FUZZ_CHECK(n <= piece.size());
    FUZZ_CHECK(n == piece.size() || canon.done());  // stopping short means end of data
    o.consumed += n;
    FUZZ_CHECK(o.out.size() <= 2 * o.consumed);  // a bare CR or LF doubles at most
  }
  o.done = canon.done();
  o.contentBytes = canon.contentBytes();
  o.finished = o.out;
  canon.finish(o.finished);
  FUZZ_CHECK(canon.done());
  o.contentBytesAfterFinish = canon.contentBytes();
  return o;
}

// The content lines of `wire` (stuffing removed) when it is one canonical message, else nullopt.
// Written from RFC 5321 4.5.2, independently of both implementations.
std::optional<std::vector<std::string>> receiverParse(std::string_view wire) {
  for (std::size_t i = 0; i < wire.size(); ++i) {
    if (wire[i] == '\r' && (i + 1 == wire.size() || wire[i + 1] != '\n')) {
      return std::nullopt;  // bare CR
    }
    if (wire[i] == '\n' && (i == 0 || wire[i - 1] != '\r')) {
      return std::nullopt;  // bare LF
    }
  }
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < wire.size()) {
    const std::size_t crlf = wire.find("\r\n", pos);
    if (crlf == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view line = wire.substr(pos, crlf - pos);
    pos = crlf + 2;
    if (line == ".") {
      if (pos != wire.size()) {
        return std::nullopt;  // something after the terminator: a second message
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

void checkSame(const Observed& o, const test_support::Reference& ref) {
  FUZZ_CHECK(o.out == ref.out);
  FUZZ_CHECK(o.consumed == ref.consumed);
  FUZZ_CHECK(o.done == ref.done);
  FUZZ_CHECK(o.contentBytes == ref.contentBytes);
  FUZZ_CHECK(o.finished == ref.finished);
}

}  // namespace
}  // namespace certrelay::smtp

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace certrelay;
  if (size < 1) {
    return 0;
  }
  const std::uint8_t how = data[0];
  const std::string_view input = fuzz::asText(data + 1, size - 1);

  const smtp::test_support::Reference ref = smtp::test_support::referenceCanonicalize(input);
  const smtp::Observed whole = smtp::observe(fuzz::split(input, 0));
  smtp::checkSame(whole, ref);
  if (how != 0) {
    smtp::checkSame(smtp::observe(fuzz::split(input, how)), ref);
  }
  if (how != 1 && input.size() <= 2048) {
    smtp::checkSame(smtp::observe(fuzz::split(input, 1)), ref);
  }

  // The finished output is one canonical message whose content contentBytes() counted.
  const auto lines = smtp::receiverParse(whole.finished);
  FUZZ_CHECK(lines.has_value());
  std::uint64_t content = 0;
  for (const std::string& line : *lines) {
    content += line.size() + 2;
  }
  FUZZ_CHECK(whole.contentBytesAfterFinish == content);
  if (whole.done) {
    FUZZ_CHECK(whole.contentBytes == content);
  }

  // Canonical output is a fixed point: fed again it is the whole message, unchanged.
  const smtp::Observed again = smtp::observe(fuzz::split(whole.finished, how));
  FUZZ_CHECK(again.done);
  FUZZ_CHECK(again.consumed == whole.finished.size());
  FUZZ_CHECK(again.finished == whole.finished);
  return 0;
}
