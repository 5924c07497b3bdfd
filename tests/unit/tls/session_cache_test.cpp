// SessionCache (issue 14): the byte and entry bounds, LRU order, expiry, the process totals; then
// the cache as a Context's session store: many distinct sessions stay within the bytes, a resumed
// session keeps its client certificate facts, evicted and corrupt entries give full handshakes,
// and sessions a stateless ticket carries are not stored.

#include "tls/session_cache.h"

#include <doctest/doctest.h>

#include <ctime>
#include <string>

#include "tests/unit/tls/test_peer.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/context.h"
#include "tls/peer_facts.h"

namespace certrelay::tls {
namespace {

using test::ClientOptions;
using test::Link;
using test::pki;
using SessionPtr = OsslPtr<SSL_SESSION, SSL_SESSION_free>;

const std::time_t kLater = std::time(nullptr) + 3600;

// The id of entry `n` ("id-0001", ...) and an encoded session of `size` bytes.
std::string id(int n) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "id-%04d", n);
  return buf;
}
std::string blob(std::size_t size, char fill = 'x') {
  return std::string(size, fill);
}

// A budget that holds exactly `n` entries of `size` bytes.
std::size_t budget(std::size_t n, std::size_t size) {
  return n * SessionCache::cost(size);
}

// Full handshake on `context`, the client closing cleanly; returns the client's session.
SessionPtr handshake(const ContextPtr& context, const ClientOptions& options) {
  SessionPtr session = test::clientSession(context, options);
  REQUIRE(session != nullptr);
  return session;
}

// Connects offering `session`; returns whether it resumed (checking the facts when it did).
bool resumes(const ContextPtr& context, ClientOptions options, SSL_SESSION* session) {
  options.session = session;
  Link link(context, options);
  link.run();
  REQUIRE(link.established());
  const PeerFacts& facts = link.engine.facts();
  if (facts.summary.resumed && options.cert != nullptr) {
    CHECK(facts.hasCertificate);
    CHECK(facts.certFingerprint == certificateFingerprint(options.cert->cert.get()));
  }
  SSL_shutdown(link.client.ssl());
  link.run();
  return facts.summary.resumed;
}

config::Tls cacheSettings(std::size_t memory) {
  config::Tls settings = pki().settings(true);
  settings.sessionCacheMemory = memory;
  return settings;
}

