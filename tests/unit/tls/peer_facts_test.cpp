// Fingerprints (checked against the openssl command line) and names from hostile certificates.
// The text helpers themselves are tested in tests/unit/common/text_test.cpp.

#include "tls/peer_facts.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "common/text.h"
#include "tests/unit/tls/test_cli.h"
#include "tests/unit/tls/test_peer.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/context.h"
#include "tls/engine.h"

namespace certrelay::tls {
namespace {

using test::ClientOptions;
using test::Credential;
using test::Link;
using test::pki;
using test::shell;

// Upper-case hex digits after the last '=' of a CLI line, colons and whitespace dropped.
std::string hexAfterEquals(const std::string& line) {
  const auto eq = line.rfind('=');
  REQUIRE(eq != std::string::npos);
  std::string hex;
  for (char c : line.substr(eq + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c)) != 0) {
      hex += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
  return hex;
}

// `digest`: the openssl CLI option without its dash ("sha256", "sha1", "md5").
std::string cliCertFingerprint(const Credential& cred, const std::string& digest = "sha256") {
  // OpenSSL 3.0 prints "sha256 Fingerprint=3E:F8:..." ("sha1 Fingerprint=", "md5 Fingerprint=").
  return hexAfterEquals(
      shell("openssl x509 -in '" + cred.certFile.string() + "' -noout -fingerprint -" + digest));
}

std::string cliPkeyFingerprint(const Credential& cred, const std::string& digest = "sha256") {
  // Prints "SHA2-256(stdin)= 23df..." (lower case, no colons), "SHA1(stdin)= ", "MD5(stdin)= ".
  return hexAfterEquals(shell("openssl x509 -in '" + cred.certFile.string() +
                              "' -noout -pubkey | openssl pkey -pubin -outform DER | "
                              "openssl dgst -" +
                              digest));
}

struct DigestCase {
  config::FingerprintDigest digest;
  const char* cli;       // openssl CLI option without the dash
  const char* name;      // PeerFacts::digestName
  std::size_t hexChars;  // canonical fingerprint length
};

constexpr DigestCase kDigests[] = {
    {config::FingerprintDigest::Sha256, "sha256", "SHA256", 64},
    {config::FingerprintDigest::Sha1, "sha1", "SHA1", 40},
    {config::FingerprintDigest::Md5, "md5", "MD5", 32},
};

std::string hex(const unsigned char* data, unsigned int len) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0x0f];
  }
  return out;
}

PeerFacts handshakeFacts(const Credential& cred,
                         config::FingerprintDigest digest = config::FingerprintDigest::Sha256) {
  Link link(Context::create(pki().settings(true), digest), ClientOptions{.cert = &cred});
  link.run();
  REQUIRE(link.established());
  return link.engine.facts();
}

