#include "proxy/smtp/received_header.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

namespace certrelay::smtp {
namespace {

constexpr std::time_t kWhen = 1795213669;  // Fri, 20 Nov 2026 22:27:49 UTC (protocol.md 3.2)
const std::string kFingerprint = "3EF83775B2EB86C6DB358D037524DBA71E0D7D99727042E31761797E84933F1E";
const std::string kColonFingerprint =
    "3E:F8:37:75:B2:EB:86:C6:DB:35:8D:03:75:24:DB:A7:1E:0D:7D:99:72:70:42:E3:17:61:79:7E:84:93:3F:"
    "1E";

// A TLS 1.3 session with a verified, listed client certificate: every line present.
ReceivedInfo fullInfo() {
  ReceivedInfo info;
  info.helo = "client1.lab.example";
  info.clientAddr = "192.0.2.10";
  info.tls = true;
  info.tlsSummary.version = "TLSv1.3";
  info.tlsSummary.cipher = "TLS_AES_256_GCM_SHA384";
  info.tlsSummary.cipherBits = 256;
  info.tlsSummary.cipherAlgBits = 256;
  info.tlsSummary.group = "X25519";
  info.tlsSummary.serverSignature = "RSA-PSS";
  info.tlsSummary.serverSignatureDetail = "2048 bits";
  info.tlsSummary.serverDigest = "SHA256";
  info.tlsSummary.clientSignature = "ECDSA";
  info.tlsSummary.clientSignatureDetail = "prime256v1";
  info.tlsSummary.clientDigest = "SHA256";
  info.hasCertificate = true;
  info.subjectCn = "client1.lab.example";
  info.issuerCn = "Lab Test CA";
  info.verified = true;
  info.certFingerprint = kFingerprint;
  info.trusted = true;
  info.identity = "client1";
  info.hostname = "relay.lab.example";
  info.id = "4D466A72441";
  info.singleRecipient = "<bob@remote.example>";
  info.when = kWhen;
  return info;
}

std::vector<std::string> splitLines(const std::string& header) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < header.size()) {
    const std::size_t end = header.find("\r\n", start);
    if (end == std::string::npos) {
      lines.push_back(header.substr(start));
      break;
    }
    lines.push_back(header.substr(start, end - start));
    start = end + 2;
  }
  return lines;
}

// The structural promises: CR LF only as line ends, ends with CR LF, lines within 998 octets,
// continuation lines start with TAB, only printable ASCII (plus TAB) unless 8-bit is allowed.
void checkWellFormed(const std::string& header, bool allow8bit = false) {
  REQUIRE(header.size() >= 2);
  CHECK(header.compare(0, 15, "Received: from ") == 0);
  CHECK(header.substr(header.size() - 2) == "\r\n");
  const std::vector<std::string> lines = splitLines(header);
  REQUIRE(!lines.empty());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    CAPTURE(line);
    CHECK(line.size() <= 998);
    CHECK(line.find('\r') == std::string::npos);
    CHECK(line.find('\n') == std::string::npos);
    if (i > 0) {
      CHECK(line.rfind('\t', 0) == 0);
    }
    for (char c : line) {
      const auto u = static_cast<unsigned char>(c);
      const bool ok = (u >= 0x20 && u < 0x7f) || c == '\t' || (allow8bit && u >= 0x80);
      CHECK(ok);
    }
  }
}

