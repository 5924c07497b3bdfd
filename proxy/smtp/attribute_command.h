#pragma once
// Internal helpers shared by the XCLIENT and XFORWARD builders (not a public interface).
//
// Both commands carry `NAME=value` attributes with xtext values, at most 255 characters per value
// (Postfix: "attribute value too long"), on command lines of at most 512 octets with CR LF
// (RFC 5321 section 4.5.3.1.4), split over several commands when needed.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace certrelay::smtp::detail {

inline constexpr std::size_t kMaxCommandLine = 512 - 2;  // CR LF excluded
inline constexpr std::size_t kMaxAttributeValue = 255;
inline constexpr std::string_view kUnavailable = "[UNAVAILABLE]";

// "192.0.2.1" as it is, "2001:db8::1" as "IPV6:2001:db8::1" (no brackets), "" as [UNAVAILABLE].
std::string addressAttribute(const std::string& addr);

// xtext of `raw`, or [UNAVAILABLE] when `raw` is empty or its encoding is longer than `maxEncoded`.
std::string xtextOrUnavailable(std::string_view raw, std::size_t maxEncoded = kMaxAttributeValue);

// Fills commands "VERB NAME=value ..." in order, starting a new command whenever the next
// attribute would take the current one past kMaxCommandLine. A single attribute always fits
// (the verb plus one 255-character value is far below the limit).
class AttributeCommandPacker {
 public:
  explicit AttributeCommandPacker(std::string verb) : verb_(std::move(verb)), current_(verb_) {}

  // Appends " name=value" to the current command, or to a fresh one when it would not fit.
  void add(std::string_view name, std::string_view value);
  // Appends every attribute of `items` (each " NAME=value", leading space included) to one
  // command, closing the current command first when the group would not fit in it.
  void addGroup(const std::string& items);
  // Closes the current command (if it holds an attribute) and returns all commands.
  std::vector<std::string> finish();

 private:
  bool empty() const { return current_.size() == verb_.size(); }
  void append(const std::string& items);

  std::string verb_;
  std::string current_;
  std::vector<std::string> commands_;
};

}  // namespace certrelay::smtp::detail
