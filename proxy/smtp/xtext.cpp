#include "proxy/smtp/xtext.h"

#include "common/text.h"

namespace certrelay::smtp {

namespace {

// xchar: '!'..'~' except '+' (the escape) and '=' (the parameter separator).
bool isXchar(unsigned char c) {
  return c >= '!' && c <= '~' && c != '+' && c != '=';
}

// RFC 1891 requires upper-case hex digits after '+'.
int upperHexValue(char c) {
  return (c >= 'a' && c <= 'f') ? -1 : text::hexValue(c);
}

}  // namespace

std::string xtextEncode(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (char c : raw) {
    const auto u = static_cast<unsigned char>(c);
    if (isXchar(u)) {
      out.push_back(c);
    } else {
      out.push_back('+');
      text::appendUpperHex(out, u);
    }
  }
  return out;
}

std::optional<std::string> xtextDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if (u == '+') {
      if (text.size() - i < 3) {  // '+' needs two hex digits after it
        return std::nullopt;
      }
      const int hi = upperHexValue(text[i + 1]);
      const int lo = upperHexValue(text[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (isXchar(u)) {
      out.push_back(text[i]);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

}  // namespace certrelay::smtp
