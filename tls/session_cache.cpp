// The byte-bounded session cache and the OpenSSL callbacks that make it a server's session store.
// See session_cache.h for why it exists and what it costs.

#include "tls/session_cache.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <functional>
#include <iterator>
#include <utility>

namespace certrelay::tls {

namespace {

// The process-wide totals: every cache adds and subtracts its own changes.
struct Totals {
  std::atomic<std::size_t> bytes{0};
  std::atomic<std::size_t> entries{0};
  std::atomic<std::uint64_t> evictions{0};
};

Totals& totals() {
  static Totals instance;
  return instance;
}

void wipe(std::string& secret) {
  if (!secret.empty()) {
    OPENSSL_cleanse(secret.data(), secret.size());
  }
}

// ex_data slot on SSL_CTX holding its SessionCache*.
int cacheIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// ex_data slot on SSL marking "a stateless ticket was issued on this connection".
int statelessTicketIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

SessionCache* cacheOf(SSL_CTX* ctx) {
  return ctx == nullptr ? nullptr
                        : static_cast<SessionCache*>(SSL_CTX_get_ex_data(ctx, cacheIndex()));
}

std::string_view idOf(const SSL_SESSION* session) {
  unsigned int length = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &length);
  return {reinterpret_cast<const char*>(id), length};
}

// Called just before OpenSSL builds a ticket (TLS 1.2 and 1.3, stateful ones included). Without
// SSL_OP_NO_TICKET the ticket is stateless: it carries the whole session.
int markStatelessTicket(SSL* ssl, void* /*arg*/) {
  if ((SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0) {
    static char marker = 1;
    SSL_set_ex_data(ssl, statelessTicketIndex(), &marker);
  }
  return 1;
}

// Whether the client holds a stateless ticket for this session, so a cache entry would only
// take room: every TLS 1.3 session when stateless tickets are on (OpenSSL still calls the
// new-session callback for them, with a dummy id), a TLS 1.2 one when a ticket was sent.
bool carriedByTicket(const SSL* ssl) {
  if (SSL_version(ssl) == TLS1_3_VERSION) {
    return (SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0;
  }
  return SSL_get_ex_data(ssl, statelessTicketIndex()) != nullptr;
}

// SSL_CTX_sess_set_new_cb: returns 0, OpenSSL keeps (and drops) its own reference.
int storeSession(SSL* ssl, SSL_SESSION* session) {
  SessionCache* cache = cacheOf(SSL_get_SSL_CTX(ssl));
  if (cache == nullptr || carriedByTicket(ssl)) {
    return 0;
  }
  const std::string_view id = idOf(session);
  // One encoding pass: OpenSSL allocates the output when given a null pointer.
  unsigned char* der = nullptr;
  const int size = i2d_SSL_SESSION(session, &der);
  if (id.empty() || size <= 0 || der == nullptr) {
    OPENSSL_free(der);
    ERR_clear_error();  // a failed encoding is not this handshake's error
    return 0;
  }
  std::string encoded(reinterpret_cast<const char*>(der), static_cast<std::size_t>(size));
  OPENSSL_clear_free(der, static_cast<std::size_t>(size));
  const std::time_t expires =
      static_cast<std::time_t>(SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session));
  cache->insert(id, std::move(encoded), expires);
  return 0;
}

// SSL_CTX_sess_set_get_cb: a new SSL_SESSION the handshake owns (*copy = 0), or null. OpenSSL
// then checks the session id context and the timeout itself (and removes a timed-out one).
SSL_SESSION* lookUpSession(SSL* ssl, const unsigned char* id, int length, int* copy) {
  *copy = 0;
  SessionCache* cache = cacheOf(SSL_get_SSL_CTX(ssl));
  if (cache == nullptr || length <= 0) {
    return nullptr;
  }
  const std::string_view key(reinterpret_cast<const char*>(id), static_cast<std::size_t>(length));
  std::optional<std::string> encoded = cache->find(key);
  if (!encoded) {
    return nullptr;
  }
  ERR_set_mark();
  const auto* in = reinterpret_cast<const unsigned char*>(encoded->data());
  SSL_SESSION* session = d2i_SSL_SESSION(nullptr, &in, static_cast<long>(encoded->size()));
  wipe(*encoded);
  if (session == nullptr) {
    // A corrupt entry: forget it, the client gets a full handshake.
    ERR_pop_to_mark();
    cache->erase(key);
    return nullptr;
  }
  ERR_clear_last_mark();
  return session;
}

// SSL_CTX_sess_set_remove_cb: timed out, or a connection that ended badly (ssl_clear_bad_session).
void forgetSession(SSL_CTX* ctx, SSL_SESSION* session) {
  if (SessionCache* cache = cacheOf(ctx)) {
    cache->erase(idOf(session));
  }
}

}  // namespace

SessionCacheTotals sessionCacheTotals() {
  const Totals& t = totals();
  return {t.bytes.load(std::memory_order_relaxed), t.entries.load(std::memory_order_relaxed),
          t.evictions.load(std::memory_order_relaxed)};
}

std::size_t SessionCache::KeyHash::operator()(const Key& key) const noexcept {
  // Session ids are random (ours, or a resuming client's claim of one: a lookup only).
  return std::hash<std::string_view>{}(key.view());
}

SessionCache::SessionCache(std::size_t maxBytes, std::size_t maxEntries)
    : maxBytes_(maxBytes), maxEntries_(maxEntries) {}

SessionCache::~SessionCache() {
  clear();
}

void SessionCache::dropLocked(Lru::iterator it) {
  const std::size_t cost = SessionCache::cost(it->encoded.size());
  wipe(it->encoded);
  index_.erase(it->key);
  lru_.erase(it);
  bytes_.fetch_sub(cost, std::memory_order_relaxed);
  entries_.fetch_sub(1, std::memory_order_relaxed);
  totals().bytes.fetch_sub(cost, std::memory_order_relaxed);
  totals().entries.fetch_sub(1, std::memory_order_relaxed);
}

void SessionCache::evictLocked(std::size_t incoming, std::time_t now) {
  // Expired entries at the cold end first: OpenSSL would refuse them anyway.
  while (!lru_.empty() && lru_.back().expires <= now) {
    dropLocked(std::prev(lru_.end()));
  }
  while (!lru_.empty() &&
         (bytes() + incoming > maxBytes_ || (maxEntries_ != 0 && entries() + 1 > maxEntries_))) {
    dropLocked(std::prev(lru_.end()));
    evictions_.fetch_add(1, std::memory_order_relaxed);
    totals().evictions.fetch_add(1, std::memory_order_relaxed);
  }
}

std::optional<SessionCache::Key> SessionCache::Key::of(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) {
    return std::nullopt;
  }
  Key key;
  id.copy(key.bytes.data(), id.size());
  key.size = static_cast<std::uint8_t>(id.size());
  return key;
}

