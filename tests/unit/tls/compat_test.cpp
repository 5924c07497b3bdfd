#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "tls/compat.h"

#include <doctest/doctest.h>
#include <openssl/engine.h>

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
    CHECK(facts.clientSignature == "ECDSA");
    CHECK(facts.certFingerprint == certificateFingerprint(pki().client.cert.get()));
    CHECK(facts.pkeyFingerprint == publicKeyFingerprint(pki().client.cert.get()));
  }
}

}  // namespace
}  // namespace certrelay::tls
