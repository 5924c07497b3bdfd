// Session-ticket keys from files: parsing, and real handshakes between separate contexts
// ("replicas") that share, rotate or lose keys. A ticket's key name is visible only inside the
// ticket, so which key protects a ticket is proved by which contexts can resume it.

#include "tls/ticket_keys.h"

#include <doctest/doctest.h>
#include <openssl/rand.h>

#include <array>
#include <string>
#include <vector>

#include "tests/unit/tls/test_peer.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/context.h"

namespace certrelay::tls {
namespace {

using test::ClientOptions;
using test::Link;
using test::pki;
using SessionPtr = OsslPtr<SSL_SESSION, SSL_SESSION_free>;

// 0: the client's maximum (TLS 1.3); TLS1_2_VERSION forces TLS 1.2.
constexpr int kVersions[] = {0, TLS1_2_VERSION};

const char* versionName(int maxVersion) {
  return maxVersion == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3";
}

// A key file of `size` random bytes, as tls.ticket_keys would read it.
MaterialFile randomKeyFile(const std::string& name, std::size_t size = 80) {
  std::string content(size, '\0');
  REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(content.data()),
                     static_cast<int>(content.size())) == 1);
  return MaterialFile{name, content};
}

// A key file whose byte i is i (0x00..0x4f): shows where each field is taken from.
MaterialFile countingKeyFile(const std::string& name, std::size_t size) {
  std::string content(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    content[i] = static_cast<char>(i);
  }
  return MaterialFile{name, content};
}

std::vector<unsigned char> counting(unsigned from, unsigned count) {
  std::vector<unsigned char> out;
  for (unsigned i = 0; i < count; ++i) {
    out.push_back(static_cast<unsigned char>(from + i));
  }
  return out;
}

// One server context with its own ticket keys, as a replica behind a Service would have. The
// session cache is off, so a resumption can only come from a ticket. Not movable: the context
// holds a pointer to `keys`.
class Replica {
 public:
  explicit Replica(const std::vector<MaterialFile>& files) : keys_(TicketKeys::parse(files)) {
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = true;
    settings.sessionCacheSize = 0;
    context_ = Context::create(settings);
    REQUIRE(installTicketKeys(context_->get(), &keys_));
  }
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  const ContextPtr& context() const { return context_; }

 private:
  TicketKeys keys_;  // declared first: outlives context_
  ContextPtr context_;
};

// What one client connection to a replica saw.
struct Connection {
  bool established = false;
  bool resumed = false;  // the client's and the server's view agree (checked in connectTo)
  PeerFacts facts;
  SessionPtr newest;  // the client's session once the connection is over (new ticket or not)
};

// Connects with the client certificate, offering `session` (may be null), then closes cleanly
// (an SSL freed without a shutdown drops its session). The TLS 1.3 tickets arrive after the
// handshake and are read by Link::run before the session is taken.
Connection connectTo(const Replica& replica, int maxVersion, SSL_SESSION* session = nullptr) {
  Connection out;
  Link link(replica.context(),
            ClientOptions{.maxVersion = maxVersion, .cert = &pki().client, .session = session});
  link.run();
  out.established = link.established();
  CHECK(link.engine.error().empty());
  CHECK_FALSE(link.client.failed());
  if (!out.established) {
    return out;
  }
  out.facts = link.engine.facts();
  out.resumed = out.facts.summary.resumed;
  CHECK(out.resumed == (SSL_session_reused(link.client.ssl()) == 1));
  CHECK(out.facts.summary.version == versionName(maxVersion));
  out.newest.reset(SSL_get1_session(link.client.ssl()));
  SSL_shutdown(link.client.ssl());
  link.run();
  REQUIRE(out.newest != nullptr);
  return out;
}

// A full handshake on `replica`: the client's resumable session, with its ticket.
SessionPtr issue(const Replica& replica, int maxVersion) {
  Connection first = connectTo(replica, maxVersion);
  REQUIRE(first.established);
  CHECK_FALSE(first.resumed);
  REQUIRE(SSL_SESSION_is_resumable(first.newest.get()) == 1);
  REQUIRE(SSL_SESSION_has_ticket(first.newest.get()) == 1);
  return std::move(first.newest);
}

// The client certificate's facts, as a full handshake records them.
void checkClientCertificate(const PeerFacts& facts) {
  CHECK(facts.hasCertificate);
  CHECK(facts.verified);
  CHECK(facts.subjectCn == "client1.lab.example");
  CHECK(facts.certFingerprint == certificateFingerprint(pki().client.cert.get()));
  CHECK(facts.pkeyFingerprint == publicKeyFingerprint(pki().client.cert.get()));
}

// The ticket bytes a session carries (differ between an old and a renewed ticket).
std::string ticketBytes(const SSL_SESSION* session) {
  const unsigned char* tick = nullptr;
  std::size_t len = 0;
  SSL_SESSION_get0_ticket(session, &tick, &len);
  return std::string(reinterpret_cast<const char*>(tick), len);
}

