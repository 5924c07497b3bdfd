#include "common/text.h"

#include <arpa/inet.h>

namespace certrelay::text {

namespace {

constexpr char kUpperDigits[] = "0123456789ABCDEF";
constexpr char kLowerDigits[] = "0123456789abcdef";

std::string hex(std::span<const unsigned char> bytes, const char* digits) {
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0x0f];
  }
  return out;
}

bool isPrintable(unsigned char c) {
  return c >= 0x20 && c <= 0x7e;
}

bool breaksComment(char c) {
  return c == '\\' || c == '"' || c == '(' || c == ')';
}

bool breaksToken(char c) {
  return c == ' ' || c == '<' || c == '>' || c == ';' || c == '@';
}

// The one length rule (text.h): the first maxLen bytes, one output character for each.
template <typename Keep>
std::string sanitize(std::string_view text, std::size_t maxLen, Keep keep) {
  text = text.substr(0, maxLen);
  std::string out(text.size(), '?');
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (keep(text[i])) {
      out[i] = text[i];
    }
  }
  return out;
}

bool isAsciiLetterOrDigit(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

std::string toLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = toLower(c);
  }
  return out;
}

std::string toUpper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = toUpper(c);
  }
  return out;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (toUpper(a[i]) != toUpper(b[i])) {
      return false;
    }
  }
  return true;
}

std::string upperHex(std::span<const unsigned char> bytes) {
  return hex(bytes, kUpperDigits);
}

std::string lowerHex(std::span<const unsigned char> bytes) {
  return hex(bytes, kLowerDigits);
}

void appendUpperHex(std::string& out, unsigned char byte) {
  out.push_back(kUpperDigits[byte >> 4]);
  out.push_back(kUpperDigits[byte & 0x0f]);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string withColons(std::string_view hex) {
  std::string out;
  out.reserve(hex.size() + hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); ++i) {
    if (i > 0 && i % 2 == 0) {
      out.push_back(':');
    }
    const char c = toUpper(hex[i]);
    const bool digit = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
    out.push_back(digit ? c : '?');
  }
  return out;
}

std::string sanitizePrintable(std::string_view text, std::size_t maxLen) {
  return sanitize(text, maxLen, [](char c) { return isPrintable(static_cast<unsigned char>(c)); });
}

std::string sanitizeComment(std::string_view text, std::size_t maxLen) {
  return sanitize(text, maxLen, [](char c) {
    return isPrintable(static_cast<unsigned char>(c)) && !breaksComment(c);
  });
}

std::string sanitizeToken(std::string_view text, std::size_t maxLen) {
  return sanitize(text, maxLen, [](char c) {
    return isPrintable(static_cast<unsigned char>(c)) && !breaksComment(c) && !breaksToken(c);
  });
}

DomainError checkDomain(std::string_view name, bool utf8) {
  if (name.empty()) {
    return DomainError::Syntax;
  }
  if (name.size() > kMaxDomain) {
    return DomainError::TooLong;
  }
  bool allNumeric = true;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) {
      end = name.size();
    }
    const std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') {
      return DomainError::Syntax;
    }
    for (char ch : label) {
      const auto c = static_cast<unsigned char>(ch);
      if (!isAsciiLetterOrDigit(c) && c != '-' && !(utf8 && c >= 0x80)) {
        return DomainError::Syntax;
      }
      allNumeric = allNumeric && c >= '0' && c <= '9';
    }
    if (label.size() > kMaxLabel) {
      return DomainError::TooLong;
    }
    start = end + 1;
  }
  // "192.0.2.1" is an address written without brackets, not a name: SMTP needs "[192.0.2.1]".
  return allNumeric ? DomainError::Syntax : DomainError::None;
}

bool isIpAddress(std::string_view text, bool v6) {
  // inet_pton reads a C string: an embedded NUL would hide whatever follows it.
  if (text.find('\0') != std::string_view::npos) {
    return false;
  }
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(v6 ? AF_INET6 : AF_INET, std::string(text).c_str(), buffer) == 1;
}

bool isAddressLiteral(std::string_view text) {
  if (text.size() < 3 || text.front() != '[' || text.back() != ']') {
    return false;
  }
  const std::string_view inner = text.substr(1, text.size() - 2);
  static constexpr std::string_view kIpv6Tag = "IPv6:";
  if (inner.size() > kIpv6Tag.size() &&
      equalsIgnoreCase(inner.substr(0, kIpv6Tag.size()), kIpv6Tag)) {
    return isIpAddress(inner.substr(kIpv6Tag.size()), true);
  }
  return isIpAddress(inner, false);
}

}  // namespace certrelay::text
