#include "proxy/smtp/command.h"

#include <array>
#include <cstddef>

#include "common/text.h"

namespace certrelay::smtp {

namespace {

constexpr std::size_t kMaxVerbText = 32;

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr std::array<VerbName, 18> kVerbs{{
    {"EHLO", Verb::Ehlo},
    {"HELO", Verb::Helo},
    {"STARTTLS", Verb::Starttls},
    {"MAIL", Verb::Mail},
    {"RCPT", Verb::Rcpt},
    {"DATA", Verb::Data},
    {"BDAT", Verb::Bdat},
    {"RSET", Verb::Rset},
    {"NOOP", Verb::Noop},
    {"QUIT", Verb::Quit},
    {"VRFY", Verb::Vrfy},
    {"HELP", Verb::Help},
    {"XCLIENT", Verb::Xclient},
    {"XFORWARD", Verb::Xforward},
    {"AUTH", Verb::Auth},
    {"EXPN", Verb::Expn},
    {"ETRN", Verb::Etrn},
    {"TURN", Verb::Turn},
}};

bool isBlank(char c) {
  return c == ' ' || c == '\t';
}

bool isAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
bool validKeyword(std::string_view key) {
  if (key.empty() || !isAlnum(key.front())) {
    return false;
  }
  for (char c : key) {
    if (!isAlnum(c) && c != '-') {
      return false;
    }
  }
  return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126): printable ASCII except '=' and space.
bool validValue(std::string_view value) {
  if (value.empty()) {
    return false;
  }
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == '=') {
      return false;
    }
  }
  return true;
}

// Finds the '>' closing the '<' at path[0]. Quotes are tracked so a quoted local part may hold
// '>', '<' and spaces; '\' escapes the next byte only inside quotes (quoted-pairSMTP). Outside
// quotes a space or a second '<' means the path is broken. Returns npos when unbalanced.
std::size_t findPathEnd(std::string_view path) {
  bool quoted = false;
  for (std::size_t i = 1; i < path.size(); ++i) {
    const char c = path[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // skip the escaped byte; running past the end leaves the loop unbalanced
      } else if (c == '"') {
        quoted = false;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
    } else if (c == '>') {
      return i;
    } else if (c == '<' || c == ' ' || c == '\t') {
      return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

}  // namespace

CommandError parseCommand(std::string_view line, Command& out) {
  out = Command{};
  // Refuse control bytes anywhere before looking at the verb: a NUL would truncate the line in
  // a C-string based backend and a bare CR could end it early there (smuggling, SM-03, SM-07).
  for (char c : line) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return CommandError::BadCharacter;
    }
  }

  std::size_t i = 0;
  while (i < line.size() && isBlank(line[i])) {
    ++i;
  }
  if (i == line.size()) {
    return CommandError::Empty;
  }
  const std::size_t verbStart = i;
  while (i < line.size() && !isBlank(line[i])) {
    ++i;
  }
  const std::string_view verb = line.substr(verbStart, i - verbStart);
  out.verbText.assign(verb.substr(0, kMaxVerbText));
  for (const VerbName& v : kVerbs) {
    if (text::equalsIgnoreCase(verb, v.name)) {
      out.verb = v.verb;
      break;
    }
  }

  while (i < line.size() && isBlank(line[i])) {
    ++i;
  }
  std::size_t end = line.size();
  while (end > i && isBlank(line[end - 1])) {
    --end;
  }
  out.argument.assign(line.substr(i, end - i));
  return CommandError::None;
}

PathError parsePathArgument(std::string_view argument, std::string_view prefix, PathArgument& out) {
  out = PathArgument{};
  if (argument.size() < prefix.size() ||
      !text::equalsIgnoreCase(argument.substr(0, prefix.size()), prefix)) {
    return PathError::Syntax;
  }
  std::string_view rest = argument.substr(prefix.size());
  while (!rest.empty() && rest.front() == ' ') {
    rest.remove_prefix(1);
  }
  if (rest.empty()) {
    return PathError::Syntax;
  }

  std::size_t pathEnd = 0;  // one past the path
  if (rest.front() == '<') {
    const std::size_t close = findPathEnd(rest);
    if (close == std::string_view::npos) {
      return PathError::Syntax;
    }
    pathEnd = close + 1;
    if (pathEnd < rest.size() && rest[pathEnd] != ' ') {
      return PathError::Syntax;  // "<a@b>x" or "<a@b>>"
    }
  } else {
    pathEnd = rest.find(' ');
    if (pathEnd == std::string_view::npos) {
      pathEnd = rest.size();
    }
    // A bare address with a bracket in it is a half-bracketed path.
    if (rest.substr(0, pathEnd).find_first_of("<>") != std::string_view::npos) {
      return PathError::Syntax;
    }
  }
  out.path.assign(rest.substr(0, pathEnd));
  rest.remove_prefix(pathEnd);

  // Parameters: every one is returned, duplicates included, so the session can refuse them.
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') {
      rest.remove_prefix(1);
    }
    if (rest.empty()) {
      break;
    }
    std::size_t tokenEnd = rest.find(' ');
    if (tokenEnd == std::string_view::npos) {
      tokenEnd = rest.size();
    }
    const std::string_view token = rest.substr(0, tokenEnd);
    rest.remove_prefix(tokenEnd);

    const std::size_t eq = token.find('=');
    const std::string_view key = token.substr(0, eq);
    if (!validKeyword(key)) {
      return PathError::BadParameter;
    }
    std::string value;
    if (eq != std::string_view::npos) {
      const std::string_view v = token.substr(eq + 1);
      if (!validValue(v)) {
        return PathError::BadParameter;
      }
      value.assign(v);
    }
    out.params.emplace_back(text::toUpper(key), std::move(value));
  }
  return PathError::None;
}

BdatError parseBdatArgument(std::string_view argument, std::uint64_t& size, bool& last) {
  size = 0;
  last = false;
  std::size_t digits = 0;
  std::uint64_t value = 0;
  while (digits < argument.size() && argument[digits] >= '0' && argument[digits] <= '9') {
    value = value * 10 + static_cast<std::uint64_t>(argument[digits] - '0');
    // Checked at every digit, so the value never gets anywhere near overflow (2^53 * 10 < 2^64);
    // leading zeros keep it 0 and cost nothing.
    if (value > kMaxBdatChunkSize) {
      return BdatError::Syntax;
    }
    ++digits;
  }
  if (digits == 0) {
    return BdatError::Syntax;
  }
  const std::string_view rest = argument.substr(digits);
  bool isLast = false;
  if (!rest.empty()) {
    if (rest.size() != 5 || rest[0] != ' ' || !text::equalsIgnoreCase(rest.substr(1), "LAST")) {
      return BdatError::Syntax;
    }
    isLast = true;
  }
  size = value;
  last = isLast;
  return BdatError::None;
}

}  // namespace certrelay::smtp
