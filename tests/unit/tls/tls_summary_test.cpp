// tls/tls_summary: the one TLS description, shared by the handshake log line and the Received
// header. The rule for the TLS 1.3 pieces is Postfix's (tls_misc.c tls_log_summary()): each of
// key-exchange, server-signature and client-signature when known, independently; none below
// TLS 1.3.

#include "tls/tls_summary.h"

#include <doctest/doctest.h>

#include <string>

namespace certrelay::tls {
namespace {

// TLS 1.3, RSA server, EC client: protocol.md 3.2.
TlsSummary fullSummary() {
  TlsSummary s;
  s.version = "TLSv1.3";
  s.cipher = "TLS_AES_256_GCM_SHA384";
  s.cipherBits = 256;
  s.cipherAlgBits = 256;
  s.group = "X25519";
  s.serverSignature = "RSA-PSS";
  s.serverSignatureDetail = "2048 bits";
  s.serverDigest = "SHA256";
  s.clientSignature = "ECDSA";
  s.clientSignatureDetail = "prime256v1";
  s.clientDigest = "SHA256";
  return s;
}

const std::string kCipher = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)";

TEST_SUITE("tls") {
  TEST_CASE("tls_summary: every piece known gives Postfix's line (protocol.md 3.2)") {
    CHECK(describeTls(fullSummary()) ==
          kCipher +
              " key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256"
              " client-signature ECDSA (prime256v1) client-digest SHA256");
  }

  TEST_CASE("tls_summary: describeTlsParts gives the same words piece by piece") {
    const TlsDescription parts = describeTlsParts(fullSummary());
    CHECK(parts.cipher == kCipher);
    CHECK(parts.keyExchange == "key-exchange X25519");
    CHECK(parts.serverSignature == "server-signature RSA-PSS (2048 bits) server-digest SHA256");
    CHECK(parts.clientSignature == "client-signature ECDSA (prime256v1) client-digest SHA256");
  }

  TEST_CASE("tls_summary: the server signature does not need a known group") {
    TlsSummary s = fullSummary();
    s.group.clear();
    s.clientSignature.clear();
    CHECK(describeTls(s) == kCipher + " server-signature RSA-PSS (2048 bits) server-digest SHA256");
  }

  TEST_CASE("tls_summary: the client signature needs neither group nor server signature") {
    TlsSummary s = fullSummary();
    s.group.clear();
    s.serverSignature.clear();
    CHECK(describeTls(s) == kCipher + " client-signature ECDSA (prime256v1) client-digest SHA256");
  }

  TEST_CASE("tls_summary: a group alone is written alone (resumed TLS 1.3, no signatures)") {
    TlsSummary s = fullSummary();
    s.serverSignature.clear();
    s.clientSignature.clear();
    CHECK(describeTls(s) == kCipher + " key-exchange X25519");
  }

  TEST_CASE("tls_summary: no TLS 1.3 pieces known, the cipher alone") {
    TlsSummary s = fullSummary();
    s.group.clear();
    s.serverSignature.clear();
    s.clientSignature.clear();
    CHECK(describeTls(s) == kCipher);
  }

  TEST_CASE("tls_summary: below TLS 1.3 the details are left out even when given") {
    for (const char* version : {"TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3", "SSLv2"}) {
      CAPTURE(version);
      TlsSummary s = fullSummary();
      s.version = version;
      s.cipher = "ECDHE-RSA-AES256-GCM-SHA384";
      CHECK(describeTls(s) ==
            std::string(version) + " with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)");
      const TlsDescription parts = describeTlsParts(s);
      CHECK(parts.keyExchange.empty());
      CHECK(parts.serverSignature.empty());
      CHECK(parts.clientSignature.empty());
    }
    CHECK_FALSE(carriesTls13Details("TLSv1.2"));
    CHECK(carriesTls13Details("TLSv1.3"));
  }

  TEST_CASE("tls_summary: detail and digest only with their signature, each when known") {
    TlsSummary s = fullSummary();
    s.serverSignature = "ED25519";
    s.serverSignatureDetail.clear();
    s.serverDigest.clear();
    s.clientSignature.clear();
    s.clientDigest = "SHA256";  // without its signature: ignored
    CHECK(describeTls(s) == kCipher + " key-exchange X25519 server-signature ED25519");
    s.serverDigest = "SHA512";
    CHECK(describeTls(s) ==
          kCipher + " key-exchange X25519 server-signature ED25519 server-digest SHA512");
  }

  TEST_CASE("tls_summary: names are sanitized as tokens, the detail as a comment, cut to 64") {
    TlsSummary s = fullSummary();
    s.cipher = "X\r\nInjected: yes";
    s.group = "a b(c)";
    s.serverSignatureDetail = "2048 bits)\r\n";
    s.clientSignature = std::string(100, 'S');
    s.clientSignatureDetail.clear();
    s.clientDigest.clear();
    const TlsDescription parts = describeTlsParts(s);
    CHECK(parts.cipher == "TLSv1.3 with cipher X??Injected:?yes (256/256 bits)");
    CHECK(parts.keyExchange == "key-exchange a?b?c?");
    // ")\r\n" -> three '?' (spelled out: "??)" would be a trigraph).
    CHECK(parts.serverSignature ==
          "server-signature RSA-PSS (2048 bits" + std::string(3, '?') + ") server-digest SHA256");
    CHECK(parts.clientSignature == "client-signature " + std::string(64, 'S'));
  }

  TEST_CASE("tls_summary: resumption is not part of the description") {
    TlsSummary s = fullSummary();
    const std::string fresh = describeTls(s);
    s.resumed = true;
    CHECK(describeTls(s) == fresh);
  }
}

}  // namespace
}  // namespace certrelay::tls
