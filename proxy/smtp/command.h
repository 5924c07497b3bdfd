#pragma once
// SMTP command parsing (client side). Pure: a line in, a typed command out.
//
// Security role: only commands on the allow-list are ever re-serialised towards the backend;
// everything else (XCLIENT, XFORWARD, AUTH, ETRN, EXPN, TURN, unknown verbs) is recognised here
// so the session can answer it locally.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace certrelay::smtp {

enum class Verb {
  Ehlo,
  Helo,
  Starttls,
  Mail,
  Rcpt,
  Data,
  Bdat,
  Rset,
  Noop,
  Quit,
  Vrfy,
  Help,
  Xclient,
  Xforward,
  Auth,
  Expn,
  Etrn,
  Turn,
  Unknown,
};

struct Command {
  Verb verb = Verb::Unknown;
  std::string verbText;  // the verb as sent (for logs), at most 32 bytes
  std::string argument;  // everything after the verb and one or more spaces, trailing space cut
};

enum class CommandError {
  None,
  BadCharacter,  // NUL, bare CR or other control byte (not TAB) in the line -> 500 5.5.2
  Empty,         // blank line -> 500 5.5.2
};

// Verb match is case-insensitive. TAB counts as a space between verb and argument.
CommandError parseCommand(std::string_view line, Command& out);

// MAIL FROM:<path> params / RCPT TO:<path> params.
struct PathArgument {
  std::string path;  // what the address parser gets: "<...>" or a bare address
  std::vector<std::pair<std::string, std::string>> params;  // keyword upper-cased; value as sent
};

enum class PathError {
  None,
  Syntax,        // missing "FROM:"/"TO:", unbalanced brackets -> 501 5.5.4
  BadParameter,  // malformed "KEY=VALUE" -> 501 5.5.4
};

// `argument` is Command::argument of MAIL or RCPT; `prefix` is "FROM:" or "TO:"
// (case-insensitive; spaces after the colon tolerated).
PathError parsePathArgument(std::string_view argument, std::string_view prefix, PathArgument& out);

// BDAT (RFC 3030 section 2): bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF,
// chunk-size = 1*DIGIT, end-marker = "LAST".
enum class BdatError {
  None,
  Syntax,  // anything but "<digits>" or "<digits> LAST" -> 501 5.5.4
};

// Largest chunk size accepted: 2^53, far beyond any message limit, small enough that the count
// survives any arithmetic (and a JSON number) without overflow.
inline constexpr std::uint64_t kMaxBdatChunkSize = std::uint64_t{1} << 53;

// `argument` is Command::argument of BDAT (parseCommand already cut leading and trailing blanks).
// Accepts exactly <1*DIGIT> or <1*DIGIT> SP "LAST" (LAST in any letter case, one space, leading
// zeros allowed), with the size at most kMaxBdatChunkSize. Anything else (a sign, a tab, two
// spaces, another word, an over-large number) is Syntax; `size` and `last` are then 0 and false.
BdatError parseBdatArgument(std::string_view argument, std::uint64_t& size, bool& last);

}  // namespace certrelay::smtp
