#pragma once
// xtext (RFC 1891 section 5 / RFC 3461 section 4), as used by XCLIENT, XFORWARD, DSN ENVID/ORCPT.

#include <optional>
#include <string>
#include <string_view>

namespace certrelay::smtp {

// Bytes '!'..'~' except '+' and '=' pass; everything else becomes "+XX" (upper-case hex).
std::string xtextEncode(std::string_view raw);
// Strict decode; nullopt on a bad "+XX" or a byte outside xchar.
std::optional<std::string> xtextDecode(std::string_view text);

}  // namespace certrelay::smtp
