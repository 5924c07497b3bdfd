// Fuzz target: smtp::LineReader fed in fuzz-chosen pieces, every complete line through
// smtp::parseCommand, and MAIL/RCPT/BDAT arguments through parsePathArgument and
// parseBdatArgument. A BDAT line with a valid size makes the following bytes chunk data, taken
// with takeBytes() as the session does.
//
// Input: byte 0 = how to split (fuzz_support.h), byte 1 = line cap (1 + 4 * b, 2048 for 255),
// then the client's byte stream.
//
// Oracles:
//  * the reader's results (lines, TooLong, chunk bytes, remainder) equal those of a whole-input
//    model written here from the rules in line_reader.h, whatever the split;
//  * a returned line is never longer than the cap allows and holds no LF; after NeedMore fewer
//    than `cap` bytes are buffered;
//  * parseCommand, parsePathArgument and parseBdatArgument agree with checks derived
//    independently from their documented grammar, and a parsed MAIL/RCPT argument re-serialises
//    to one that parses the same.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/smtp/command.h"
#include "proxy/smtp/line_reader.h"
#include "tests/fuzz/fuzz_support.h"

namespace certrelay::smtp {
namespace {

using fuzz::equalsIgnoreCase;

bool isBlank(char c) {
  return c == ' ' || c == '\t';
}

// The allow-list of command.h, spelled out again here.
Verb expectedVerb(std::string_view token) {
  struct Name {
    std::string_view text;
    Verb verb;
  };
  static constexpr Name kNames[] = {
      {"EHLO", Verb::Ehlo},       {"HELO", Verb::Helo},         {"STARTTLS", Verb::Starttls},
      {"MAIL", Verb::Mail},       {"RCPT", Verb::Rcpt},         {"DATA", Verb::Data},
      {"BDAT", Verb::Bdat},       {"RSET", Verb::Rset},         {"NOOP", Verb::Noop},
      {"QUIT", Verb::Quit},       {"VRFY", Verb::Vrfy},         {"HELP", Verb::Help},
      {"XCLIENT", Verb::Xclient}, {"XFORWARD", Verb::Xforward}, {"AUTH", Verb::Auth},
      {"EXPN", Verb::Expn},       {"ETRN", Verb::Etrn},         {"TURN", Verb::Turn},
  };
  for (const Name& name : kNames) {
    if (equalsIgnoreCase(token, name.text)) {
      return name.verb;
    }
  }
  return Verb::Unknown;
}

void checkCommand(std::string_view line, const Command& cmd, CommandError error) {
  if (fuzz::hasControl(line)) {
    FUZZ_CHECK(error == CommandError::BadCharacter);
    return;
  }
  std::size_t i = 0;
  while (i < line.size() && isBlank(line[i])) {
    ++i;
  }
  if (i == line.size()) {
    FUZZ_CHECK(error == CommandError::Empty);
    return;
  }
  FUZZ_CHECK(error == CommandError::None);
  std::size_t j = i;
  while (j < line.size() && !isBlank(line[j])) {
    ++j;
  }
  const std::string_view token = line.substr(i, j - i);
  FUZZ_CHECK(cmd.verbText.size() <= 32);
  FUZZ_CHECK(cmd.verbText == token.substr(0, 32));
  FUZZ_CHECK(cmd.verb == expectedVerb(token));
  std::string_view rest = line.substr(j);
  while (!rest.empty() && isBlank(rest.front())) {
    rest.remove_prefix(1);
  }
  while (!rest.empty() && isBlank(rest.back())) {
    rest.remove_suffix(1);
  }
  FUZZ_CHECK(cmd.argument == rest);
}

bool isAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

void checkPathArgument(std::string_view argument, std::string_view prefix) {
  PathArgument parsed;
  const PathError error = parsePathArgument(argument, prefix, parsed);
  if (error != PathError::None) {
    return;
  }
  FUZZ_CHECK(argument.size() > prefix.size());
  FUZZ_CHECK(equalsIgnoreCase(argument.substr(0, prefix.size()), prefix));
  const std::string& path = parsed.path;
  FUZZ_CHECK(!path.empty());
  FUZZ_CHECK(argument.find(path) != std::string_view::npos);
  if (path.front() == '<') {
    FUZZ_CHECK(path.size() >= 2 && path.back() == '>');
  } else {
    FUZZ_CHECK(path.find_first_of("<> ") == std::string::npos);
  }
  std::string again(prefix);
  again += path;
  for (const auto& [key, value] : parsed.params) {
    FUZZ_CHECK(!key.empty() && isAlnum(key.front()));
    for (char c : key) {
      FUZZ_CHECK((isAlnum(c) || c == '-') && !(c >= 'a' && c <= 'z'));
    }
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK(u >= 33 && u <= 126 && c != '=');
    }
    again += ' ';
    again += key;
    if (!value.empty()) {
      again += '=';
      again += value;
    }
  }
  // Re-serialised (one space between items, keywords upper-cased) it parses the same.
  PathArgument reparsed;
  FUZZ_CHECK(parsePathArgument(again, prefix, reparsed) == PathError::None);
  FUZZ_CHECK(reparsed.path == parsed.path);
  FUZZ_CHECK(reparsed.params == parsed.params);
}

// BDAT <digits> [SP LAST], size <= 2^53, from the grammar in command.h.
void checkBdat(std::string_view argument, std::uint64_t& chunk) {
  std::uint64_t size = 7;
  bool last = true;
  const BdatError error = parseBdatArgument(argument, size, last);

  std::size_t digits = 0;
  while (digits < argument.size() && argument[digits] >= '0' && argument[digits] <= '9') {
    ++digits;
  }
  const std::string_view rest = argument.substr(digits);
  const bool shape = digits > 0 && (rest.empty() || (rest.size() == 5 && rest[0] == ' ' &&
                                                     equalsIgnoreCase(rest.substr(1), "LAST")));
  std::string_view number = argument.substr(0, digits);
  while (number.size() > 1 && number.front() == '0') {
    number.remove_prefix(1);
  }
  bool small = number.size() <= 16;  // 2^53 has 16 digits
  std::uint64_t value = 0;
  if (small) {
    for (char c : number) {
      value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    small = value <= kMaxBdatChunkSize;
  }
  if (shape && small) {
    FUZZ_CHECK(error == BdatError::None);
    FUZZ_CHECK(size == value);
    FUZZ_CHECK(last == !rest.empty());
    chunk = size;
  } else {
    FUZZ_CHECK(error == BdatError::Syntax);
    FUZZ_CHECK(size == 0 && !last);
  }
}

// Checks one line and returns the BDAT chunk size it announces (0 when none).
std::uint64_t checkLine(std::string_view line) {
  Command cmd;
  const CommandError error = parseCommand(line, cmd);
  checkCommand(line, cmd, error);
  if (error != CommandError::None) {
    return 0;
  }
  std::uint64_t chunk = 0;
  switch (cmd.verb) {
    case Verb::Mail:
      checkPathArgument(cmd.argument, "FROM:");
      break;
    case Verb::Rcpt:
      checkPathArgument(cmd.argument, "TO:");
      break;
    case Verb::Bdat:
      checkBdat(cmd.argument, chunk);
      break;
    default:
      // The path parser must not depend on the verb it came with.
      checkPathArgument(cmd.argument, "TO:");
      break;
  }
  return chunk;
}

// What the reader reported, in order: "L" + line, "T" (too long), "C" + chunk bytes, and at the
// end "R" + the remainder.
using Transcript = std::vector<std::string>;

// The rules of line_reader.h applied to the whole input at once.
Transcript model(std::string_view input, std::size_t cap) {
  Transcript t;
  std::size_t pos = 0;
  std::uint64_t chunk = 0;
  while (pos < input.size()) {
    if (chunk > 0) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(chunk, input.size() - pos));
      t.back().append(input.substr(pos, n));
      pos += n;
      chunk -= n;
      continue;
    }
    const std::size_t lf = input.find('\n', pos);
    if (lf == std::string_view::npos) {
      if (input.size() - pos >= cap) {
        t.emplace_back("T");  // even with its LF still to come, it is over the cap
        pos = input.size();
      }
      break;
    }
    const std::size_t length = lf - pos + 1;
    if (length <= cap) {
      std::size_t end = lf;
      if (end > pos && input[end - 1] == '\r') {
        --end;
      }
      t.push_back("L" + std::string(input.substr(pos, end - pos)));
      chunk = checkLine(input.substr(pos, end - pos));
      if (chunk > 0) {
        t.emplace_back("C");
      }
    } else {
      t.emplace_back("T");
    }
    pos = lf + 1;
  }
  t.push_back("R" + std::string(input.substr(pos)));
  return t;
}

