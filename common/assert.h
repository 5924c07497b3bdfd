#pragma once
// CERTRELAY_ASSERT: an invariant that the code relies on, checked where it is relied on.
//
// Debug, sanitizer and fuzzing builds abort on a broken invariant (the bug is found where it
// happens). Release builds print the broken invariant to stderr and return false, so the caller
// can end the one session it concerns instead of the process: every use is
//
//     if (!CERTRELAY_ASSERT(replies_.fill(tag, wire))) { return closeOnBug(); }
//
// which is why the result is [[nodiscard]]: an assertion whose failure is ignored in release is
// a comment, not a check.

#include <cstdio>
#include <cstdlib>

namespace certrelay {

#if !defined(NDEBUG) || defined(CERTRELAY_ASSERT_ABORTS)
inline constexpr bool kAssertAborts = true;
#else
inline constexpr bool kAssertAborts = false;
#endif

[[gnu::cold, gnu::noinline]] inline bool assertionFailed(const char* expression, const char* file,
                                                         int line) {
  std::fprintf(stderr, "certrelay: invariant broken: %s (%s:%d)\n", expression, file, line);
  if constexpr (kAssertAborts) {
    std::abort();
  }
  return false;
}

// The macro's value: [[nodiscard]] so that a release-build failure cannot be silently ignored.
[[nodiscard]] inline bool assertionHolds(bool holds) {
  return holds;
}

}  // namespace certrelay

#define CERTRELAY_ASSERT(condition)                           \
  ::certrelay::assertionHolds(static_cast<bool>(condition) || \
                              ::certrelay::assertionFailed(#condition, __FILE__, __LINE__))