TEST_SUITE("tls") {
  TEST_CASE("peer_facts: certificate fingerprint matches openssl x509 -fingerprint") {
    for (const Credential* cred : {&pki().client, &pki().selfSigned, &pki().rsaClient,
                                   &pki().edClient, &pki().compressedEc}) {
      CAPTURE(cred->certFile);
      const std::string ours = certificateFingerprint(cred->cert.get());
      CHECK(ours.size() == 64);
      CHECK(ours == cliCertFingerprint(*cred));
    }
  }

  TEST_CASE("peer_facts: public-key fingerprint matches the DER SubjectPublicKeyInfo digest") {
    for (const Credential* cred : {&pki().client, &pki().selfSigned, &pki().rsaClient,
                                   &pki().edClient, &pki().compressedEc}) {
      CAPTURE(cred->certFile);
      const std::string ours = publicKeyFingerprint(cred->cert.get());
      CHECK(ours.size() == 64);
      CHECK(ours == cliPkeyFingerprint(*cred));
      CHECK(ours != certificateFingerprint(cred->cert.get()));
    }
  }

  TEST_CASE("peer_facts: the public-key fingerprint equals SHA-256 over i2d_PUBKEY") {
    // Postfix's own encoding; ours re-serialises the certificate's SPKI instead (faster).
    // Certificates are re-parsed from DER first, as a received certificate would be.
    for (const Credential* cred : {&pki().client, &pki().selfSigned, &pki().rsaClient,
                                   &pki().edClient, &pki().compressedEc}) {
      CAPTURE(cred->certFile);
      unsigned char* der = nullptr;
      const int derLen = i2d_X509(cred->cert.get(), &der);
      REQUIRE(derLen > 0);
      const unsigned char* p = der;
      X509Ptr parsed(d2i_X509(nullptr, &p, derLen));
      OPENSSL_free(der);
      REQUIRE(parsed != nullptr);
      unsigned char* spki = nullptr;
      const int spkiLen = i2d_PUBKEY(X509_get0_pubkey(parsed.get()), &spki);
      REQUIRE(spkiLen > 0);
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int mdLen = 0;
      REQUIRE(EVP_Digest(spki, static_cast<std::size_t>(spkiLen), md, &mdLen, EVP_sha256(),
                         nullptr) == 1);
      OPENSSL_free(spki);
      CHECK(publicKeyFingerprint(parsed.get()) == hex(md, mdLen));
    }
  }

  TEST_CASE("peer_facts: a compressed EC point is hashed as sent, not re-encoded") {
    // The compressed point (33 bytes) gives a 59-byte SPKI; an uncompressed re-encoding would
    // be 91 bytes and hash differently.
    unsigned char* spki = nullptr;
    const int spkiLen = i2d_PUBKEY(X509_get0_pubkey(pki().compressedEc.cert.get()), &spki);
    OPENSSL_free(spki);
    CHECK(spkiLen == 59);
    CHECK(publicKeyFingerprint(pki().compressedEc.cert.get()) ==
          cliPkeyFingerprint(pki().compressedEc));
  }

  TEST_CASE("peer_facts: the public-key fingerprint is not X509_pubkey_digest (the trap)") {
    X509* cert = pki().client.cert.get();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    REQUIRE(X509_pubkey_digest(cert, EVP_sha256(), md, &len) == 1);
    const std::string trap = hex(md, len);
    CHECK(trap.size() == 64);
    CHECK(publicKeyFingerprint(cert) != trap);
  }

  TEST_CASE("peer_facts: the public-key fingerprint survives re-issuing with the same key") {
    const Credential& client = pki().client;
    X509Ptr renewed = test::makeCert(client.key.get(), "client1-renewed", &pki().ca, false);
    CHECK(publicKeyFingerprint(renewed.get()) == publicKeyFingerprint(client.cert.get()));
    CHECK(certificateFingerprint(renewed.get()) != certificateFingerprint(client.cert.get()));
  }

  TEST_CASE("peer_facts: null certificate gives empty fingerprints") {
    CHECK(certificateFingerprint(nullptr).empty());
    CHECK(publicKeyFingerprint(nullptr).empty());
  }

  TEST_CASE("peer_facts: fingerprints from a handshake match the CLI") {
    const PeerFacts facts = handshakeFacts(pki().rsaClient);
    CHECK(facts.certFingerprint == cliCertFingerprint(pki().rsaClient));
    CHECK(facts.pkeyFingerprint == cliPkeyFingerprint(pki().rsaClient));
    CHECK(facts.digestName == "SHA256");
    CHECK(facts.subjectCn == "rsa.lab.example");
    CHECK(facts.verified);
  }

  TEST_CASE("peer_facts: certificate fingerprint with each digest matches openssl x509") {
    for (const DigestCase& d : kDigests) {
      for (const Credential* cred : {&pki().client, &pki().rsaClient, &pki().edClient}) {
        const std::string digest = d.cli;
        CAPTURE(digest);
        CAPTURE(cred->certFile);
        const std::string ours = certificateFingerprint(cred->cert.get(), d.digest);
        CHECK(ours.size() == d.hexChars);
        CHECK(ours == cliCertFingerprint(*cred, d.cli));
      }
    }
  }

  TEST_CASE("peer_facts: public-key fingerprint with each digest matches openssl dgst of SPKI") {
    for (const DigestCase& d : kDigests) {
      for (const Credential* cred :
           {&pki().client, &pki().rsaClient, &pki().edClient, &pki().compressedEc}) {
        const std::string digest = d.cli;
        CAPTURE(digest);
        CAPTURE(cred->certFile);
        const std::string ours = publicKeyFingerprint(cred->cert.get(), d.digest);
        CHECK(ours.size() == d.hexChars);
        CHECK(ours == cliPkeyFingerprint(*cred, d.cli));
        CHECK(ours != certificateFingerprint(cred->cert.get(), d.digest));
      }
    }
  }

  TEST_CASE("peer_facts: the overloads without a digest are SHA-256") {
    X509* cert = pki().client.cert.get();
    CHECK(certificateFingerprint(cert) ==
          certificateFingerprint(cert, config::FingerprintDigest::Sha256));
    CHECK(publicKeyFingerprint(cert) ==
          publicKeyFingerprint(cert, config::FingerprintDigest::Sha256));
    CHECK(certificateFingerprint(nullptr, config::FingerprintDigest::Md5).empty());
    CHECK(publicKeyFingerprint(nullptr, config::FingerprintDigest::Sha1).empty());
  }

  TEST_CASE("peer_facts: digestName and fingerprintMd") {
    CHECK(std::string(digestName(config::FingerprintDigest::Sha256)) == "SHA256");
    CHECK(std::string(digestName(config::FingerprintDigest::Sha1)) == "SHA1");
    CHECK(std::string(digestName(config::FingerprintDigest::Md5)) == "MD5");
    for (const DigestCase& d : kDigests) {
      const std::string digest = d.cli;
      CAPTURE(digest);
      const EVP_MD* md = fingerprintMd(d.digest);
      REQUIRE(md != nullptr);
      CHECK(static_cast<std::size_t>(EVP_MD_get_size(md)) * 2 == d.hexChars);
      CHECK(fingerprintMd(d.digest) == md);  // fetched once, the same handle every time
    }
    CHECK(EVP_MD_is_a(fingerprintMd(config::FingerprintDigest::Sha256), "SHA2-256") == 1);
    CHECK(EVP_MD_is_a(fingerprintMd(config::FingerprintDigest::Sha1), "SHA1") == 1);
    CHECK(EVP_MD_is_a(fingerprintMd(config::FingerprintDigest::Md5), "MD5") == 1);
  }

  TEST_CASE("peer_facts: a handshake on a context with each digest gives that digest") {
    for (const DigestCase& d : kDigests) {
      const std::string digest = d.cli;
      CAPTURE(digest);
      const PeerFacts facts = handshakeFacts(pki().rsaClient, d.digest);
      CHECK(facts.digestName == d.name);
      CHECK(facts.certFingerprint == cliCertFingerprint(pki().rsaClient, d.cli));
      CHECK(facts.pkeyFingerprint == cliPkeyFingerprint(pki().rsaClient, d.cli));
      CHECK(facts.certFingerprint.size() == d.hexChars);
    }
  }

  TEST_CASE("peer_facts: the digest belongs to the context, not to the process") {
    // Two live contexts with different digests: each connection follows its own context.
    const ContextPtr md5 = Context::create(pki().settings(true), config::FingerprintDigest::Md5);
    const ContextPtr sha256 = Context::create(pki().settings(true));
    Link a(md5, ClientOptions{.cert = &pki().client});
    Link b(sha256, ClientOptions{.cert = &pki().client});
    a.run();
    b.run();
    REQUIRE(a.established());
    REQUIRE(b.established());
    CHECK(a.engine.facts().digestName == "MD5");
    CHECK(a.engine.facts().certFingerprint == cliCertFingerprint(pki().client, "md5"));
    CHECK(b.engine.facts().digestName == "SHA256");
    CHECK(b.engine.facts().certFingerprint == cliCertFingerprint(pki().client, "sha256"));
  }

  TEST_CASE("peer_facts: no certificate still names the digest, fingerprints stay empty") {
    Link link(Context::create(pki().settings(true), config::FingerprintDigest::Sha1),
              ClientOptions{});
    link.run();
    REQUIRE(link.established());
    CHECK_FALSE(link.engine.facts().hasCertificate);
    CHECK(link.engine.facts().digestName == "SHA1");
    CHECK(link.engine.facts().certFingerprint.empty());
    CHECK(link.engine.facts().pkeyFingerprint.empty());
  }

  TEST_CASE("peer_facts: a CN with CR, LF, quotes and parentheses is sanitized") {
    const PeerFacts facts = handshakeFacts(pki().hostileCn);
    CHECK(facts.hasCertificate);
    CHECK(facts.subjectCn == "evil??X: y ??x???");
    CHECK(facts.issuerCn == "certrelay Test CA");
    CHECK(facts.verified);  // the chain is fine; only the name is hostile
  }

  TEST_CASE("peer_facts: a CN with an embedded NUL is treated as absent") {
    const PeerFacts facts = handshakeFacts(pki().nulCn);
    CHECK(facts.hasCertificate);
    CHECK(facts.subjectCn.empty());
    CHECK(facts.issuerCn == "certrelay Test CA");
    CHECK_FALSE(facts.certFingerprint.empty());  // identity is the fingerprint, not the CN
  }

  TEST_CASE("peer_facts: a 300-character CN is cut to text::kMaxText (255)") {
    const PeerFacts facts = handshakeFacts(pki().longCn);
    CHECK(facts.subjectCn == std::string(text::kMaxText, 'a'));
  }

  TEST_CASE("peer_facts: Ed25519 self-signed client certificate") {
    const PeerFacts facts = handshakeFacts(pki().edClient);
    CHECK(facts.hasCertificate);
    CHECK_FALSE(facts.verified);
    CHECK(facts.subjectCn == "ed.lab.example");
    CHECK(facts.pkeyFingerprint == cliPkeyFingerprint(pki().edClient));
  }

  TEST_CASE("peer_facts: collectPeerFacts(nullptr) is empty") {
    const PeerFacts facts = collectPeerFacts(nullptr);
    CHECK(facts.summary.version.empty());
    CHECK_FALSE(facts.hasCertificate);
  }

  TEST_CASE("peer_facts: a fingerprint in colon form has a colon between each byte") {
    const std::string fp = certificateFingerprint(pki().client.cert.get());
    const std::string colons = text::withColons(fp);
    CHECK(colons.size() == 64 + 31);
    CHECK(std::count(colons.begin(), colons.end(), ':') == 31);
    CHECK(colons.find('?') == std::string::npos);
  }
}

}  // namespace
}  // namespace certrelay::tls