Transcript run(const std::vector<std::string_view>& pieces, std::size_t cap) {
  Transcript t;
  LineReader reader(cap);
  std::uint64_t chunk = 0;
  std::string line;
  for (std::string_view piece : pieces) {
    reader.feed(piece);
    for (;;) {
      if (chunk > 0) {
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, SIZE_MAX));
        const std::size_t n = reader.takeBytes(want, t.back());
        FUZZ_CHECK(n <= want);
        chunk -= n;
        if (chunk > 0) {
          FUZZ_CHECK(reader.buffered() == 0);
          break;
        }
        continue;
      }
      const LineReader::Result result = reader.next(line);
      if (result == LineReader::Result::NeedMore) {
        FUZZ_CHECK(reader.buffered() < cap);  // memory stays O(cap)
        break;
      }
      if (result == LineReader::Result::TooLong) {
        t.emplace_back("T");
        continue;
      }
      FUZZ_CHECK(line.size() + 1 <= cap);  // the cap counts the line end too
      FUZZ_CHECK(line.find('\n') == std::string::npos);
      t.push_back("L" + line);
      // The model already checked the line's parse; here only the chunk size is needed.
      Command cmd;
      if (parseCommand(line, cmd) == CommandError::None && cmd.verb == Verb::Bdat) {
        std::uint64_t size = 0;
        bool last = false;
        if (parseBdatArgument(cmd.argument, size, last) == BdatError::None && size > 0) {
          chunk = size;
          t.emplace_back("C");
        }
      }
    }
  }
  t.push_back("R" + reader.takeRemainder());
  FUZZ_CHECK(reader.buffered() == 0);
  return t;
}

}  // namespace
}  // namespace certrelay::smtp

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace certrelay;
  if (size < 2) {
    return 0;
  }
  const std::uint8_t how = data[0];
  const std::size_t cap = data[1] == 255 ? 2048 : 1 + std::size_t{data[1]} * 4;
  const std::string_view input = fuzz::asText(data + 2, size - 2);

  const smtp::Transcript expected = smtp::model(input, cap);
  FUZZ_CHECK(smtp::run(fuzz::split(input, how), cap) == expected);
  if (how != 0) {
    FUZZ_CHECK(smtp::run(fuzz::split(input, 0), cap) == expected);
  }
  return 0;
}
