#pragma once
// A byte-at-a-time reference for smtp::DataCanonicalizer: the documented rules of
// proxy/smtp/data_canonicalizer.h applied one byte at a time, with no fast paths (the state
// machine of the original implementation). Whole input only. Shared by the unit test's
// differential cases and the data_canonicalizer fuzz target (tests/fuzz), which compare the real
// canonicaliser against it byte for byte.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace certrelay::smtp::test_support {

struct Reference {
  std::string out;  // content, before finish()
  std::size_t consumed = 0;
  bool done = false;
  std::uint64_t contentBytes = 0;
  std::string finished;  // out after finish(), whether or not end of data was seen
};

inline Reference referenceCanonicalize(std::string_view input) {
  enum class S { LineStart, Dot, DotCr, Middle, MiddleCr };
  Reference r;
  S s = S::LineStart;
  bool prevCrlf = true;
  const auto endLine = [&](bool crlf) {
    r.out += "\r\n";
    r.contentBytes += 2;
    prevCrlf = crlf;
    s = S::LineStart;
  };
  const auto content = [&](char c) {
    r.out.push_back(c);
    ++r.contentBytes;
    s = S::Middle;
  };
  std::size_t i = 0;
  while (i < input.size() && !r.done) {
    const char c = input[i];
    switch (s) {
      case S::LineStart:
        if (c == '.') {
          s = S::Dot;
        } else if (c == '\r') {
          s = S::MiddleCr;
        } else if (c == '\n') {
          endLine(false);
        } else {
          content(c);
        }
        ++i;
        break;
      case S::Dot:
        if (c == '\r') {
          s = S::DotCr;
        } else if (c == '\n') {
          endLine(false);
        } else {
          if (c == '.') {
            r.out.push_back('.');  // stuffing, not content
          }
          content(c);
        }
        ++i;
        break;
      case S::DotCr:
        if (c == '\n' && prevCrlf) {
          r.done = true;
          ++i;
        } else if (c == '\n') {
          endLine(true);
          ++i;
        } else {
          endLine(false);  // `c` is not consumed: it starts the next line
        }
        break;
      case S::Middle:
        if (c == '\r') {
          s = S::MiddleCr;
        } else if (c == '\n') {
          endLine(false);
        } else {
          content(c);
        }
        ++i;
        break;
      case S::MiddleCr:
        if (c == '\n') {
          endLine(true);
          ++i;
        } else {
          endLine(false);  // `c` is not consumed
        }
        break;
    }
  }
  r.consumed = i;
  r.finished = r.out;
  if (!r.done && s != S::LineStart) {
    r.finished += "\r\n";
  }
  r.finished += ".\r\n";
  return r;
}

}  // namespace certrelay::smtp::test_support
