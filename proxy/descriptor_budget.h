#pragma once
// The file descriptors the configuration needs, against RLIMIT_NOFILE. At start the soft limit
// is raised to the hard one (the kernel lets any process do that); then:
// - limits.max_connections set in the file and not fitting the hard limit: refuse to start,
//   naming both numbers and what to change (rather than refuse clients at random later);
// - max_connections not set: its default (10,000) is lowered to what fits, with a warning.
// What is left over at run time (other processes' files, a limit lowered under a running
// process) is met by the acceptor's reserved descriptor (proxy/acceptor.h).

#include <sys/resource.h>

#include <cstdint>
#include <string>

#include "config/config.h"

namespace certrelay::proxy {

struct DescriptorBudget {
  // Descriptors the process holds whatever the traffic (loops, listeners, reserves, admin, files).
  std::uint64_t fixed = 0;
  std::uint64_t needed = 0;  // for the max_connections below
  std::size_t maxConnections = 0;
  std::string error;    // non-empty: cannot start
  std::string warning;  // non-empty: max_connections lowered
};

// Pure: what `config` needs with `limit` descriptors available (the hard RLIMIT_NOFILE).
// Per session one descriptor for the client and one for its backend connection (at most
// backend.max_connections of those), a slack of an eighth for connections being refused or
// closed, and the fixed part.
DescriptorBudget planDescriptors(const config::Config& config, std::uint64_t limit);

// Raises the soft RLIMIT_NOFILE to the hard one and plans against it. `soft`/`hard`: the limits
// found (for the log).
DescriptorBudget applyDescriptorLimit(const config::Config& config, rlim_t& soft, rlim_t& hard);

}  // namespace certrelay::proxy