TEST_SUITE("tls") {
  TEST_CASE("session cache: bytes never exceed the bound, the least recently used goes first") {
    SessionCache cache(budget(3, 1000), 0);
    for (int n = 0; n < 10; ++n) {
      CHECK(cache.insert(id(n), blob(1000), kLater));
      CHECK(cache.bytes() <= cache.maxBytes());
    }
    CHECK(cache.entries() == 3);
    CHECK(cache.bytes() == budget(3, 1000));
    CHECK(cache.evictions() == 7);
    CHECK_FALSE(cache.find(id(6)));
    CHECK(cache.find(id(7)) == blob(1000));
    CHECK(cache.find(id(9)) == blob(1000));
  }

  TEST_CASE("session cache: a lookup makes an entry the most recently used") {
    SessionCache cache(budget(3, 100), 0);
    for (int n = 0; n < 3; ++n) {
      REQUIRE(cache.insert(id(n), blob(100), kLater));
    }
    REQUIRE(cache.find(id(0)));  // 0 is now the newest: 1 is the coldest
    REQUIRE(cache.insert(id(3), blob(100), kLater));
    CHECK(cache.find(id(0)));
    CHECK_FALSE(cache.find(id(1)));
    CHECK(cache.find(id(2)));
    CHECK(cache.find(id(3)));
  }

  TEST_CASE("session cache: large entries evict as many small ones as they need") {
    SessionCache cache(budget(4, 100), 0);
    for (int n = 0; n < 4; ++n) {
      REQUIRE(cache.insert(id(n), blob(100), kLater));
    }
    const std::size_t big = 2 * SessionCache::cost(100) + 50;  // needs three small ones' room
    REQUIRE(cache.insert(id(9), blob(big), kLater));
    CHECK(cache.entries() == 2);
    CHECK(cache.evictions() == 3);
    CHECK(cache.bytes() <= cache.maxBytes());
    CHECK(cache.find(id(3)));
  }

  TEST_CASE("session cache: the entry limit holds as well as the bytes") {
    SessionCache cache(budget(100, 10), 5);
    for (int n = 0; n < 8; ++n) {
      REQUIRE(cache.insert(id(n), blob(10), kLater));
    }
    CHECK(cache.entries() == 5);
    CHECK(cache.evictions() == 3);
    CHECK_FALSE(cache.find(id(2)));
    CHECK(cache.find(id(3)));
  }

  TEST_CASE("session cache: an entry larger than the whole bound is not stored") {
    SessionCache cache(budget(2, 100), 0);
    REQUIRE(cache.insert(id(0), blob(100), kLater));
    CHECK_FALSE(cache.insert(id(1), blob(budget(2, 100)), kLater));
    CHECK(cache.entries() == 1);
    CHECK(cache.evictions() == 0);
    CHECK(cache.find(id(0)));
  }

  TEST_CASE("session cache: empty and over-long ids are refused") {
    SessionCache cache(budget(2, 100), 0);
    CHECK_FALSE(cache.insert("", blob(10), kLater));
    CHECK_FALSE(cache.insert(std::string(SessionCache::kMaxIdLength + 1, 'i'), blob(10), kLater));
    CHECK(cache.insert(std::string(SessionCache::kMaxIdLength, 'i'), blob(10), kLater));
    CHECK_FALSE(cache.find(""));
    CHECK_FALSE(cache.erase(std::string(SessionCache::kMaxIdLength + 1, 'i')));
    CHECK(cache.entries() == 1);
  }

  TEST_CASE("session cache: the same id again replaces its entry") {
    SessionCache cache(budget(4, 300), 0);
    REQUIRE(cache.insert(id(0), blob(100, 'a'), kLater));
    REQUIRE(cache.insert(id(0), blob(300, 'b'), kLater));
    CHECK(cache.entries() == 1);
    CHECK(cache.bytes() == SessionCache::cost(300));
    CHECK(cache.find(id(0)) == blob(300, 'b'));
    CHECK(cache.evictions() == 0);
  }

  TEST_CASE("session cache: expired entries at the cold end go before any eviction") {
    SessionCache cache(budget(3, 100), 0);
    const std::time_t past = std::time(nullptr) - 1;
    REQUIRE(cache.insert(id(0), blob(100), past));
    REQUIRE(cache.insert(id(1), blob(100), past));
    REQUIRE(cache.insert(id(2), blob(100), kLater));
    REQUIRE(cache.insert(id(3), blob(100), kLater));
    CHECK(cache.entries() == 2);
    CHECK(cache.evictions() == 0);  // expired, not evicted
    CHECK(cache.find(id(2)));
  }

  TEST_CASE("session cache: erase and clear give the bytes back") {
    SessionCache cache(budget(4, 100), 0);
    for (int n = 0; n < 3; ++n) {
      REQUIRE(cache.insert(id(n), blob(100), kLater));
    }
    CHECK(cache.erase(id(1)));
    CHECK_FALSE(cache.erase(id(1)));
    CHECK(cache.bytes() == budget(2, 100));
    cache.clear();
    CHECK(cache.entries() == 0);
    CHECK(cache.bytes() == 0);
    CHECK_FALSE(cache.find(id(0)));
  }

  TEST_CASE("session cache: the process totals add up every live cache") {
    const SessionCacheTotals before = sessionCacheTotals();
    {
      SessionCache one(budget(2, 100), 0);
      SessionCache two(budget(2, 100), 0);
      for (int n = 0; n < 3; ++n) {
        REQUIRE(one.insert(id(n), blob(100), kLater));
      }
      REQUIRE(two.insert(id(0), blob(100), kLater));
      const SessionCacheTotals during = sessionCacheTotals();
      CHECK(during.entries - before.entries == 3);
      CHECK(during.bytes - before.bytes == budget(3, 100));
      CHECK(during.evictions - before.evictions == 1);
    }
    const SessionCacheTotals after = sessionCacheTotals();
    CHECK(after.entries == before.entries);
    CHECK(after.bytes == before.bytes);
    CHECK(after.evictions == before.evictions + 1);  // a counter: it never goes down
  }

  TEST_CASE("session cache: is the context's store, OpenSSL's internal cache off") {
    const ContextPtr context = Context::create(cacheSettings(std::size_t{64} * 1024));
    REQUIRE(context->sessionCache() != nullptr);
    CHECK(context->sessionCache()->maxBytes() == 64 * 1024);
    CHECK(SSL_CTX_get_session_cache_mode(context->get()) ==
          (SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL));
  }

  TEST_CASE("session cache: session_cache_memory 0 keeps OpenSSL's internal cache") {
    const ContextPtr context = Context::create(cacheSettings(0));
    CHECK(context->sessionCache() == nullptr);
    CHECK(SSL_CTX_get_session_cache_mode(context->get()) == SSL_SESS_CACHE_SERVER);
  }

  TEST_CASE("session cache: many distinct sessions stay within the bytes, the newest resume") {
    const ContextPtr context = Context::create(cacheSettings(std::size_t{64} * 1024));
    const SessionCache& cache = *context->sessionCache();
    const ClientOptions options{.cert = &pki().client};
    const SessionPtr oldest = handshake(context, options);
    SessionPtr newest;
    for (int n = 0; n < 150; ++n) {  // ~1 KiB each: about twice what 64 KiB hold
      newest = handshake(context, options);
      CHECK(cache.bytes() <= 64 * 1024);
    }
    MESSAGE("bytes per entry: ", cache.bytes() / cache.entries());
    CHECK(cache.evictions() > 0);
    CHECK(cache.entries() < 151);
    CHECK(resumes(context, options, newest.get()));        // identity checked in resumes()
    CHECK_FALSE(resumes(context, options, oldest.get()));  // evicted: a full handshake
  }

  TEST_CASE("session cache: a TLS 1.2 session-id resumption keeps the client certificate") {
    const ContextPtr context = Context::create(cacheSettings(std::size_t{64} * 1024));
    const ClientOptions options{
        .maxVersion = TLS1_2_VERSION, .cert = &pki().client, .noTicket = true};
    const SessionPtr session = handshake(context, options);
    CHECK(context->sessionCache()->entries() == 1);
    CHECK(resumes(context, options, session.get()));
  }

  TEST_CASE("session cache: a corrupt entry gives a full handshake and is dropped") {
    const ContextPtr context = Context::create(cacheSettings(std::size_t{64} * 1024));
    // Tests may write: the cache is the context's, handed out const to everyone else.
    auto& cache = const_cast<SessionCache&>(*context->sessionCache());
    const ClientOptions options{
        .maxVersion = TLS1_2_VERSION, .cert = &pki().client, .noTicket = true};
    const SessionPtr session = handshake(context, options);
    unsigned int length = 0;
    const unsigned char* sessionId = SSL_SESSION_get_id(session.get(), &length);
    const std::string key(reinterpret_cast<const char*>(sessionId), length);
    REQUIRE(cache.find(key));
    REQUIRE(cache.insert(key, "\x30\x03garbage", kLater));
    CHECK_FALSE(resumes(context, options, session.get()));
    CHECK_FALSE(cache.find(key));
    CHECK(ERR_peek_error() == 0);
  }

  TEST_CASE("session cache: a retired generation drops its sessions") {
    const ContextPtr context = Context::create(cacheSettings(std::size_t{64} * 1024));
    const ClientOptions options{.cert = &pki().client};
    const SessionPtr session = handshake(context, options);
    CHECK(context->sessionCache()->entries() > 0);
    context->retire();
    CHECK(context->sessionCache()->entries() == 0);
    CHECK(context->sessionCache()->bytes() == 0);
    CHECK_FALSE(resumes(context, options, session.get()));
  }

  TEST_CASE("session cache: with stateless tickets TLS 1.3 sessions are not stored") {
    config::Tls settings = cacheSettings(std::size_t{64} * 1024);
    settings.sessionTickets = true;
    const ContextPtr context = Context::create(settings);
    const ClientOptions options{.cert = &pki().client};
    const SessionPtr session = handshake(context, options);
    CHECK(context->sessionCache()->entries() == 0);
    CHECK(resumes(context, options, session.get()));  // the ticket carries it
    CHECK(context->sessionCache()->entries() == 0);
  }

  TEST_CASE("session cache: with stateless tickets only TLS 1.2 clients without one are stored") {
    config::Tls settings = cacheSettings(std::size_t{64} * 1024);
    settings.sessionTickets = true;
    const ContextPtr context = Context::create(settings);
    const ClientOptions withTicket{.maxVersion = TLS1_2_VERSION, .cert = &pki().client};
    const SessionPtr ticketed = handshake(context, withTicket);
    CHECK(SSL_SESSION_has_ticket(ticketed.get()) == 1);
    CHECK(context->sessionCache()->entries() == 0);
    CHECK(resumes(context, withTicket, ticketed.get()));

    ClientOptions withoutTicket = withTicket;
    withoutTicket.noTicket = true;
    const SessionPtr plain = handshake(context, withoutTicket);
    CHECK(context->sessionCache()->entries() == 1);
    CHECK(resumes(context, withoutTicket, plain.get()));
  }
}

}  // namespace
}  // namespace certrelay::tls
