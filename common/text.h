#pragma once
// Text helpers that config/, policy/, tls/ and proxy/ all need, written once: ASCII case
// folding, hex, colon fingerprints, the sanitizers for logs and headers, and the syntax checks
// of domain names and address literals.
//
// Everything here is ASCII-only and locale-free: bytes >= 0x80 are never letters, so a UTF-8
// name is never folded or matched differently depending on the process locale.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace certrelay::text {

// --- Case -----------------------------------------------------------------------------------

// 'A'..'Z' <-> 'a'..'z'; every other byte unchanged.
constexpr char toLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
constexpr char toUpper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}
std::string toLower(std::string_view text);
std::string toUpper(std::string_view text);

// Same length and equal after ASCII case folding.
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// --- Hex --------------------------------------------------------------------------------------

// Two digits per byte: upperHex({0x3e, 0xf8}) == "3EF8", lowerHex(...) == "3ef8".
std::string upperHex(std::span<const unsigned char> bytes);
std::string lowerHex(std::span<const unsigned char> bytes);
// Appends the two upper-case digits of `byte`.
void appendUpperHex(std::string& out, unsigned char byte);
// 0..15 for '0'-'9', 'a'-'f' and 'A'-'F'; -1 for anything else.
int hexValue(char c);

// A fingerprint as Postfix logs it: "3ef8..." -> "3E:F8:...", a ':' after every second
// character. a-f are upper-cased and anything that is not a hex digit becomes '?', so the result
// is safe in a log line or a header whatever `hex` holds. An odd last digit stands alone.
std::string withColons(std::string_view hex);

// --- Sanitizers ---------------------------------------------------------------------------------
//
// The one length rule: a sanitizer keeps the first `maxLen` bytes of its input (kMaxText unless
// the caller has a reason for less) and writes exactly one character for each of them, so the
// result is never longer than `maxLen` and one non-ASCII byte (half a UTF-8 'é') is one '?'.

inline constexpr std::size_t kMaxText = 255;

// Printable ASCII (0x20..0x7e) kept; control bytes (CR, LF, TAB, NUL, DEL) and every byte
// >= 0x80 become '?'. For quoting untrusted text in error messages and logs.
std::string sanitizePrintable(std::string_view text, std::size_t maxLen = kMaxText);

// sanitizePrintable, and also '\\', '"', '(' and ')' become '?': nothing can end or escape a
// quoted string or a parenthesised comment of a Received header.
std::string sanitizeComment(std::string_view text, std::size_t maxLen = kMaxText);

// sanitizeComment, and also ' ', '<', '>', ';' and '@' become '?' (Postfix's NEUTER_CHARACTERS):
// for single words of a header clause (HELO name, address, TLS names, host name, queue id).
std::string sanitizeToken(std::string_view text, std::size_t maxLen = kMaxText);

// --- Domains and address literals -------------------------------------------------------------

inline constexpr std::size_t kMaxDomain = 255;  // RFC 5321 section 4.5.3.1.2
inline constexpr std::size_t kMaxLabel = 63;    // RFC 1035 section 2.3.4

enum class DomainError {
  None,
  Syntax,   // empty, empty label, '-' at either end of a label, a bad character, all numeric
  TooLong,  // more than kMaxDomain bytes, or a label of more than kMaxLabel
};

// An RFC 5321 Domain without its trailing dot (callers remove one): labels of ASCII letters,
// digits and '-', no '-' at either end of a label. With `utf8` (SMTPUTF8) any byte >= 0x80 also
// counts as a letter (RFC 6531 U-labels; the caller checks that the text is valid UTF-8). A name
// whose labels are all digits is an IPv4 address written without brackets, not a domain
// (Postfix resolve_numeric_domain = no). Checked in this order: empty (Syntax), whole length
// (TooLong), then label by label: shape and characters (Syntax) before length (TooLong).
DomainError checkDomain(std::string_view name, bool utf8 = false);
inline bool isDomainName(std::string_view name, bool utf8 = false) {
  return checkDomain(name, utf8) == DomainError::None;
}

// A numeric IPv4 (dotted quad) or, with `v6`, IPv6 address, as strict as inet_pton takes it: no
// "10.1", no leading zeros, no zone id, no white space, no NUL.
bool isIpAddress(std::string_view text, bool v6);

// An RFC 5321 address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]" ("IPv6:" in any case), the
// address as strict as inet_pton takes it (dotted quad only, no zone id, no white space, no NUL).
// No length limit: callers that have one check it first.
bool isAddressLiteral(std::string_view text);

}  // namespace certrelay::text
