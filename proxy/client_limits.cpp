// ClientLimits: per-worker slot tables, written by their owner only, summed by every reader.

#include "proxy/client_limits.h"

#include <algorithm>
#include <bit>
#include <random>

#include "common/assert.h"

namespace certrelay::proxy {
namespace {

constexpr unsigned kCountBits = 24;
constexpr std::uint64_t kCountMask = (std::uint64_t{1} << kCountBits) - 1;
constexpr std::uint64_t kTimeMask = (std::uint64_t{1} << (64 - kCountBits)) - 1;
// A reader that keeps meeting a slot being rewritten gives up on that slot (it was being reused
// for another key, so it no longer counts for this one).
constexpr int kReadRetries = 4;

std::uint64_t mix(std::uint64_t x) {
  // splitmix64's finalizer: spreads FNV's weak low bits over the whole word.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t pack(std::uint64_t startMs, std::uint64_t count) {
  return ((startMs & kTimeMask) << kCountBits) | (count & kCountMask);
}

std::size_t index(RateCounter counter) {
  return static_cast<std::size_t>(counter);
}

}  // namespace

ClientLimits::ClientLimits(unsigned workers, std::chrono::milliseconds window,
                           const std::vector<std::string>& exempt, std::size_t slotsPerWorker)
    : tables_(workers == 0 ? 1 : workers),
      mask_(std::bit_ceil(std::max(slotsPerWorker, kProbe)) - 1),
      windowMs_(static_cast<std::uint64_t>(window.count())),
      // Keyed by a random seed: which keys share a probe sequence cannot be planned from outside.
      seed_((static_cast<std::uint64_t>(std::random_device{}()) << 32) | std::random_device{}()),
      exempt_(policy::NetworkList::parse(exempt)) {
  for (Table& table : tables_) {
    table.slots = std::make_unique<Slot[]>(mask_ + 1);
  }
}

std::uint64_t ClientLimits::hash(bool identity, std::string_view key) const {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed_;  // FNV-1a, seeded
  h = (h ^ (identity ? 'i' : 'a')) * 0x100000001b3ULL;
  for (const char c : key) {
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  }
  h = mix(h);
  return h == 0 ? 1 : h;  // 0 marks an unused slot
}

std::uint64_t ClientLimits::inWindow(std::uint64_t packed, std::uint64_t nowMs) const {
  const std::uint64_t count = packed & kCountMask;
  if (count == 0) {
    return 0;
  }
  const auto start = static_cast<std::int64_t>(packed >> kCountBits);
  const auto now = static_cast<std::int64_t>(nowMs & kTimeMask);
  // Another worker's loop time may be a little ahead of ours: a start "in the future" counts.
  return now - start >= static_cast<std::int64_t>(windowMs_) ? 0 : count;
}

bool ClientLimits::reusable(const Slot& slot, std::uint64_t nowMs) const {
  if (slot.connections.load(std::memory_order_relaxed) != 0) {
    return false;
  }
  for (const auto& rate : slot.rates) {
    if (inWindow(rate.load(std::memory_order_relaxed), nowMs) != 0) {
      return false;
    }
  }
  return true;
}

ClientLimits::Slot* ClientLimits::ownSlot(unsigned worker, std::uint64_t key, std::uint64_t nowMs) {
  Slot* const slots = tables_[worker].slots.get();
  Slot* free = nullptr;
  for (std::size_t i = 0; i < kProbe; ++i) {
    Slot& slot = slots[(key + i) & mask_];
    const std::uint64_t held = slot.key.load(std::memory_order_relaxed);
    if (held == key) {
      return &slot;
    }
    if (free == nullptr && (held == 0 || reusable(slot, nowMs))) {
      free = &slot;
    }
  }
  if (free == nullptr) {
    tableFull_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  // Seqlock write: readers that overlap see an odd or changed sequence and retry. Each store is
  // a release (not a fence, which TSan cannot model): a reader that sees any new value also sees
  // the odd sequence before it. Free on x86, and only when a slot changes hands.
  const std::uint32_t seq = free->seq.load(std::memory_order_relaxed);
  free->seq.store(seq + 1, std::memory_order_relaxed);
  free->key.store(key, std::memory_order_release);
  free->connections.store(0, std::memory_order_release);
  for (auto& rate : free->rates) {
    rate.store(0, std::memory_order_release);
  }
  free->seq.store(seq + 2, std::memory_order_release);
  return free;
}

bool ClientLimits::readSlot(const Table& table, std::uint64_t key, std::uint32_t& connections,
                            std::array<std::uint64_t, 3>& rates) const {
  for (std::size_t i = 0; i < kProbe; ++i) {
    const Slot& slot = table.slots[(key + i) & mask_];
    for (int attempt = 0; attempt < kReadRetries; ++attempt) {
      const std::uint32_t before = slot.seq.load(std::memory_order_acquire);
      if ((before & 1U) != 0) {
        continue;
      }
      // Acquire loads keep the second sequence load after them (the writer's stores pair).
      const std::uint64_t held = slot.key.load(std::memory_order_acquire);
      connections = slot.connections.load(std::memory_order_acquire);
      for (std::size_t r = 0; r < rates.size(); ++r) {
        rates[r] = slot.rates[r].load(std::memory_order_acquire);
      }
      if (slot.seq.load(std::memory_order_relaxed) != before) {
        continue;
      }
      if (held == key) {
        return true;
      }
      break;  // a consistent read of another key: try the next slot
    }
  }
  return false;
}

std::uint64_t ClientLimits::othersRate(unsigned worker, std::uint64_t key, RateCounter counter,
                                       std::uint64_t nowMs) const {
  std::uint64_t sum = 0;
  for (std::size_t w = 0; w < tables_.size(); ++w) {
    std::uint32_t connections = 0;
    std::array<std::uint64_t, 3> rates{};
    if (w != worker && readSlot(tables_[w], key, connections, rates)) {
      sum += inWindow(rates[index(counter)], nowMs);
    }
  }
  return sum;
}

std::uint64_t ClientLimits::othersConnections(unsigned worker, std::uint64_t key) const {
  std::uint64_t sum = 0;
  for (std::size_t w = 0; w < tables_.size(); ++w) {
    std::uint32_t connections = 0;
    std::array<std::uint64_t, 3> rates{};
    if (w != worker && readSlot(tables_[w], key, connections, rates)) {
      sum += connections;
    }
  }
  return sum;
}

std::uint64_t ClientLimits::bump(unsigned worker, Slot& slot, RateCounter counter,
                                 std::uint64_t key, std::uint64_t nowMs) {
  auto& rate = slot.rates[index(counter)];
  const std::uint64_t packed = rate.load(std::memory_order_relaxed);
  const std::uint64_t current = inWindow(packed, nowMs);
  const std::uint64_t next = current == 0          ? pack(nowMs, 1)
                             : current < kMaxCount ? pack(packed >> kCountBits, current + 1)
                                                   : packed;
  rate.store(next, std::memory_order_relaxed);
  return (next & kCountMask) + othersRate(worker, key, counter, nowMs);
}

ClientLimits::Connected ClientLimits::connect(unsigned worker, std::string_view address,
                                              std::uint64_t nowMs) {
  Connected result;
  if (!CERTRELAY_ASSERT(worker < tables_.size())) {
    return result;
  }
  const std::uint64_t key = hash(false, address);
  Slot* slot = ownSlot(worker, key, nowMs);
  if (slot == nullptr) {
    return result;
  }
  const std::uint32_t mine = slot->connections.load(std::memory_order_relaxed) + 1;
  slot->connections.store(mine, std::memory_order_relaxed);
  result.slot = slot - tables_[worker].slots.get();
  result.concurrent = mine + othersConnections(worker, key);
  result.rate = bump(worker, *slot, RateCounter::Connection, key, nowMs);
  return result;
}

void ClientLimits::disconnect(unsigned worker, std::int64_t slot) {
  if (slot < 0 || !CERTRELAY_ASSERT(worker < tables_.size())) {
    return;
  }
  Slot& s = tables_[worker].slots[static_cast<std::size_t>(slot)];
  // A slot with open connections is never reused, so this is still the connection's slot.
  const std::uint32_t open = s.connections.load(std::memory_order_relaxed);
  if (CERTRELAY_ASSERT(open > 0)) {
    s.connections.store(open - 1, std::memory_order_relaxed);
  }
}

std::uint64_t ClientLimits::count(unsigned worker, RateCounter counter, bool identity,
                                  std::string_view key, std::uint64_t nowMs) {
  if (!CERTRELAY_ASSERT(worker < tables_.size())) {
    return 0;
  }
  const std::uint64_t hashed = hash(identity, key);
  Slot* slot = ownSlot(worker, hashed, nowMs);
  if (slot == nullptr) {
    return 0;
  }
  return bump(worker, *slot, counter, hashed, nowMs);
}

}  // namespace certrelay::proxy
