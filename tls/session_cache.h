#pragma once
// The server-side TLS session cache, bounded by memory (tls.session_cache_memory, issue 14).
//
// OpenSSL's internal cache keeps every session as a live SSL_SESSION: the parsed client
// certificate and its chain, ~9 KiB per session with a P-256 client certificate, and an entry
// limit only, so any client that handshakes repeatedly could grow the process by ~180 MiB at the
// default 20,480 entries (more with bigger certificates: the client picks their size). This cache
// keeps what a resumption needs instead, the session in its DER form (i2d_SSL_SESSION: master
// secret, parameters, the leaf certificate's DER; 546 bytes with a P-256 client certificate), in an
// LRU bounded by bytes and entries. A resumption decodes it again (d2i_SSL_SESSION, which parses
// the client certificate): measured in docs/tuning.md ("Session cache").
//
// Security role: the cache holds master secrets: entries are wiped when dropped. A resumed
// session carries the client certificate it was made with, so the fingerprint is checked on it as
// on a full handshake (peer_facts.cpp). An entry that does not decode is dropped and the client
// gets a full handshake, never an error.
//
// Threads: one SSL_CTX (and so one cache) serves every worker. insert/find/erase take a mutex held
// only for the list and hash operations (never while encoding or decoding a session); OpenSSL's
// internal cache takes its SSL_CTX lock at the same points. Counters are atomics, read without the
// lock by the metrics scrape.

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace certrelay::tls {

// What every live SessionCache of the process holds together (certrelay_tls_session_cache_*).
struct SessionCacheTotals {
  std::size_t bytes = 0;
  std::size_t entries = 0;
  std::uint64_t evictions = 0;  // entries dropped to make room (not expired or removed ones)
};
SessionCacheTotals sessionCacheTotals();

class SessionCache {
 public:
  // What an entry costs beyond its encoded session: the LRU list node and the hash node (each
  // holding the id), the bucket, the allocator's rounding of the encoded bytes. Set from the
  // process's growth (RSS with mimalloc) over 12,000 sessions with a P-256 client certificate,
  // 832 bytes each for 546 encoded, so that the bound holds for memory and not only for bytes
  // counted (docs/tuning.md, "Session cache").
  static constexpr std::size_t kEntryOverhead = 288;
  static constexpr std::size_t kMaxIdLength = SSL_MAX_SSL_SESSION_ID_LENGTH;  // 32

  // Both bounds hold after every insert; 0 entries = no entry bound (bytes still bound).
  SessionCache(std::size_t maxBytes, std::size_t maxEntries);
  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  // The bytes an entry with `encodedSize` bytes of session counts for.
  static std::size_t cost(std::size_t encodedSize) { return kEntryOverhead + encodedSize; }

  // Stores `encoded` under `id` as the most recently used entry (replacing an entry with the same
  // id), first dropping expired entries at the cold end, then least recently used ones until both
  // bounds hold. Nothing is stored (false) for an empty or over-long id, or an entry that alone
  // costs more than maxBytes.
  bool insert(std::string_view id, std::string encoded, std::time_t expires);
  // A copy of the entry under `id`, now the most recently used; nullopt when there is none.
  std::optional<std::string> find(std::string_view id);
  // Drops the entry under `id`; false when there was none.
  bool erase(std::string_view id);
  // Drops every entry (a replaced TLS generation: its sessions can no longer be resumed).
  void clear();

  std::size_t maxBytes() const { return maxBytes_; }
  std::size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  std::size_t entries() const { return entries_.load(std::memory_order_relaxed); }
  std::uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  struct Key {
    std::array<char, kMaxIdLength> bytes{};
    std::uint8_t size = 0;
    std::string_view view() const { return {bytes.data(), size}; }
    bool operator==(const Key& other) const { return view() == other.view(); }
    // The key for a session id; nullopt for an empty or over-long one (none is ever stored).
    static std::optional<Key> of(std::string_view id);
  };
  struct KeyHash {
    std::size_t operator()(const Key& key) const noexcept;
  };
  struct Entry {
    Key key;
    std::string encoded;  // wiped before it is freed
    std::time_t expires = 0;
  };
  using Lru = std::list<Entry>;  // front: most recently used

  // With mutex_ held.
  void dropLocked(Lru::iterator it);
  void evictLocked(std::size_t incoming, std::time_t now);

  const std::size_t maxBytes_;
  const std::size_t maxEntries_;
  std::mutex mutex_;
  Lru lru_;
  std::unordered_map<Key, Lru::iterator, KeyHash> index_;
  std::atomic<std::size_t> bytes_{0};
  std::atomic<std::size_t> entries_{0};
  std::atomic<std::uint64_t> evictions_{0};
};

// Makes `cache` the only session store of the server context `ctx` (SSL_SESS_CACHE_SERVER |
// SSL_SESS_CACHE_NO_INTERNAL, new/get/remove callbacks). With stateless tickets on, sessions a
// ticket carries are not stored: every TLS 1.3 one, and TLS 1.2 ones whose client got a ticket;
// TLS 1.2 clients without ticket support still resume by session id. `cache` must outlive `ctx`.
// Returns false when OpenSSL refuses a callback (its error queue says why).
[[nodiscard]] bool installSessionCache(SSL_CTX* ctx, SessionCache* cache);

}  // namespace certrelay::tls
