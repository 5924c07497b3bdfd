// The TLS 1.3 signature facts (PeerFacts::serverSignature ... clientDigest): Postfix's names
// for each key type, checked against what the OpenSSL client saw in the same handshake and
// against the openssl command line; empty for TLS 1.2, resumption and no client certificate.

#include <doctest/doctest.h>

#include <cctype>
#include <string>

#include "tests/unit/tls/test_cli.h"
#include "tests/unit/tls/test_peer.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/context.h"
#include "tls/engine.h"
#include "tls/peer_facts.h"
#include "tls/tls_summary.h"

namespace certrelay::tls {
namespace {

using test::ClientOptions;
using test::Credential;
using test::Link;
using test::pki;
using test::shell;
using SessionPtr = OsslPtr<SSL_SESSION, SSL_SESSION_free>;

std::string shortName(int nid) {
  if (nid == NID_undef) {
    return {};
  }
  const char* sn = OBJ_nid2sn(nid);
  return sn != nullptr ? sn : "?";
}

// What the OpenSSL client itself reports about the same handshake (its peer is our server).
struct ClientView {
  std::string serverType;    // SSL_get_peer_signature_type_nid: "id-ecPublicKey", "RSASSA-PSS"
  std::string serverDigest;  // SSL_get_peer_signature_nid: "SHA256"; "" for EdDSA
  std::string clientType;    // SSL_get_signature_type_nid (the client's own signature)
  std::string clientDigest;  // SSL_get_signature_nid
};

ClientView clientView(SSL* client) {
  ClientView view;
  int nid = NID_undef;
  if (SSL_get_peer_signature_type_nid(client, &nid) == 1) {
    view.serverType = shortName(nid);
  }
  nid = NID_undef;
  if (SSL_get_peer_signature_nid(client, &nid) == 1) {
    view.serverDigest = shortName(nid);
  }
  nid = NID_undef;
  if (SSL_get_signature_type_nid(client, &nid) == 1) {
    view.clientType = shortName(nid);
  }
  nid = NID_undef;
  if (SSL_get_signature_nid(client, &nid) == 1) {
    view.clientDigest = shortName(nid);
  }
  return view;
}

// Postfix names the signer after its key; OpenSSL's signature type says the same in its words.
std::string postfixNameFor(const std::string& signatureType) {
  if (signatureType == "RSASSA-PSS") {
    return "RSA-PSS";
  }
  if (signatureType == "id-ecPublicKey") {
    return "ECDSA";
  }
  return signatureType;  // "ED25519", "ED448"
}

struct Outcome {
  PeerFacts facts;
  ClientView view;
};

Outcome handshake(const Credential& server, const ClientOptions& options) {
  Link link(Context::create(pki().settingsFor(server)), options);
  link.run();
  REQUIRE(link.established());
  return {link.engine.facts(), clientView(link.client.ssl())};
}

// The key detail as `openssl x509 -text` prints it: "ASN1 OID: prime256v1" -> "prime256v1",
// an RSA "Public-Key: (2048 bit)" -> "2048 bits", nothing for EdDSA.
std::string cliKeyDetail(const Credential& cred) {
  const std::string text = shell("openssl x509 -in '" + cred.certFile.string() + "' -noout -text");
  if (const auto pos = text.find("ASN1 OID: "); pos != std::string::npos) {
    const auto start = pos + 10;
    return text.substr(start, text.find('\n', start) - start);
  }
  if (text.find("Public Key Algorithm: rsaEncryption") != std::string::npos) {
    const auto pos = text.find("Public-Key: (");
    REQUIRE(pos != std::string::npos);
    std::string digits;
    for (auto i = pos + 13; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]));
         ++i) {
      digits += text[i];
    }
    return digits + " bits";
  }
  return {};
}

void checkNoSignatureFacts(const PeerFacts& facts) {
  CHECK(facts.summary.serverSignature.empty());
  CHECK(facts.summary.serverSignatureDetail.empty());
  CHECK(facts.summary.serverDigest.empty());
  CHECK(facts.summary.clientSignature.empty());
  CHECK(facts.summary.clientSignatureDetail.empty());
  CHECK(facts.summary.clientDigest.empty());
}

