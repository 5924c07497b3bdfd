// common/idle_buffer: an emptied buffer keeps at most a reply's worth of capacity.

#include "common/idle_buffer.h"

#include <doctest/doctest.h>

#include <string>

namespace certrelay {

TEST_CASE("idle_buffer: a buffer that held a large piece gives its memory back") {
  std::string buffer(std::size_t{16} * 1024, 'x');
  releaseIdleBuffer(buffer);
  CHECK(buffer.empty());
  CHECK(buffer.capacity() < 64);
}

TEST_CASE("idle_buffer: a buffer of reply size keeps its capacity for the next reply") {
  std::string buffer(300, 'x');
  const std::size_t before = buffer.capacity();
  releaseIdleBuffer(buffer);
  CHECK(buffer.empty());
  CHECK(buffer.capacity() == before);
}

}  // namespace certrelay
