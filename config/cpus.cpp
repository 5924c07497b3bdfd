#include "config/cpus.h"

#include <sched.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace certrelay::config {

std::optional<unsigned> cpusFromCgroupMax(std::string_view cpuMax) {
  const std::size_t space = cpuMax.find(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view quotaText = cpuMax.substr(0, space);
  std::string_view periodText = cpuMax.substr(space + 1);
  while (!periodText.empty() && (periodText.back() == '\n' || periodText.back() == ' ')) {
    periodText.remove_suffix(1);
  }
  unsigned long long quota = 0;
  unsigned long long period = 0;
  const auto parse = [](std::string_view text, unsigned long long& out) {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
  };
  if (quotaText == "max" || !parse(quotaText, quota) || !parse(periodText, period) || quota == 0 ||
      period == 0) {
    return std::nullopt;
  }
  const unsigned long long cpus = (quota + period - 1) / period;
  return static_cast<unsigned>(cpus > 4096 ? 4096 : cpus);
}

unsigned availableCpus() {
  unsigned cpus = std::thread::hardware_concurrency();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    cpus = static_cast<unsigned>(CPU_COUNT(&set));
  }
  std::ifstream file("/sys/fs/cgroup/cpu.max");
  std::string line;
  if (file && std::getline(file, line)) {
    if (const auto limit = cpusFromCgroupMax(line); limit && *limit < cpus) {
      cpus = *limit;
    }
  }
  return cpus == 0 ? 1 : cpus;
}

}  // namespace certrelay::config
