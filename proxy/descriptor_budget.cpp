// DescriptorBudget: RLIMIT_NOFILE against limits.max_connections (descriptor_budget.h).

#include "proxy/descriptor_budget.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace certrelay::proxy {
namespace {

// stdio, the main loop (epoll, its eventfd, signal pipe), the log, the watchers' inotify and
// the files they read, the backend probe's connections.
constexpr std::uint64_t kProcess = 48;
// Per worker: its loop (epoll, eventfd), libuv's own EMFILE reserve, ours, and timers' fds.
constexpr std::uint64_t kPerWorker = 8;
// The admin loop, its listener and its connection cap (admin_server.h).
constexpr std::uint64_t kAdmin = 72;
constexpr std::uint64_t kMinSlack = 16;

std::uint64_t sessionsNeed(const config::Config& config, std::uint64_t sessions) {
  const std::uint64_t cap = config.backend.maxConnections;
  const std::uint64_t backends = cap == 0 ? sessions : std::min<std::uint64_t>(cap, sessions);
  return sessions + backends + std::max(kMinSlack, sessions / 8);
}

// The kernel's ceiling for any RLIMIT_NOFILE (setrlimit above it fails with EPERM).
std::uint64_t kernelCeiling() {
  std::ifstream file("/proc/sys/fs/nr_open");
  std::uint64_t value = 0;
  if (file >> value && value > 0) {
    return value;
  }
  return 1U << 20;  // Linux's default nr_open
}

}  // namespace

DescriptorBudget planDescriptors(const config::Config& config, std::uint64_t limit) {
  DescriptorBudget plan;
  plan.fixed = kProcess + config.workers * (kPerWorker + config.listeners.size()) +
               (config.admin.enabled ? kAdmin : 0);
  plan.maxConnections = config.limits.maxConnections;
  plan.needed = plan.fixed + sessionsNeed(config, plan.maxConnections);
  if (plan.needed <= limit) {
    return plan;
  }
  const std::string fixes =
      "raise it (LimitNOFILE= in the systemd unit, ulimit -n, the container runtime's nofile "
      "ulimit) or lower limits.max_connections";
  if (config.limits.maxConnectionsSet) {
    plan.error = "limits.max_connections = " + std::to_string(plan.maxConnections) +
                 " needs about " + std::to_string(plan.needed) +
                 " file descriptors (a client and a backend connection per session, plus " +
                 std::to_string(plan.fixed) + " for the process) but RLIMIT_NOFILE allows " +
                 std::to_string(limit) + "; " + fixes;
    return plan;
  }
  // The largest count that fits: sessionsNeed grows with the count, so search.
  std::uint64_t low = 0;
  std::uint64_t high = plan.maxConnections;
  while (low < high) {
    const std::uint64_t mid = (low + high + 1) / 2;
    if (plan.fixed + sessionsNeed(config, mid) <= limit) {
      low = mid;
    } else {
      high = mid - 1;
    }
  }
  if (low == 0) {
    plan.error = "RLIMIT_NOFILE allows " + std::to_string(limit) +
                 " file descriptors, fewer than the process needs for itself (" +
                 std::to_string(plan.fixed + sessionsNeed(config, 1)) + "); " + fixes;
    return plan;
  }
  plan.warning = "limits.max_connections not set: using " + std::to_string(low) + " instead of " +
                 std::to_string(plan.maxConnections) + ", what RLIMIT_NOFILE (" +
                 std::to_string(limit) + ") fits; " + fixes.substr(0, fixes.find(" or ")) +
                 " to allow more";
  plan.maxConnections = static_cast<std::size_t>(low);
  plan.needed = plan.fixed + sessionsNeed(config, low);
  return plan;
}

DescriptorBudget applyDescriptorLimit(const config::Config& config, rlim_t& soft, rlim_t& hard) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    DescriptorBudget plan;
    plan.error = std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
    return plan;
  }
  soft = limit.rlim_cur;
  hard = limit.rlim_max;
  const std::uint64_t ceiling = std::min<std::uint64_t>(
      hard == RLIM_INFINITY ? kernelCeiling() : static_cast<std::uint64_t>(hard), kernelCeiling());
  if (limit.rlim_cur < ceiling) {
    limit.rlim_cur = static_cast<rlim_t>(ceiling);
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      limit.rlim_cur = soft;  // keep planning against what is in force
    }
  }
  return planDescriptors(config, std::min<std::uint64_t>(limit.rlim_cur, ceiling));
}

}  // namespace certrelay::proxy