TEST_SUITE("smtp") {
  TEST_CASE("received: TLS 1.3, verified client certificate, listed identity (ESMTPSA)") {
    const std::string header = buildReceivedHeader(fullInfo());
    CHECK(header ==
          "Received: from client1.lab.example (unknown [192.0.2.10])\r\n"
          "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
          "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256\r\n"
          "\t client-signature ECDSA (prime256v1) client-digest SHA256)\r\n"
          "\t(Client CN \"client1.lab.example\", Issuer \"Lab Test CA\" (verified OK))\r\n"
          "\t(Client fingerprint SHA256 " +
              kColonFingerprint +
              ", identity \"client1\")\r\n"
              "\tby relay.lab.example (certrelay) with ESMTPSA id 4D466A72441\r\n"
              "\tfor <bob@remote.example>; Fri, 20 Nov 2026 22:27:49 +0000 (UTC)\r\n");
    checkWellFormed(header);
  }

  TEST_CASE("received: TLS 1.3, certificate not verified and not listed (ESMTPS)") {
    ReceivedInfo info = fullInfo();
    info.subjectCn = "selfsigned-client";
    info.issuerCn = "selfsigned-client";
    info.verified = false;
    info.trusted = false;
    info.identity = "ignored when untrusted";
    info.tlsSummary.serverSignature = "ECDSA";
    info.tlsSummary.serverSignatureDetail = "prime256v1";
    CHECK(buildReceivedHeader(info) ==
          "Received: from client1.lab.example (unknown [192.0.2.10])\r\n"
          "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
          "\t key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256\r\n"
          "\t client-signature ECDSA (prime256v1) client-digest SHA256)\r\n"
          "\t(Client CN \"selfsigned-client\", Issuer \"selfsigned-client\" (not verified))\r\n"
          "\t(Client fingerprint SHA256 " +
              kColonFingerprint +
              ")\r\n"
              "\tby relay.lab.example (certrelay) with ESMTPS id 4D466A72441\r\n"
              "\tfor <bob@remote.example>; Fri, 20 Nov 2026 22:27:49 +0000 (UTC)\r\n");
  }

  TEST_CASE("received: TLS 1.3 without a client certificate (protocol.md 3.4)") {
    ReceivedInfo info = fullInfo();
    info.tlsSummary.clientSignature.clear();
    info.tlsSummary.clientSignatureDetail.clear();
    info.tlsSummary.clientDigest.clear();
    info.hasCertificate = false;
    info.subjectCn.clear();
    info.issuerCn.clear();
    info.certFingerprint.clear();
    info.trusted = false;
    info.identity.clear();
    const std::string header = buildReceivedHeader(info);
    CHECK(header ==
          "Received: from client1.lab.example (unknown [192.0.2.10])\r\n"
          "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
          "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\r\n"
          "\t(Client did not present a certificate)\r\n"
          "\tby relay.lab.example (certrelay) with ESMTPS id 4D466A72441\r\n"
          "\tfor <bob@remote.example>; Fri, 20 Nov 2026 22:27:49 +0000 (UTC)\r\n");
    checkWellFormed(header);
  }

  TEST_CASE("received: without a certificate no fingerprint line even if one is given") {
    ReceivedInfo info = fullInfo();
    info.hasCertificate = false;
    const std::string header = buildReceivedHeader(info);
    CHECK(header.find("(Client did not present a certificate)\r\n") != std::string::npos);
    CHECK(header.find("fingerprint") == std::string::npos);
    CHECK(header.find("Client CN") == std::string::npos);
  }

  TEST_CASE("received: TLS 1.2 with a certificate, one using line (protocol.md 3.3)") {
    ReceivedInfo info = fullInfo();
    info.tlsSummary.version = "TLSv1.2";
    info.tlsSummary.cipher = "ECDHE-RSA-AES256-GCM-SHA384";
    info.subjectCn = "selfsigned-client";
    info.issuerCn = "selfsigned-client";
    info.verified = false;
    // TLS 1.3 details handed over for a TLS 1.2 session are ignored, as in Postfix.
    CHECK(buildReceivedHeader(info) ==
          "Received: from client1.lab.example (unknown [192.0.2.10])\r\n"
          "\t(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))\r\n"
          "\t(Client CN \"selfsigned-client\", Issuer \"selfsigned-client\" (not verified))\r\n"
          "\t(Client fingerprint SHA256 " +
              kColonFingerprint +
              ", identity \"client1\")\r\n"
              "\tby relay.lab.example (certrelay) with ESMTPSA id 4D466A72441\r\n"
              "\tfor <bob@remote.example>; Fri, 20 Nov 2026 22:27:49 +0000 (UTC)\r\n");
  }

  TEST_CASE("received: TLS 1.3 detail variants follow Postfix's line rules") {
    ReceivedInfo info = fullInfo();
    const std::string head =
        "Received: from client1.lab.example (unknown [192.0.2.10])\r\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)";
    auto tlsPart = [&](const ReceivedInfo& i) {
      const std::string h = buildReceivedHeader(i);
      REQUIRE(h.compare(0, head.size(), head) == 0);
      return h.substr(head.size(), h.find("\t(Client CN") - head.size());
    };

    SUBCASE("no details at all: one line") {
      info.tlsSummary.group.clear();
      info.tlsSummary.serverSignature.clear();
      info.tlsSummary.clientSignature.clear();
      CHECK(tlsPart(info) == ")\r\n");
    }
    SUBCASE("group only") {
      info.tlsSummary.serverSignature.clear();
      info.tlsSummary.clientSignature.clear();
      CHECK(tlsPart(info) == "\r\n\t key-exchange X25519)\r\n");
    }
    SUBCASE("server signature without group opens its own line") {
      info.tlsSummary.group.clear();
      info.tlsSummary.clientSignature.clear();
      CHECK(tlsPart(info) ==
            "\r\n\t server-signature RSA-PSS (2048 bits) server-digest SHA256)\r\n");
    }
    SUBCASE("client signature without server signature gets its own line after the group") {
      info.tlsSummary.serverSignature.clear();
      CHECK(tlsPart(info) ==
            "\r\n\t key-exchange X25519\r\n"
            "\t client-signature ECDSA (prime256v1) client-digest SHA256)\r\n");
    }
    SUBCASE("only a client signature") {
      info.tlsSummary.group.clear();
      info.tlsSummary.serverSignature.clear();
      CHECK(tlsPart(info) ==
            "\r\n\t client-signature ECDSA (prime256v1) client-digest SHA256)\r\n");
    }
    SUBCASE("signature without detail or digest (Ed25519), digest without signature ignored") {
      info.tlsSummary.serverSignature = "ED25519";
      info.tlsSummary.serverSignatureDetail.clear();
      info.tlsSummary.serverDigest.clear();
      info.tlsSummary.clientSignature.clear();
      info.tlsSummary.clientDigest = "SHA256";
      CHECK(tlsPart(info) == "\r\n\t key-exchange X25519 server-signature ED25519)\r\n");
    }
  }

  TEST_CASE("received: the (using ...) comment, unwrapped, is tls::describeTls()") {
    // The header and the "TLS connection established" log line share one description: only the
    // line breaks differ.
    auto unwrapped = [](const ReceivedInfo& i) {
      const std::vector<std::string> lines = splitLines(buildReceivedHeader(i));
      std::string text;
      for (std::size_t n = 1; n < lines.size() && lines[n].rfind("\t(Client", 0) != 0; ++n) {
        text +=
            n == 1 ? lines[n].substr(std::string("\t(using ").size()) : " " + lines[n].substr(2);
      }
      REQUIRE(!text.empty());
      REQUIRE(text.back() == ')');
      text.pop_back();
      return text;
    };
    ReceivedInfo info = fullInfo();
    CHECK(unwrapped(info) == tls::describeTls(info.tlsSummary));
    info.tlsSummary.group.clear();
    CHECK(unwrapped(info) == tls::describeTls(info.tlsSummary));
    info.tlsSummary.serverSignature.clear();
    CHECK(unwrapped(info) == tls::describeTls(info.tlsSummary));
    info.tlsSummary.version = "TLSv1.2";
    CHECK(unwrapped(info) == tls::describeTls(info.tlsSummary));
  }

  TEST_CASE("received: no TLS, none of the TLS lines, ESMTP") {
    ReceivedInfo info = fullInfo();
    info.tls = false;
    info.trusted = false;
    const std::string header = buildReceivedHeader(info);
    CHECK(header ==
          "Received: from client1.lab.example (unknown [192.0.2.10])\r\n"
          "\tby relay.lab.example (certrelay) with ESMTP id 4D466A72441\r\n"
          "\tfor <bob@remote.example>; Fri, 20 Nov 2026 22:27:49 +0000 (UTC)\r\n");
    checkWellFormed(header);
  }

  TEST_CASE("received: no TLS but trusted by address is ESMTPA") {
    ReceivedInfo info = fullInfo();
    info.tls = false;
    CHECK(buildReceivedHeader(info).find("\tby relay.lab.example (certrelay) with ESMTPA id ") !=
          std::string::npos);
  }

  TEST_CASE("received: a HELO session says SMTP even with TLS and a listed certificate") {
    ReceivedInfo info = fullInfo();
    info.esmtp = false;
    const std::string header = buildReceivedHeader(info);
    CHECK(header.find("\tby relay.lab.example (certrelay) with SMTP id 4D466A72441\r\n") !=
          std::string::npos);
    CHECK(header.find("ESMTP") == std::string::npos);
  }

  TEST_CASE("received: several recipients, no for clause, date on its own line") {
    ReceivedInfo info = fullInfo();
    info.tls = false;
    info.trusted = false;
    info.singleRecipient.clear();
    CHECK(buildReceivedHeader(info) ==
          "Received: from client1.lab.example (unknown [192.0.2.10])\r\n"
          "\tby relay.lab.example (certrelay) with ESMTP id 4D466A72441;\r\n"
          "\tFri, 20 Nov 2026 22:27:49 +0000 (UTC)\r\n");
  }

  TEST_CASE("received: empty id is left out") {
    ReceivedInfo info = fullInfo();
    info.tls = false;
    info.trusted = false;
    info.id.clear();
    CHECK(buildReceivedHeader(info) ==
          "Received: from client1.lab.example (unknown [192.0.2.10])\r\n"
          "\tby relay.lab.example (certrelay) with ESMTP\r\n"
          "\tfor <bob@remote.example>; Fri, 20 Nov 2026 22:27:49 +0000 (UTC)\r\n");
  }

  TEST_CASE("received: SMTPUTF8 is UTF8SMTPS and keeps a UTF-8 recipient") {
    ReceivedInfo info = fullInfo();
    info.utf8 = true;
    info.trusted = false;
    info.singleRecipient =
        "<j\xc3\xb6rg@b\xc3\xbc"
        "cher.example>";
    const std::string header = buildReceivedHeader(info);
    CHECK(header.find("\tby relay.lab.example (certrelay) with UTF8SMTPS id 4D466A72441\r\n"
                      "\tfor <j\xc3\xb6rg@b\xc3\xbc"
                      "cher.example>; Fri, 20 Nov 2026") != std::string::npos);
    checkWellFormed(header, true);
  }

  TEST_CASE("received: 8-bit recipient without SMTPUTF8 and control bytes become '?'") {
    ReceivedInfo info = fullInfo();
    info.singleRecipient = std::string("<a\xc3\xa9\r\n\tx\0y@b>", 13);
    const std::string header = buildReceivedHeader(info);
    CHECK(header.find("\tfor <a?????x?y@b>; ") != std::string::npos);
    checkWellFormed(header);
  }

  TEST_CASE("received: IPv6 client as [IPv6:...], IPv4-mapped as IPv4, missing as unknown") {
    ReceivedInfo info = fullInfo();
    info.clientAddr = "2001:db8::10";
    info.helo = "[IPv6:2001:db8::10]";
    CHECK(splitLines(buildReceivedHeader(info))[0] ==
          "Received: from [IPv6:2001:db8::10] (unknown [IPv6:2001:db8::10])");
    info.clientAddr = "::FFFF:192.0.2.7";
    CHECK(splitLines(buildReceivedHeader(info))[0] ==
          "Received: from [IPv6:2001:db8::10] (unknown [192.0.2.7])");
    info.clientAddr = "::ffff:c000:207";  // mapped, but not in dotted form: stays IPv6
    CHECK(splitLines(buildReceivedHeader(info))[0] ==
          "Received: from [IPv6:2001:db8::10] (unknown [IPv6:::ffff:c000:207])");
    info.clientAddr.clear();
    CHECK(splitLines(buildReceivedHeader(info))[0] ==
          "Received: from [IPv6:2001:db8::10] (unknown [unknown])");
  }

  TEST_CASE("received: hostile CN, issuer, identity and HELO are neutralised") {
    ReceivedInfo info = fullInfo();
    info.subjectCn = "evil\r\nX-Injected: yes (\"q\") \\ \xc3\xa9 end";
    info.issuerCn = "CA)(\"\x7f\t";
    info.identity = "id\"\\(x)\r\n";
    info.helo = "bad helo<x>;y@z(\"\\)\r\n\xff";
    const std::string header = buildReceivedHeader(info);
    const std::vector<std::string> lines = splitLines(header);
    REQUIRE(lines.size() == 8);
    CHECK(lines[0] == "Received: from bad?helo?x??y?z??????? (unknown [192.0.2.10])");
    CHECK(lines[4] ==
          "\t(Client CN \"evil??X-Injected: yes ??q?? ? ?? end\", Issuer \"CA?????\" "
          "(verified OK))");
    CHECK(lines[5] ==
          "\t(Client fingerprint SHA256 " + kColonFingerprint + ", identity \"id???x???\")");
    checkWellFormed(header);
  }

  TEST_CASE("received: a CN or issuer holding a NUL is absent, a HELO with a NUL is unknown") {
    ReceivedInfo info = fullInfo();
    info.subjectCn = std::string("good.example\0evil.example", 25);
    info.issuerCn = std::string("\0", 1);
    info.helo = std::string("client\0.example", 15);
    const std::vector<std::string> lines = splitLines(buildReceivedHeader(info));
    REQUIRE(lines.size() == 8);
    CHECK(lines[0] == "Received: from unknown (unknown [192.0.2.10])");
    CHECK(lines[4] == "\t(Client CN \"\", Issuer \"\" (verified OK))");
  }

  TEST_CASE("received: empty HELO and empty CN are written as Postfix does") {
    ReceivedInfo info = fullInfo();
    info.helo.clear();
    info.subjectCn.clear();
    info.issuerCn.clear();
    const std::vector<std::string> lines = splitLines(buildReceivedHeader(info));
    REQUIRE(lines.size() == 8);
    CHECK(lines[0] == "Received: from unknown (unknown [192.0.2.10])");
    CHECK(lines[4] == "\t(Client CN \"\", Issuer \"\" (verified OK))");
  }

  TEST_CASE("received: the verified client name, and in place of a missing HELO") {
    ReceivedInfo info = fullInfo();
    info.clientName = "good.example.test";
    std::vector<std::string> lines = splitLines(buildReceivedHeader(info));
    CHECK(lines[0] == "Received: from client1.lab.example (good.example.test [192.0.2.10])");
    info.helo.clear();
    lines = splitLines(buildReceivedHeader(info));
    CHECK(lines[0] == "Received: from good.example.test (good.example.test [192.0.2.10])");
    // Whatever reaches the builder is a token all the same.
    info.clientName = std::string("a b\r\n(x)\0", 9);
    lines = splitLines(buildReceivedHeader(info));
    CHECK(lines[0] == "Received: from unknown (unknown [192.0.2.10])");
    info.clientName = "a b;c";
    lines = splitLines(buildReceivedHeader(info));
    CHECK(lines[0] == "Received: from a?b?c (a?b?c [192.0.2.10])");
  }

  TEST_CASE("received: 300-character fields are cut to 255") {
    ReceivedInfo info = fullInfo();
    info.subjectCn = std::string(300, 'c');
    info.issuerCn = std::string(300, 'i');
    info.identity = std::string(300, 'd');
    info.helo = std::string(300, 'h');
    const std::string header = buildReceivedHeader(info);
    const std::vector<std::string> lines = splitLines(header);
    REQUIRE(lines.size() == 8);
    CHECK(lines[0] == "Received: from " + std::string(255, 'h') + " (unknown [192.0.2.10])");
    CHECK(lines[4] == "\t(Client CN \"" + std::string(255, 'c') + "\", Issuer \"" +
                          std::string(255, 'i') + "\" (verified OK))");
    CHECK(lines[5] == "\t(Client fingerprint SHA256 " + kColonFingerprint + ", identity \"" +
                          std::string(255, 'd') + "\")");
    checkWellFormed(header);
  }

  TEST_CASE("received: every field at its worst stays within 998 octets per line") {
    ReceivedInfo info;
    const std::string hostile = std::string(2000, '\xc3') + "\r\n\"()\\";
    for (std::string* field :
         {&info.helo, &info.clientAddr, &info.tlsSummary.version, &info.tlsSummary.cipher,
          &info.tlsSummary.group, &info.tlsSummary.serverSignature,
          &info.tlsSummary.serverSignatureDetail, &info.tlsSummary.serverDigest,
          &info.tlsSummary.clientSignature, &info.tlsSummary.clientSignatureDetail,
          &info.tlsSummary.clientDigest, &info.subjectCn, &info.issuerCn, &info.digestName,
          &info.identity, &info.hostname, &info.id}) {
      *field = hostile;
    }
    info.clientAddr = std::string(2000, ':');
    info.certFingerprint = std::string(5000, 'f');
    info.singleRecipient = "<" + std::string(3000, 'r') + "@example.com>";
    info.tls = true;
    info.hasCertificate = true;
    info.trusted = true;
    info.utf8 = true;
    info.tlsSummary.cipherBits = -2147483647 - 1;
    info.tlsSummary.cipherAlgBits = 2147483647;
    info.when = static_cast<std::time_t>(253402300799);  // 9999-12-31 23:59:59
    const std::string header = buildReceivedHeader(info);
    checkWellFormed(header);
    // The recipient did not fit: the several-recipients layout instead.
    CHECK(header.find("\tfor <") == std::string::npos);
    CHECK(header.find(";\r\n\tFri, 31 Dec 9999 23:59:59 +0000 (UTC)\r\n") != std::string::npos);
    // The fingerprint is cut to 128 hex digits (64 bytes), the digest name to 64 characters.
    std::string fingerprint = "FF";
    for (int i = 1; i < 64; ++i) {
      fingerprint += ":FF";
    }
    CHECK(header.find("\t(Client fingerprint " + std::string(64, '?') + " " + fingerprint +
                      ", identity \"" + std::string(255, '?') + "\")\r\n") != std::string::npos);
  }

  TEST_CASE("received: fingerprint printed with colons, lower-case accepted, junk neutralised") {
    ReceivedInfo info = fullInfo();
    info.trusted = false;
    info.digestName = "MD5";
    info.certFingerprint = "0aBcZ9";
    CHECK(splitLines(buildReceivedHeader(info))[5] == "\t(Client fingerprint MD5 0A:BC:?9)");
    info.certFingerprint.clear();
    const std::string header = buildReceivedHeader(info);
    CHECK(header.find("fingerprint") == std::string::npos);
    CHECK(header.find("(verified OK))\r\n\tby ") != std::string::npos);
  }

  TEST_CASE("received: trusted with an empty identity has no identity part") {
    ReceivedInfo info = fullInfo();
    info.identity.clear();
    CHECK(splitLines(buildReceivedHeader(info))[5] ==
          "\t(Client fingerprint SHA256 " + kColonFingerprint + ")");
  }

  TEST_CASE("received protocol: RFC 3848 / RFC 6531 table") {
    struct Row {
      bool esmtp, utf8, tls, trusted;
      const char* expected;
    };
    const Row rows[] = {
        {true, false, false, false, "ESMTP"},   {true, false, true, false, "ESMTPS"},
        {true, false, false, true, "ESMTPA"},   {true, false, true, true, "ESMTPSA"},
        {true, true, false, false, "UTF8SMTP"}, {true, true, true, false, "UTF8SMTPS"},
        {true, true, false, true, "UTF8SMTPA"}, {true, true, true, true, "UTF8SMTPSA"},
        {false, false, false, false, "SMTP"},   {false, false, true, false, "SMTP"},
        {false, false, false, true, "SMTP"},    {false, true, true, true, "SMTP"},
    };
    for (const Row& r : rows) {
      CAPTURE(r.esmtp);
      CAPTURE(r.utf8);
      CAPTURE(r.tls);
      CAPTURE(r.trusted);
      CHECK(receivedProtocol(r.esmtp, r.utf8, r.tls, r.trusted) == r.expected);
    }
  }

  TEST_CASE("rfc5322 date: fixed timestamps, leap days, single-digit days") {
    CHECK(rfc5322Date(1795213669) == "Fri, 20 Nov 2026 22:27:49 +0000 (UTC)");
    CHECK(rfc5322Date(1709208000) == "Thu, 29 Feb 2024 12:00:00 +0000 (UTC)");
    CHECK(rfc5322Date(951868799) == "Tue, 29 Feb 2000 23:59:59 +0000 (UTC)");
    CHECK(rfc5322Date(4107542400) == "Mon,  1 Mar 2100 00:00:00 +0000 (UTC)");  // not a leap year
    CHECK(rfc5322Date(1628104564) == "Wed,  4 Aug 2021 19:16:04 +0000 (UTC)");
    CHECK(rfc5322Date(0) == "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)");
    CHECK(rfc5322Date(-1) == "Wed, 31 Dec 1969 23:59:59 +0000 (UTC)");
    CHECK(rfc5322Date(2147483648) == "Tue, 19 Jan 2038 03:14:08 +0000 (UTC)");
    CHECK(rfc5322Date(-2208988800) == "Mon,  1 Jan 1900 00:00:00 +0000 (UTC)");
  }

  TEST_CASE("rfc5322 date: agrees with gmtime_r over four centuries") {
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    // From 1900 to 2300 in steps of a prime number of seconds (~3.3 days), so every weekday,
    // month, leap day and time of day turns up.
    for (std::int64_t t = -2208988800; t < 10413792000; t += 287'933) {
      const auto when = static_cast<std::time_t>(t);
      std::tm tm{};
      REQUIRE(gmtime_r(&when, &tm) != nullptr);
      char expected[64];
      std::snprintf(expected, sizeof(expected), "%s, %2d %s %04d %02d:%02d:%02d +0000 (UTC)",
                    kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900,
                    tm.tm_hour, tm.tm_min, tm.tm_sec);
      const std::string actual = rfc5322Date(when);
      if (actual != expected) {
        CAPTURE(t);
        CHECK(actual == expected);
        break;
      }
    }
  }
}

}  // namespace
}  // namespace certrelay::smtp
