#include "proxy/backend_set.h"

#include <algorithm>
#include <iterator>

namespace certrelay::proxy {
namespace {

std::set<std::string> intersect(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::set<std::string> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::inserter(both, both.begin()));
  return both;
}

// The smaller of two SIZE announcements: a limit (n > 0) wins over "no fixed limit" (0).
std::optional<std::uint64_t> smallerSize(std::optional<std::uint64_t> a,
                                         std::optional<std::uint64_t> b) {
  if (!a || !b) {
    return std::nullopt;  // one does not announce SIZE: the proxy cannot announce it either
  }
  if (*a == 0 || *b == 0) {
    return std::max(*a, *b);
  }
  return std::min(*a, *b);
}

smtp::Capabilities intersect(const smtp::Capabilities& a, const smtp::Capabilities& b) {
  smtp::Capabilities both;
  both.pipelining = a.pipelining && b.pipelining;
  both.size = smallerSize(a.size, b.size);
  both.eightBitMime = a.eightBitMime && b.eightBitMime;
  both.smtpUtf8 = a.smtpUtf8 && b.smtpUtf8;
  both.dsn = a.dsn && b.dsn;
  both.enhancedStatusCodes = a.enhancedStatusCodes && b.enhancedStatusCodes;
  both.chunking = a.chunking && b.chunking;
  both.xclient = a.xclient && b.xclient;
  both.xclientAttributes = intersect(a.xclientAttributes, b.xclientAttributes);
  both.xforward = a.xforward && b.xforward;
  both.xforwardAttributes = intersect(a.xforwardAttributes, b.xforwardAttributes);
  both.postfix = a.postfix && b.postfix;
  return both;
}

}  // namespace

const char* toString(BackendHealth health) {
  switch (health) {
    case BackendHealth::Healthy:
      return "healthy";
    case BackendHealth::Down:
      return "down";
    case BackendHealth::Unfit:
      return "unfit";
    case BackendHealth::Unknown:
      break;
  }
  return "not probed yet";
}

std::size_t BackendSet::healthyCount() const {
  return static_cast<std::size_t>(std::count_if(targets.begin(), targets.end(), [](const auto& t) {
    return t.health == BackendHealth::Healthy;
  }));
}

std::vector<BackendAddress> connectOrder(const BackendSet& set, config::BalanceMode balance,
                                         std::uint64_t turn) {
  std::vector<BackendAddress> order;
  const auto entry = [](const BackendTarget& target) {
    return BackendAddress{target.address, target.host.empty() ? target.address.host : target.host};
  };
  for (const BackendTarget& target : set.targets) {
    if (target.health == BackendHealth::Healthy) {
      order.push_back(entry(target));
    }
  }
  if (balance == config::BalanceMode::RoundRobin && !order.empty()) {
    const auto first = static_cast<std::ptrdiff_t>(turn % order.size());
    std::rotate(order.begin(), order.begin() + first, order.end());
  }
  const bool anyHealthy = !order.empty();
  for (const BackendTarget& target : set.targets) {
    if (target.health == BackendHealth::Unknown || target.health == BackendHealth::Down) {
      order.push_back(entry(target));
    }
  }
  for (const BackendTarget& target : set.targets) {
    if (!anyHealthy && target.health == BackendHealth::Unfit) {
      order.push_back(entry(target));
    }
  }
  return order;
}

std::shared_ptr<const smtp::Capabilities> commonCapabilities(const BackendSet& set) {
  std::optional<smtp::Capabilities> common;
  for (const BackendTarget& target : set.targets) {
    if (target.health != BackendHealth::Healthy || target.capabilities == nullptr) {
      continue;
    }
    common = common ? intersect(*common, *target.capabilities) : *target.capabilities;
  }
  return common ? std::make_shared<const smtp::Capabilities>(*common) : nullptr;
}

}  // namespace certrelay::proxy