// The message for a file of the wrong size.
std::string refusal(const std::string& name, std::size_t size) {
  std::string out = "tls.ticket_keys ";
  out += name;
  out += ": ";
  out += std::to_string(size);
  out += " bytes, expected 80 or 48 (generate one with: openssl rand 80 > ";
  out += name;
  out += ")";
  return out;
}

TEST_SUITE("tls") {
  TEST_CASE("ticket_keys: an 80-byte file is name, HMAC secret (32), AES-256 key (32)") {
    const TicketKeys keys = TicketKeys::parse({countingKeyFile("k80", 80)});
    REQUIRE(keys.keys().size() == 1);
    const TicketKey& key = keys.keys().front();
    CHECK(std::vector<unsigned char>(key.name.begin(), key.name.end()) == counting(0, 16));
    CHECK(key.hmacSecret == counting(16, 32));
    CHECK(key.aesKey == counting(48, 32));
  }

  TEST_CASE("ticket_keys: a 48-byte file is name, AES-128 key (16), HMAC secret (16)") {
    const TicketKeys keys = TicketKeys::parse({countingKeyFile("k48", 48)});
    REQUIRE(keys.keys().size() == 1);
    const TicketKey& key = keys.keys().front();
    CHECK(std::vector<unsigned char>(key.name.begin(), key.name.end()) == counting(0, 16));
    CHECK(key.aesKey == counting(16, 16));
    CHECK(key.hmacSecret == counting(32, 16));
  }

  TEST_CASE("ticket_keys: other sizes are refused, naming the file and the size") {
    for (const std::size_t size : {79, 81, 0, 16, 96}) {
      CAPTURE(size);
      const std::string name = "tickets/current.key";
      const std::string expected = refusal(name, size);
      CHECK_THROWS_WITH_AS(TicketKeys::parse({countingKeyFile(name, size)}), expected.c_str(),
                           TlsError);
    }
    CHECK(refusal("tickets/current.key", 79) ==
          "tls.ticket_keys tickets/current.key: 79 bytes, expected 80 or 48 (generate one with: "
          "openssl rand 80 > tickets/current.key)");
    // In a list, the bad file is the one named, even after good ones.
    CHECK_THROWS_WITH_AS(TicketKeys::parse({randomKeyFile("a.key"), randomKeyFile("b.key", 48),
                                            countingKeyFile("c.key", 47)}),
                         refusal("c.key", 47).c_str(), TlsError);
  }

  TEST_CASE("ticket_keys: an empty list is empty and is not installed") {
    const TicketKeys keys = TicketKeys::parse({});
    CHECK(keys.empty());
    CHECK(keys.keys().empty());
    const ContextPtr context = Context::create(pki().settings(true));
    CHECK_FALSE(installTicketKeys(context->get(), &keys));
    CHECK_FALSE(installTicketKeys(context->get(), nullptr));
  }

  TEST_CASE("ticket_keys: find gives the key and its position, null for an unknown name") {
    const TicketKeys keys = TicketKeys::parse(
        {countingKeyFile("first", 80), randomKeyFile("second", 48), randomKeyFile("third")});
    for (std::size_t i = 0; i < keys.keys().size(); ++i) {
      CAPTURE(i);
      std::size_t index = 99;
      CHECK(keys.find(keys.keys()[i].name.data(), index) == &keys.keys()[i]);
      CHECK(index == i);
    }
    const std::array<unsigned char, TicketKey::kNameSize> unknown{0xff};
    std::size_t index = 99;
    CHECK(keys.find(unknown.data(), index) == nullptr);
    CHECK(index == 99);
  }

  TEST_CASE("ticket_keys: keys copy and move with their bytes") {
    const TicketKeys parsed = TicketKeys::parse({countingKeyFile("k", 80)});
    TicketKey copy = parsed.keys().front();
    CHECK(copy.aesKey == counting(48, 32));
    TicketKey moved = std::move(copy);
    CHECK(moved.hmacSecret == counting(16, 32));
    TicketKey assigned;
    assigned = moved;
    CHECK(assigned.aesKey == moved.aesKey);
    TicketKey moveAssigned;
    moveAssigned = std::move(assigned);
    CHECK(moveAssigned.name == parsed.keys().front().name);
    CHECK(moveAssigned.hmacSecret == counting(16, 32));
    TicketKeys copies;
    copies = parsed;
    CHECK(copies.keys().front().aesKey == parsed.keys().front().aesKey);
  }

  TEST_CASE("ticket_keys: installing keys turns stateless tickets on") {
    const TicketKeys keys = TicketKeys::parse({randomKeyFile("k")});
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = false;
    const ContextPtr context = Context::create(settings);
    REQUIRE((SSL_CTX_get_options(context->get()) & SSL_OP_NO_TICKET) != 0);
    REQUIRE(installTicketKeys(context->get(), &keys));
    CHECK((SSL_CTX_get_options(context->get()) & SSL_OP_NO_TICKET) == 0);
  }

  TEST_CASE("ticket_keys: a ticket issued by one replica resumes on another, certificate kept") {
    const MaterialFile k1 = randomKeyFile("k1.key");
    const Replica a({k1});
    const Replica b({k1});
    for (const int maxVersion : kVersions) {
      CAPTURE(versionName(maxVersion));
      const SessionPtr ticket = issue(a, maxVersion);
      const Connection resumed = connectTo(b, maxVersion, ticket.get());
      REQUIRE(resumed.established);
      CHECK(resumed.resumed);
      checkClientCertificate(resumed.facts);
    }
  }

  TEST_CASE("ticket_keys: a ticket under the previous key resumes and is renewed under the new") {
    const MaterialFile k1 = randomKeyFile("k1.key");
    const MaterialFile k2 = randomKeyFile("k2.key");
    const Replica before({k1});       // issues under K1
    const Replica rotated({k2, k1});  // K2 encrypts, K1 still decrypts
    const Replica after({k2});        // K1 removed
    for (const int maxVersion : kVersions) {
      CAPTURE(versionName(maxVersion));
      const SessionPtr old = issue(before, maxVersion);
      const Connection renewed = connectTo(rotated, maxVersion, old.get());
      REQUIRE(renewed.established);
      CHECK(renewed.resumed);
      checkClientCertificate(renewed.facts);
      // A new ticket arrived: the client holds a new session with other ticket bytes.
      CHECK(renewed.newest.get() != old.get());
      CHECK(ticketBytes(renewed.newest.get()) != ticketBytes(old.get()));
      // The new ticket is under K2: a replica with K2 only resumes it, not the old one.
      const Connection onlyK2 = connectTo(after, maxVersion, renewed.newest.get());
      CHECK(onlyK2.resumed);
      checkClientCertificate(onlyK2.facts);
      CHECK_FALSE(connectTo(after, maxVersion, old.get()).resumed);
    }
  }

  TEST_CASE("ticket_keys: TLS 1.2: a ticket under the first key is not renewed") {
    // The callback answers 1, not 2, for the encrypting key: no NewSessionTicket, and the
    // client keeps the session it offered.
    const MaterialFile k1 = randomKeyFile("k1.key");
    const Replica a({k1});
    const Replica b({k1, randomKeyFile("k2.key")});
    const SessionPtr ticket = issue(a, TLS1_2_VERSION);
    const Connection resumed = connectTo(b, TLS1_2_VERSION, ticket.get());
    CHECK(resumed.resumed);
    CHECK(resumed.newest.get() == ticket.get());
    CHECK(ticketBytes(resumed.newest.get()) == ticketBytes(ticket.get()));
  }

  TEST_CASE("ticket_keys: a ticket under a key no longer present means a full handshake") {
    const Replica a({randomKeyFile("k1.key")});
    const MaterialFile k3 = randomKeyFile("k3.key");
    const Replica b({k3});
    const Replica c({k3});
    for (const int maxVersion : kVersions) {
      CAPTURE(versionName(maxVersion));
      const SessionPtr old = issue(a, maxVersion);
      const Connection full = connectTo(b, maxVersion, old.get());
      REQUIRE(full.established);  // connectTo() also checked: no error on either side
      CHECK_FALSE(full.resumed);
      checkClientCertificate(full.facts);  // asked for again in the full handshake
      // The full handshake issued a fresh ticket, under K3.
      CHECK(full.newest.get() != old.get());
      CHECK(connectTo(c, maxVersion, full.newest.get()).resumed);
    }
  }

  TEST_CASE("ticket_keys: 48-byte keys resume across replicas and rotate to an 80-byte key") {
    const MaterialFile short1 = randomKeyFile("k1-48.key", 48);
    const MaterialFile long2 = randomKeyFile("k2-80.key", 80);
    const Replica a({short1});
    const Replica b({short1});
    const Replica rotated({long2, short1});
    const Replica after({long2});
    for (const int maxVersion : kVersions) {
      CAPTURE(versionName(maxVersion));
      const SessionPtr ticket = issue(a, maxVersion);
      const Connection resumed = connectTo(b, maxVersion, ticket.get());
      CHECK(resumed.resumed);
      checkClientCertificate(resumed.facts);
      const Connection renewed = connectTo(rotated, maxVersion, ticket.get());
      CHECK(renewed.resumed);
      CHECK(connectTo(after, maxVersion, renewed.newest.get()).resumed);
      CHECK_FALSE(connectTo(after, maxVersion, ticket.get()).resumed);
    }
  }

  TEST_CASE("ticket_keys: a 48-byte key does not decrypt what its 80-byte namesake encrypted") {
    // Same name, different secrets (as after a botched rotation): the name is found, the HMAC
    // does not match, and OpenSSL falls back to a full handshake without an error.
    const MaterialFile long1 = randomKeyFile("k1.key", 80);
    MaterialFile short1 = randomKeyFile("k1-short.key", 48);
    short1.content.replace(0, TicketKey::kNameSize, long1.content, 0, TicketKey::kNameSize);
    const Replica a({long1});
    const Replica b({short1});
    for (const int maxVersion : kVersions) {
      CAPTURE(versionName(maxVersion));
      const SessionPtr ticket = issue(a, maxVersion);
      const Connection full = connectTo(b, maxVersion, ticket.get());
      REQUIRE(full.established);
      CHECK_FALSE(full.resumed);
    }
  }
}

}  // namespace
}  // namespace certrelay::tls
