// tls/handshake_log: the "TLS connection established" and peer certificate log lines.

#include "tls/handshake_log.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "tls/tls_summary.h"

namespace certrelay::tls {
namespace {

PeerFacts tls13Facts() {
  PeerFacts facts;
  TlsSummary& s = facts.summary;
  s.version = "TLSv1.3";
  s.cipher = "TLS_AES_256_GCM_SHA384";
  s.cipherBits = 256;
  s.cipherAlgBits = 256;
  s.group = "X25519";
  s.serverSignature = "ECDSA";
  s.serverSignatureDetail = "prime256v1";
  s.serverDigest = "SHA256";
  facts.hasCertificate = true;
  facts.verified = true;
  facts.subjectCn = "client1.lab.example";
  facts.issuerCn = "Lab Test CA";
  facts.certFingerprint = "3EF8AB";
  facts.pkeyFingerprint = "0102";
  facts.digestName = "SHA256";
  return facts;
}

TEST_SUITE("tls") {
  TEST_CASE("handshake_log: the established line is the trust word, the client and describeTls") {
    const PeerFacts facts = tls13Facts();
    CHECK(tlsEstablishedLogLine("unknown[1.2.3.4]", facts) ==
          "Trusted TLS connection established from unknown[1.2.3.4]: " +
              describeTls(facts.summary));
    CHECK(tlsEstablishedLogLine("unknown[1.2.3.4]", facts) ==
          "Trusted TLS connection established from unknown[1.2.3.4]: TLSv1.3 with cipher "
          "TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA "
          "(prime256v1) server-digest SHA256");
  }

  TEST_CASE("handshake_log: trust words are Postfix's Anonymous, Trusted, Untrusted") {
    PeerFacts facts = tls13Facts();
    CHECK(std::string(trustWord(facts)) == "Trusted");
    facts.verified = false;
    CHECK(std::string(trustWord(facts)) == "Untrusted");
    facts.hasCertificate = false;
    CHECK(std::string(trustWord(facts)) == "Anonymous");
    CHECK(tlsEstablishedLogLine("c", facts).starts_with("Anonymous TLS connection established"));
  }

  TEST_CASE("handshake_log: the server signature is logged without a known group") {
    PeerFacts facts = tls13Facts();
    facts.summary.group.clear();
    CHECK(tlsEstablishedLogLine("c", facts) ==
          "Trusted TLS connection established from c: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
          "(256/256 bits) server-signature ECDSA (prime256v1) server-digest SHA256");
  }

  TEST_CASE("handshake_log: a resumed session ends with (resumed)") {
    PeerFacts facts = tls13Facts();
    facts.summary.resumed = true;
    facts.summary.serverSignature.clear();
    CHECK(tlsEstablishedLogLine("c", facts) ==
          "Trusted TLS connection established from c: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
          "(256/256 bits) key-exchange X25519 (resumed)");
  }

  TEST_CASE("handshake_log: the peer certificate line names the relay verdict") {
    const PeerFacts facts = tls13Facts();
    CHECK(peerCertificateLogLine("unknown[1.2.3.4]", facts, std::string("printer")) ==
          "unknown[1.2.3.4]: subject_CN=client1.lab.example, issuer=Lab Test CA, cert "
          "fingerprint=3E:F8:AB, pkey fingerprint=01:02, relay identity=printer");
    CHECK(peerCertificateLogLine("unknown[1.2.3.4]", facts, std::nullopt) ==
          "unknown[1.2.3.4]: subject_CN=client1.lab.example, issuer=Lab Test CA, cert "
          "fingerprint=3E:F8:AB, pkey fingerprint=01:02, not listed for relay");
  }
}

}  // namespace
}  // namespace certrelay::tls
