#pragma once
// Anvil-style counting per client (Postfix anvil(8)): concurrent connections and new connections
// per address, messages and recipients per identity or address, each per rate window.
//
// Why this shape: one table of slots per worker, written only by that worker's loop thread and
// read by the others. A count is the sum of the key's slots in every worker's table, read with
// relaxed atomics; no lock is ever taken and no worker ever waits for another. The alternative, one
// shared table of atomics, needs a compare-and-swap per update and a protocol for freeing a slot
// that another thread may be incrementing at that moment; with one writer per table, slot reuse
// is a plain seqlock (the readers retry, the writer never waits) and an increment is a load and a
// store. A check costs one probe sequence per worker (workers <= cores), i.e. a few cache lines.
//
// Windows are fixed, as anvil's: a slot's counter starts a window at its first event and is reset
// by the first event after `window` has passed. Each worker's slot has its own window, so the
// sum can lag a window boundary by the spread between workers' first events (never by more than
// one window).
//
// Memory is fixed at construction: kSlotsPerWorker slots of 40 bytes per worker (320 KiB). A
// slot is reusable when its connections are closed and its windows have passed, so the table
// holds the clients seen within one window plus those still connected. A key that finds no slot
// within its probe sequence (kProbe slots) is not counted: it is let through (fail open, so that
// a flood of addresses cannot lock everyone else out; limits.max_connections still applies),
// reported by `tableFull` and the certrelay_limit_refusals_total{limit="table_full"} counter.
//
// Clock: the caller passes monotonic milliseconds (the loop's cached uv_now(): no system call);
// tests pass their own.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/networks.h"

namespace certrelay::proxy {

enum class RateCounter : std::uint8_t { Connection, Message, Recipient };

class ClientLimits {
 public:
  static constexpr std::size_t kSlotsPerWorker = 8192;  // a power of two
  static constexpr std::size_t kProbe = 16;
  // A window's count saturates here (config caps every limit below it).
  static constexpr std::uint64_t kMaxCount = (std::uint64_t{1} << 24) - 1;

  // `exempt`: CIDRs as config::parseCidr accepts them (limits.exempt_networks). The slot count
  // is rounded up to a power of two (tests use small tables).
  ClientLimits(unsigned workers, std::chrono::milliseconds window,
               const std::vector<std::string>& exempt,
               std::size_t slotsPerWorker = kSlotsPerWorker);

  // Whether none of the limits applies to this client address.
  [[nodiscard]] bool exempt(std::string_view address) const { return exempt_.contains(address); }

  struct Connected {
    std::int64_t slot = -1;        // for disconnect(); -1: not counted (table full)
    std::uint64_t concurrent = 0;  // open connections from the address, this one included
    std::uint64_t rate = 0;        // new connections in the window, this one included
  };
  // A new connection from `address` on `worker` (the caller's own index): counted until
  // disconnect(), and in the connection rate.
  Connected connect(unsigned worker, std::string_view address, std::uint64_t nowMs);
  void disconnect(unsigned worker, std::int64_t slot);

  // One more message or recipient for `key` (an identity or an address; `identity` keeps the two
  // kinds apart): the sum in the window across workers, this one included; 0 when not counted.
  std::uint64_t count(unsigned worker, RateCounter counter, bool identity, std::string_view key,
                      std::uint64_t nowMs);

  // Keys that found no slot since construction (any thread).
  [[nodiscard]] std::uint64_t tableFull() const {
    return tableFull_.load(std::memory_order_relaxed);
  }

 private:
  struct Slot {
    // Odd while the owner rewrites the slot for another key (seqlock); readers retry.
    std::atomic<std::uint32_t> seq{0};
    std::atomic<std::uint32_t> connections{0};
    std::atomic<std::uint64_t> key{0};  // 0: never used
    // Per RateCounter: window start (ms, high 40 bits) and the count in it (low 24 bits).
    std::array<std::atomic<std::uint64_t>, 3> rates{};
  };
  struct Table {
    std::unique_ptr<Slot[]> slots;
  };

  [[nodiscard]] std::uint64_t hash(bool identity, std::string_view key) const;
  // The owner's slot for `key`, claimed if needed; nullptr when the probe sequence is full.
  Slot* ownSlot(unsigned worker, std::uint64_t key, std::uint64_t nowMs);
  [[nodiscard]] bool reusable(const Slot& slot, std::uint64_t nowMs) const;
  // Adds one to the owner's counter and returns the sum over every worker.
  std::uint64_t bump(unsigned worker, Slot& slot, RateCounter counter, std::uint64_t key,
                     std::uint64_t nowMs);
  // What `key` has in the other workers' tables (concurrent connections, or a counter's count
  // in its window).
  std::uint64_t othersRate(unsigned worker, std::uint64_t key, RateCounter counter,
                           std::uint64_t nowMs) const;
  std::uint64_t othersConnections(unsigned worker, std::uint64_t key) const;
  // Reads `key`'s slot of `table` consistently; false when absent.
  bool readSlot(const Table& table, std::uint64_t key, std::uint32_t& connections,
                std::array<std::uint64_t, 3>& rates) const;
  [[nodiscard]] std::uint64_t inWindow(std::uint64_t packed, std::uint64_t nowMs) const;

  std::vector<Table> tables_;
  std::size_t mask_;
  std::uint64_t windowMs_;
  std::uint64_t seed_;
  policy::NetworkList exempt_;
  std::atomic<std::uint64_t> tableFull_{0};
};

}  // namespace certrelay::proxy