bool SessionCache::insert(std::string_view id, std::string encoded, std::time_t expires) {
  const std::size_t cost = SessionCache::cost(encoded.size());
  const std::optional<Key> key = Key::of(id);
  if (!key || cost > maxBytes_) {
    wipe(encoded);
    return false;
  }
  const std::lock_guard lock(mutex_);
  if (auto found = index_.find(*key); found != index_.end()) {
    dropLocked(found->second);
  }
  evictLocked(cost, std::time(nullptr));
  lru_.push_front(Entry{*key, std::move(encoded), expires});
  index_.emplace(*key, lru_.begin());
  bytes_.fetch_add(cost, std::memory_order_relaxed);
  entries_.fetch_add(1, std::memory_order_relaxed);
  totals().bytes.fetch_add(cost, std::memory_order_relaxed);
  totals().entries.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::optional<std::string> SessionCache::find(std::string_view id) {
  const std::optional<Key> key = Key::of(id);
  if (!key) {
    return std::nullopt;
  }
  const std::lock_guard lock(mutex_);
  const auto found = index_.find(*key);
  if (found == index_.end()) {
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, found->second);  // iterators stay valid
  return found->second->encoded;
}

bool SessionCache::erase(std::string_view id) {
  const std::optional<Key> key = Key::of(id);
  if (!key) {
    return false;
  }
  const std::lock_guard lock(mutex_);
  const auto found = index_.find(*key);
  if (found == index_.end()) {
    return false;
  }
  dropLocked(found->second);
  return true;
}

void SessionCache::clear() {
  const std::lock_guard lock(mutex_);
  while (!lru_.empty()) {
    dropLocked(lru_.begin());
  }
}

bool installSessionCache(SSL_CTX* ctx, SessionCache* cache) {
  if (ctx == nullptr || cache == nullptr || SSL_CTX_set_ex_data(ctx, cacheIndex(), cache) != 1 ||
      SSL_CTX_set_session_ticket_cb(ctx, markStatelessTicket, nullptr, nullptr) != 1) {
    return false;
  }
  // NO_INTERNAL: OpenSSL neither stores nor looks up SSL_SESSION objects itself, and never
  // flushes (nothing to flush): expiry is checked on lookup and at the cache's cold end.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, storeSession);
  SSL_CTX_sess_set_get_cb(ctx, lookUpSession);
  SSL_CTX_sess_set_remove_cb(ctx, forgetSession);
  return true;
}

}  // namespace certrelay::tls
