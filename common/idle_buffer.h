#pragma once
// The one rule for buffers of long-lived connections (TLS engine, session and backend writes,
// the line reader): once emptied, a buffer keeps at most a reply's worth of capacity.
//
// Idle connections dominate memory (bench/LIMITS.md, W4). A buffer that held a handshake
// flight or a message chunk must not keep that capacity for hours; reallocating for the next
// large piece costs far less than the system call that moves it. SMTP commands and replies fit
// below the limit, so ordinary dialogue reuses its buffers without allocating. Measured with
// certrelay-load --idle, 1000 connections: a 4 KiB limit kept ~4.8 KiB more per connection.

#include <cstddef>
#include <string>

namespace certrelay {

inline constexpr std::size_t kIdleBufferCapacity = 512;

// Empties `buffer`, releasing its memory when it grew beyond kIdleBufferCapacity.
inline void releaseIdleBuffer(std::string& buffer) {
  if (buffer.capacity() > kIdleBufferCapacity) {
    std::string().swap(buffer);
  } else {
    buffer.clear();
  }
}

}  // namespace certrelay