// A full handshake (its facts in `first`), closed cleanly so that the session stays resumable;
// returns the client's session.
SessionPtr resumableSession(const ContextPtr& context, const ClientOptions& options,
                            PeerFacts& first) {
  Link link(context, options);
  link.run();
  REQUIRE(link.established());
  first = link.engine.facts();
  SessionPtr session(SSL_get1_session(link.client.ssl()));
  REQUIRE(session != nullptr);
  SSL_shutdown(link.client.ssl());
  link.run();
  REQUIRE(SSL_SESSION_is_resumable(session.get()) == 1);
  return session;
}

TEST_SUITE("tls") {
  TEST_CASE("signature: EC P-256 server and RSA-2048 client over TLS 1.3") {
    const Outcome o = handshake(pki().server, ClientOptions{.cert = &pki().rsaClient});
    CHECK(o.facts.summary.version == "TLSv1.3");
    CHECK(o.facts.summary.serverSignature == "ECDSA");
    CHECK(o.facts.summary.serverSignatureDetail == "prime256v1");
    CHECK(o.facts.summary.serverDigest == "SHA256");
    CHECK(o.facts.summary.clientSignature == "RSA-PSS");
    CHECK(o.facts.summary.clientSignatureDetail == "2048 bits");
    CHECK(o.facts.summary.clientDigest == "SHA256");
    // The OpenSSL client's own account of the same handshake.
    CHECK(o.view.serverType == "id-ecPublicKey");
    CHECK(o.view.clientType == "RSASSA-PSS");
    CHECK(o.facts.summary.serverSignature == postfixNameFor(o.view.serverType));
    CHECK(o.facts.summary.clientSignature == postfixNameFor(o.view.clientType));
    CHECK(o.facts.summary.serverDigest == o.view.serverDigest);
    CHECK(o.facts.summary.clientDigest == o.view.clientDigest);
    // And the openssl command line's account of the two keys.
    CHECK(o.facts.summary.serverSignatureDetail == cliKeyDetail(pki().server));
    CHECK(o.facts.summary.clientSignatureDetail == cliKeyDetail(pki().rsaClient));
  }

  TEST_CASE("signature: RSA-2048 server and EC P-256 client over TLS 1.3") {
    const Outcome o = handshake(pki().rsaServer, ClientOptions{.cert = &pki().client});
    CHECK(o.facts.summary.serverSignature == "RSA-PSS");
    CHECK(o.facts.summary.serverSignatureDetail == "2048 bits");
    CHECK(o.facts.summary.serverDigest == "SHA256");
    CHECK(o.facts.summary.clientSignature == "ECDSA");
    CHECK(o.facts.summary.clientSignatureDetail == "prime256v1");
    CHECK(o.facts.summary.clientDigest == "SHA256");
    CHECK(o.view.serverType == "RSASSA-PSS");
    CHECK(o.view.clientType == "id-ecPublicKey");
    CHECK(o.facts.summary.serverDigest == o.view.serverDigest);
    CHECK(o.facts.summary.clientDigest == o.view.clientDigest);
    CHECK(o.facts.summary.serverSignatureDetail == cliKeyDetail(pki().rsaServer));
    CHECK(o.facts.summary.clientSignatureDetail == cliKeyDetail(pki().client));
  }

  TEST_CASE("signature: describeTls rebuilds the line Postfix logged in protocol.md 3.2") {
    // Observed: "... key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest
    // SHA256 client-signature ECDSA (prime256v1) client-digest SHA256" (RSA server, EC client).
    const Outcome o = handshake(pki().rsaServer, ClientOptions{.cert = &pki().client});
    CHECK(describeTls(o.facts.summary) ==
          "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
          "server-signature RSA-PSS (2048 bits) server-digest SHA256 client-signature ECDSA "
          "(prime256v1) client-digest SHA256");
  }

  TEST_CASE("signature: the no-certificate line of protocol.md 3.4 has no client part") {
    const Outcome o = handshake(pki().rsaServer, ClientOptions{});
    CHECK(describeTls(o.facts.summary) ==
          "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
          "server-signature RSA-PSS (2048 bits) server-digest SHA256");
  }

  TEST_CASE("signature: an Ed25519 client signs without a digest") {
    const Outcome o = handshake(pki().server, ClientOptions{.cert = &pki().edClient});
    CHECK(o.facts.summary.clientSignature == "ED25519");
    CHECK(o.facts.summary.clientSignatureDetail.empty());
    CHECK(o.facts.summary.clientDigest.empty());
    CHECK(o.view.clientType == "ED25519");
    CHECK(o.view.clientDigest.empty());                 // OpenSSL reports NID_undef for EdDSA
    CHECK(o.facts.summary.serverSignature == "ECDSA");  // the server side is unaffected
    CHECK(o.facts.summary.serverDigest == "SHA256");
  }

  TEST_CASE("signature: an Ed448 client signs without a digest") {
    const Outcome o = handshake(pki().server, ClientOptions{.cert = &pki().ed448Client});
    CHECK(o.facts.summary.clientSignature == "ED448");
    CHECK(o.facts.summary.clientSignatureDetail.empty());
    CHECK(o.facts.summary.clientDigest.empty());
    CHECK(o.view.clientType == "ED448");
  }

  TEST_CASE("signature: an Ed25519 server signs without a digest") {
    const Outcome o = handshake(pki().edServer, ClientOptions{.cert = &pki().rsaClient});
    CHECK(o.facts.summary.serverSignature == "ED25519");
    CHECK(o.facts.summary.serverSignatureDetail.empty());
    CHECK(o.facts.summary.serverDigest.empty());
    CHECK(o.view.serverType == "ED25519");
    CHECK(o.facts.summary.clientSignature == "RSA-PSS");
    CHECK(o.facts.summary.clientDigest == "SHA256");
  }

  TEST_CASE("signature: a P-384 client names its curve and signs with SHA384") {
    const Outcome o = handshake(pki().server, ClientOptions{.cert = &pki().p384Client});
    CHECK(o.facts.summary.clientSignature == "ECDSA");
    CHECK(o.facts.summary.clientSignatureDetail == "secp384r1");
    CHECK(o.facts.summary.clientDigest == "SHA384");  // TLS 1.3 binds P-384 to SHA-384
    CHECK(o.facts.summary.clientDigest == o.view.clientDigest);
    CHECK(o.facts.summary.clientSignatureDetail == cliKeyDetail(pki().p384Client));
  }

  TEST_CASE("signature: each digest is the negotiated one, server and client apart") {
    // The client accepts only SHA-512 from the RSA server and signs with SHA-256 (P-256).
    const Outcome o = handshake(
        pki().rsaServer, ClientOptions{.cert = &pki().client,
                                       .sigalgs = "rsa_pss_rsae_sha512:ecdsa_secp256r1_sha256"});
    CHECK(o.facts.summary.serverSignature == "RSA-PSS");
    CHECK(o.facts.summary.serverDigest == "SHA512");
    CHECK(o.facts.summary.clientSignature == "ECDSA");
    CHECK(o.facts.summary.clientDigest == "SHA256");
    CHECK(o.view.serverDigest == "SHA512");
    CHECK(o.view.clientDigest == "SHA256");
  }

  TEST_CASE("signature: an RSA client limited to SHA-384 reports SHA384") {
    const Outcome o = handshake(
        pki().server, ClientOptions{.cert = &pki().rsaClient,
                                    .sigalgs = "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha384"});
    CHECK(o.facts.summary.clientSignature == "RSA-PSS");
    CHECK(o.facts.summary.clientDigest == "SHA384");
    CHECK(o.view.clientDigest == "SHA384");
    CHECK(o.facts.summary.serverDigest == "SHA256");
  }

  TEST_CASE("signature: no client certificate leaves the client fields empty") {
    const Outcome o = handshake(pki().server, ClientOptions{});
    CHECK_FALSE(o.facts.hasCertificate);
    CHECK(o.facts.summary.serverSignature == "ECDSA");
    CHECK(o.facts.summary.serverSignatureDetail == "prime256v1");
    CHECK(o.facts.summary.serverDigest == "SHA256");
    CHECK(o.facts.summary.clientSignature.empty());
    CHECK(o.facts.summary.clientSignatureDetail.empty());
    CHECK(o.facts.summary.clientDigest.empty());
    CHECK(o.view.clientType.empty());  // the client did not sign either, by its own account
  }

  TEST_CASE("signature: an unverified self-signed client still reports its signature") {
    const Outcome o = handshake(pki().server, ClientOptions{.cert = &pki().selfSigned});
    CHECK_FALSE(o.facts.verified);
    CHECK(o.facts.summary.clientSignature == "ECDSA");
    CHECK(o.facts.summary.clientSignatureDetail == "prime256v1");
    CHECK(o.facts.summary.clientDigest == "SHA256");
  }

  TEST_CASE("signature: TLS 1.2 reports no signature facts") {
    for (const Credential* server : {&pki().server, &pki().rsaServer}) {
      CAPTURE(server->certFile);
      const Outcome o =
          handshake(*server, ClientOptions{.maxVersion = TLS1_2_VERSION, .cert = &pki().rsaClient});
      CHECK(o.facts.summary.version == "TLSv1.2");
      CHECK_FALSE(o.facts.summary.cipher.empty());
      CHECK(o.facts.hasCertificate);
      // Signatures were made (OpenSSL knows them), Postfix just does not report them.
      CHECK_FALSE(o.view.serverDigest.empty());
      checkNoSignatureFacts(o.facts);
    }
  }

  TEST_CASE("signature: a resumed TLS 1.3 session reports no signature facts") {
    const ContextPtr context = Context::create(pki().settingsFor(pki().rsaServer));
    const ClientOptions options{.cert = &pki().client};
    PeerFacts first;
    const SessionPtr session = resumableSession(context, options, first);
    CHECK(first.summary.serverSignature == "RSA-PSS");  // the full handshake had them
    CHECK(first.summary.clientSignature == "ECDSA");
    ClientOptions again = options;
    again.session = session.get();
    Link link(context, again);
    link.run();
    REQUIRE(link.established());
    const PeerFacts& facts = link.engine.facts();
    REQUIRE(facts.summary.resumed);
    CHECK(facts.summary.version == "TLSv1.3");
    CHECK(facts.summary.cipher == first.summary.cipher);
    CHECK(facts.summary.cipherBits == first.summary.cipherBits);
    CHECK(facts.summary.group == "X25519");  // psk_dhe_ke: Postfix still logs the key exchange
    CHECK(facts.hasCertificate);
    CHECK(facts.certFingerprint == first.certFingerprint);
    checkNoSignatureFacts(facts);
    CHECK(describeTlsParts(facts.summary).keyExchange == "key-exchange X25519");
    CHECK(describeTls(facts.summary).ends_with(" bits) key-exchange X25519"));
  }

  TEST_CASE("signature: a resumed TLS 1.2 session reports no signature facts") {
    const ContextPtr context = Context::create(pki().settings(true));
    const ClientOptions options{.maxVersion = TLS1_2_VERSION, .cert = &pki().rsaClient};
    PeerFacts first;
    const SessionPtr session = resumableSession(context, options, first);
    ClientOptions again = options;
    again.session = session.get();
    Link link(context, again);
    link.run();
    REQUIRE(link.established());
    REQUIRE(link.engine.facts().summary.resumed);
    CHECK(link.engine.facts().summary.version == "TLSv1.2");
    checkNoSignatureFacts(link.engine.facts());
  }

  TEST_CASE("signature: collectPeerFacts(nullptr) has no signature facts") {
    checkNoSignatureFacts(collectPeerFacts(nullptr));
  }
}

}  // namespace
}  // namespace certrelay::tls
