// proxy/net_util: buffer release after a write.

#include "proxy/net_util.h"

#include <doctest/doctest.h>

#include <string>

namespace certrelay::proxy {

TEST_CASE("net_util: a written buffer that held a large write gives its memory back") {
  std::string buffer(std::size_t{16} * 1024, 'x');
  releaseWritten(buffer);
  CHECK(buffer.empty());
  CHECK(buffer.capacity() < 64);
}

TEST_CASE("net_util: a written buffer of reply size keeps its capacity for the next reply") {
  std::string buffer(300, 'x');
  const std::size_t before = buffer.capacity();
  releaseWritten(buffer);
  CHECK(buffer.empty());
  CHECK(buffer.capacity() == before);
}

}  // namespace certrelay::proxy
