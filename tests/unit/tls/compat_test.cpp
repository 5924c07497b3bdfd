#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "tls/compat.h"

#include <doctest/doctest.h>
#include <openssl/engine.h>

#include <string_view>

#include "tests/unit/tls/test_peer.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/peer_facts.h"

namespace certrelay::tls {
namespace {

using test::ClientOptions;
using test::Link;
using test::pki;

TEST_SUITE("tls") {
  TEST_CASE("compat: the fast EC key decoding engine is installed once") {
    pki();  // the test PKI generates EC keys: before the engine (see compat.h)
    CHECK(installFastEcKeyDecoding());
    CHECK(installFastEcKeyDecoding());  // idempotent
    ENGINE* engine = ENGINE_by_id("certrelay-ec");
    REQUIRE(engine != nullptr);
    ENGINE_free(engine);
  }

  TEST_CASE("compat: with it, EC client certificates keep exact facts and fingerprints") {
    pki();
    installFastEcKeyDecoding();
    Link link(Context::create(pki().settings(true)), ClientOptions{.cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    const PeerFacts& facts = link.engine.facts();
    CHECK(facts.verified);
    CHECK(facts.summary.clientSignature == "ECDSA");
    CHECK(facts.certFingerprint == certificateFingerprint(pki().client.cert.get()));
    CHECK(facts.pkeyFingerprint == publicKeyFingerprint(pki().client.cert.get()));
  }

  // The side effect compat.h names (EVP_PKEY_keygen on an "EC" context) must not reach TLS's
  // own ephemeral keys: every group and client key type a client may bring still works.
  TEST_CASE("compat: with it, ECDHE over every group and every client key type still works") {
    pki();
    installFastEcKeyDecoding();
    const auto context = Context::create(pki().settings(true));
    for (const char* groups : {"X25519", "P-256", "P-384", "P-521", "X448", "ffdhe2048"}) {
      for (const auto* cred :
           {&pki().client, &pki().rsaClient, &pki().edClient, &pki().compressedEc}) {
        for (const int maxVersion : {0, TLS1_2_VERSION}) {
          CAPTURE(groups);
          CAPTURE(cred->certFile);
          CAPTURE(maxVersion);
          if (maxVersion == TLS1_2_VERSION &&
              (cred == &pki().edClient || std::string_view(groups) != "P-256")) {
            continue;  // TLS 1.2 with an ECDSA P-256 server needs P-256 offered; no Ed25519
          }
          Link link(context,
                    ClientOptions{.maxVersion = maxVersion, .cert = cred, .groups = groups});
          link.run();
          REQUIRE(link.established());
          const PeerFacts& facts = link.engine.facts();
          CHECK(facts.certFingerprint == certificateFingerprint(cred->cert.get()));
          CHECK(facts.pkeyFingerprint == publicKeyFingerprint(cred->cert.get()));
        }
      }
    }
  }
}

}  // namespace
}  // namespace certrelay::tls
