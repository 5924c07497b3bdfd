#pragma once
// Shared pieces of the libFuzzer targets (tests/fuzz/*_fuzz.cpp).
//
// Every target reads its first byte(s) as controls (how the rest is split into feed() calls, a
// limit) and the rest as the bytes under test, so the seed corpora stay readable text with a
// short prefix. An oracle failure prints the broken check and aborts (libFuzzer then keeps the
// input as a crash file).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"

namespace certrelay::fuzz {

[[noreturn, gnu::cold, gnu::noinline]] inline void checkFailed(const char* expression,
                                                               const char* file, int line) {
  (void)::certrelay::assertionFailed(expression, file, line);
  std::abort();  // also when common/assert.h was built without CERTRELAY_ASSERT_ABORTS
}

// Deterministic xorshift64: the same input always gives the same splits.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

// Cuts `data` into consecutive pieces chosen by `how`: 0 = one piece, 1 = byte by byte, anything
// else = pseudo-random pieces of 1..2^(how % 12) bytes, with an empty piece now and then (feed("")
// must be harmless). The pieces always cover `data` exactly, in order.
inline std::vector<std::string_view> split(std::string_view data, std::uint8_t how) {
  std::vector<std::string_view> pieces;
  if (how == 0) {
    pieces.push_back(data);
    return pieces;
  }
  if (how == 1) {
    for (std::size_t i = 0; i < data.size(); ++i) {
      pieces.push_back(data.substr(i, 1));
    }
    return pieces;
  }
  Rng rng{0x9E3779B97F4A7C15ULL ^ (std::uint64_t{how} * 0xD1B54A32D192ED03ULL)};
  const std::size_t maxPiece = std::size_t{1} << (how % 12);
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::size_t n = rng.below(8) == 0 ? 0 : 1 + rng.below(maxPiece);
    pieces.push_back(data.substr(pos, n));
    pos += pieces.back().size();
  }
  return pieces;
}

inline bool isControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

inline bool hasControl(std::string_view text) {
  for (char c : text) {
    if (isControl(c)) {
      return true;
    }
  }
  return false;
}

inline char toUpperAscii(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

inline std::string toLowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (toUpperAscii(a[i]) != toUpperAscii(b[i])) {
      return false;
    }
  }
  return true;
}

inline std::string_view asText(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace certrelay::fuzz

// FUZZ_CHECK(condition): an oracle of a fuzz target. Aborts with the expression on failure.
#define FUZZ_CHECK(condition)         \
  ((condition) ? static_cast<void>(0) \
               : ::certrelay::fuzz::checkFailed(#condition, __FILE__, __LINE__))
