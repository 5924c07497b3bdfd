#pragma once
// How many CPUs this process may use: what `workers = 0` starts one event loop per. In a pod with
// `resources.limits.cpu: 1` on a 64-core node, one loop, not 64 (each loop would otherwise
// compete for the same CFS quota and be throttled).

#include <optional>
#include <string_view>

namespace certrelay::config {

// The CPUs of the process's affinity mask (sched_getaffinity), then lowered to the cgroup v2
// quota (/sys/fs/cgroup/cpu.max) when there is one. At least 1.
unsigned availableCpus();

// The whole CPUs a cgroup v2 `cpu.max` line allows, rounded up: "150000 100000" -> 2,
// "50000 100000" -> 1; nullopt for "max 100000" (no limit) or a line that does not parse.
std::optional<unsigned> cpusFromCgroupMax(std::string_view cpuMax);

}  // namespace certrelay::config
