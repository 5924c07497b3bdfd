// Fuzz target: smtp::ReplyParser (backend replies) fed in fuzz-chosen pieces.
//
// Input: byte 0 = how to split (fuzz_support.h), byte 1 = line cap (4 + 8 * b, 2048 for 255),
// byte 2 = line count cap (1 + b % 64, 256 for 255), then the backend's byte stream.
//
// Oracles:
//  * every Reply has a code in 200..599, 1..maxLines lines, no control byte (TAB aside) in its
//    text, lines that fitted the cap; wire() ends with CR LF, starts every line with the code,
//    and parses back to the same reply;
//  * after NeedMore fewer than maxLineLength bytes are buffered; after Malformed the parser
//    stays malformed and holds nothing;
//  * the results do not depend on how the input was split (whole, chosen pieces, byte by byte).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/smtp/reply.h"
#include "tests/fuzz/fuzz_support.h"

namespace certrelay::smtp {
namespace {

void checkReply(const Reply& reply, std::size_t maxLine, std::size_t maxLines) {
  FUZZ_CHECK(reply.code >= 200 && reply.code <= 599);
  FUZZ_CHECK(!reply.lines.empty() && reply.lines.size() <= maxLines);
  FUZZ_CHECK(reply.positive() == (reply.code < 400));
  std::size_t textSize = 0;
  for (const std::string& line : reply.lines) {
    FUZZ_CHECK(!fuzz::hasControl(line));                     // no CR, LF, NUL reaches the client
    FUZZ_CHECK(line.empty() || line.size() + 5 <= maxLine);  // "ddd-" + text + LF fitted
    textSize += line.size();
  }
  FUZZ_CHECK(reply.text().size() == textSize + reply.lines.size() - 1);

  const std::string wire = reply.wire();
  FUZZ_CHECK(wire.size() >= 5 && wire.compare(wire.size() - 2, 2, "\r\n") == 0);
  FUZZ_CHECK(wire.size() <= reply.lines.size() * (maxLine + 1));
  const std::string code = std::to_string(reply.code);
  std::size_t lines = 0;
  for (std::size_t pos = 0; pos < wire.size();) {
    const std::size_t crlf = wire.find("\r\n", pos);
    FUZZ_CHECK(crlf != std::string::npos);
    FUZZ_CHECK(wire.compare(pos, 3, code) == 0);
    FUZZ_CHECK(wire.find_first_of("\r\n", pos) == crlf);  // no bare CR or LF inside a line
    pos = crlf + 2;
    ++lines;
  }
  FUZZ_CHECK(lines == reply.lines.size());

  // Round trip: a wire line may be one byte longer than the input line (CR LF for a bare LF).
  ReplyParser again(maxLine + 1, maxLines);
  again.feed(wire);
  Reply back;
  FUZZ_CHECK(again.next(back) == ReplyParser::Result::Reply);
  FUZZ_CHECK(back.code == reply.code);
  FUZZ_CHECK(back.lines == reply.lines);
  FUZZ_CHECK(again.buffered() == 0);
}

// "R" + wire() per reply, then "M" (malformed) or "N" + the bytes still buffered.
std::vector<std::string> run(const std::vector<std::string_view>& pieces, std::size_t maxLine,
                             std::size_t maxLines) {
  std::vector<std::string> t;
  ReplyParser parser(maxLine, maxLines);
  bool malformed = false;
  Reply reply;
  for (std::string_view piece : pieces) {
    parser.feed(piece);
    for (;;) {
      const ReplyParser::Result result = parser.next(reply);
      if (result == ReplyParser::Result::NeedMore) {
        FUZZ_CHECK(!malformed);
        FUZZ_CHECK(parser.buffered() < maxLine);
        break;
      }
      if (result == ReplyParser::Result::Malformed) {
        malformed = true;
        FUZZ_CHECK(parser.buffered() == 0);
        break;
      }
      FUZZ_CHECK(!malformed);
      checkReply(reply, maxLine, maxLines);
      t.push_back("R" + reply.wire());
    }
  }
  if (malformed) {
    // Sticky: more input does not revive it.
    parser.feed("250 ok\r\n");
    FUZZ_CHECK(parser.next(reply) == ReplyParser::Result::Malformed);
    FUZZ_CHECK(parser.buffered() == 0);
    t.emplace_back("M");
  } else {
    t.push_back("N" + std::to_string(parser.buffered()));
  }
  return t;
}

}  // namespace
}  // namespace certrelay::smtp

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace certrelay;
  if (size < 3) {
    return 0;
  }
  const std::uint8_t how = data[0];
  const std::size_t maxLine = data[1] == 255 ? 2048 : 4 + std::size_t{data[1]} * 8;
  const std::size_t maxLines = data[2] == 255 ? 256 : 1 + std::size_t{data[2]} % 64;
  const std::string_view input = fuzz::asText(data + 3, size - 3);

  const auto whole = smtp::run(fuzz::split(input, 0), maxLine, maxLines);
  if (how != 0) {
    FUZZ_CHECK(smtp::run(fuzz::split(input, how), maxLine, maxLines) == whole);
  }
  if (how != 1 && input.size() <= 1024) {
    FUZZ_CHECK(smtp::run(fuzz::split(input, 1), maxLine, maxLines) == whole);
  }
  return 0;
}
