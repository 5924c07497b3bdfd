#pragma once
// Running the openssl command line from tests, to compare our results with OpenSSL's own tools.

#include <doctest/doctest.h>
#include <stdio.h>

#include <string>

namespace certrelay::tls::test {

// Output of a shell command (stdout); the command must succeed.
inline std::string shell(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[512];
  while (std::size_t n = fread(buf, 1, sizeof(buf), pipe)) {
    out.append(buf, n);
  }
  CHECK(pclose(pipe) == 0);
  return out;
}

}  // namespace certrelay::tls::test
