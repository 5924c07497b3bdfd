// Fingerprint normalisation, the relay_clientcerts table, local domains and the trust lookup.

#include "policy/relay_policy.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace certrelay::policy {
namespace {

namespace fs = std::filesystem;

// Two SHA-256 fingerprints from protocol.md section 4.3 (client1 certificate, client2 key).
const std::string kCert1 = "3EF83775B2EB86C6DB358D037524DBA71E0D7D99727042E31761797E84933F1E";
const std::string kCert1Colons =
    "3E:F8:37:75:B2:EB:86:C6:DB:35:8D:03:75:24:DB:A7:1E:0D:7D:99:72:70:42:E3:17:61:79:7E:84:93:3F:"
    "1E";
const std::string kPkey2 = "39EAC2C7B956DB888C905EB59C4D765495749D347CC315CF7BDC2CBD1E258329";
const std::string kPkey2LowerColons =
    "39:ea:c2:c7:b9:56:db:88:8c:90:5e:b5:9c:4d:76:54:95:74:9d:34:7c:c3:15:cf:7b:dc:2c:bd:1e:25:83:"
    "29";

std::string lower(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'F') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return text;
}

// The PolicyError text, or "" when the table was accepted.
std::string parseError(const std::string& text) {
  try {
    FingerprintTable::parse(text, "relay_clientcerts");
  } catch (const PolicyError& e) {
    return e.what();
  }
  return "";
}

std::string parseError(const std::string& text, config::FingerprintDigest digest) {
  try {
    FingerprintTable::parse(text, "relay_clientcerts", digest);
  } catch (const PolicyError& e) {
    return e.what();
  }
  return "";
}

// A fingerprint of `bytes` bytes in colon form, every byte `byte` (e.g. "AB:AB:...").
std::string colonKey(std::size_t bytes, const std::string& byte = "AB") {
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    out += (i == 0 ? "" : ":") + byte;
  }
  return out;
}

// The canonical form of colonKey(bytes, byte).
std::string plainKey(std::size_t bytes, const std::string& byte = "AB") {
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    out += byte;
  }
  return out;
}

std::string identityOf(const FingerprintTable& table, const std::string& key) {
  const std::string* identity = table.find(key);
  return identity == nullptr ? "<absent>" : *identity;
}

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("certrelay-policy-test-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("normalizeFingerprint: colons or none, any case, to upper hex") {
    CHECK(normalizeFingerprint(kCert1Colons) == kCert1);
    CHECK(normalizeFingerprint(lower(kCert1Colons)) == kCert1);
    CHECK(normalizeFingerprint(lower(kCert1)) == kCert1);
    CHECK(normalizeFingerprint(kCert1) == kCert1);
    CHECK(normalizeFingerprint(kPkey2LowerColons) == kPkey2);
    CHECK(normalizeFingerprint("aB:cD:" + kCert1Colons.substr(6)) == "ABCD" + kCert1.substr(4));
  }

  TEST_CASE("normalizeFingerprint: every digest length") {
    for (std::size_t bytes : {16u, 20u, 28u, 32u, 48u, 64u}) {
      CAPTURE(bytes);
      const std::string hex(bytes * 2, 'a');
      CHECK(normalizeFingerprint(hex) == std::string(bytes * 2, 'A'));
    }
  }

  TEST_CASE("normalizeFingerprint: lengths that are no digest are refused") {
    for (std::size_t bytes : {0u, 1u, 15u, 17u, 31u, 33u, 63u, 65u, 128u}) {
      CAPTURE(bytes);
      CHECK_FALSE(normalizeFingerprint(std::string(bytes * 2, 'a')).has_value());
    }
  }

  TEST_CASE("normalizeFingerprint: malformed text is refused") {
    const std::string bad[] = {
        "",
        kCert1.substr(1),                                          // odd number of digits
        kCert1.substr(0, 63) + "G",                                // non-hex
        ":" + kCert1Colons,                                        // leading colon
        kCert1Colons + ":",                                        // trailing colon
        kCert1Colons.substr(0, 3) + ":" + kCert1Colons.substr(3),  // double colon
        "3:EF8" + kCert1Colons.substr(5),                          // misplaced colon
        "3EF8" + kCert1Colons.substr(5),                           // colons only between some pairs
        kCert1.substr(0, 32) + " " + kCert1.substr(32),            // inner space
        " " + kCert1,                                              // leading space
        "0x" + kCert1.substr(2),                                   // prefix
    };
    for (const std::string& text : bad) {
      CAPTURE(text);
      CHECK_FALSE(normalizeFingerprint(text).has_value());
    }
  }

  TEST_CASE("table: colons, no colons, lower and upper case all find the canonical key") {
    const FingerprintTable table = FingerprintTable::parse(
        kCert1Colons + " client1\n" + lower(kPkey2) + " client2-pkey\n", "t");
    CHECK(table.size() == 2);
    CHECK(identityOf(table, kCert1) == "client1");
    CHECK(identityOf(table, kPkey2) == "client2-pkey");
    CHECK(table.find(kCert1Colons) == nullptr);  // find() takes the canonical form only
  }

  TEST_CASE("table: tabs and runs of blanks separate, surrounding blanks ignored") {
    const FingerprintTable table = FingerprintTable::parse(
        "\t " + kCert1 + "\t\t  client one  \t\n" + "  " + kPkey2 + " \tpkey\t\n", "t");
    CHECK(identityOf(table, kCert1) == "client one");
    CHECK(identityOf(table, kPkey2) == "pkey");
  }

  TEST_CASE("table: comments and blank lines are skipped, '#' inside an identity is kept") {
    const FingerprintTable table = FingerprintTable::parse(
        "# header\n\n   \n\t# indented comment\n" + kCert1 + " ops #1 # not a comment\n\n", "t");
    CHECK(table.size() == 1);
    CHECK(identityOf(table, kCert1) == "ops #1 # not a comment");
  }

  TEST_CASE("table: a commented-out entry is not trusted") {
    const FingerprintTable table = FingerprintTable::parse("#" + kCert1 + " old\n", "t");
    CHECK(table.size() == 0);
    CHECK(table.find(kCert1) == nullptr);
  }

  TEST_CASE("table: CRLF line ends and a last line without newline") {
    const FingerprintTable table =
        FingerprintTable::parse("# c\r\n" + kCert1 + " a\r\n\r\n" + kPkey2 + " b", "t");
    CHECK(table.size() == 2);
    CHECK(identityOf(table, kCert1) == "a");  // no '\r' left in the identity
    CHECK(identityOf(table, kPkey2) == "b");
  }

  TEST_CASE("table: empty identity becomes the fingerprint in colon form") {
    const FingerprintTable table =
        FingerprintTable::parse(lower(kCert1) + "   \n" + kPkey2LowerColons + "\r\n", "t");
    CHECK(identityOf(table, kCert1) == kCert1Colons);
    CHECK(identityOf(table, kPkey2) ==
          "39:EA:C2:C7:B9:56:DB:88:8C:90:5E:B5:9C:4D:76:54:95:74:9D:34:7C:C3:15:CF:7B:DC:2C:BD:1E:"
          "25:83:29");
  }

  TEST_CASE("table: duplicates, in any spelling, keep the first entry") {
    const FingerprintTable table = FingerprintTable::parse(
        kCert1 + " first\n" + lower(kCert1Colons) + " second\n" + kCert1 + "\n", "t");
    CHECK(table.size() == 1);
    CHECK(identityOf(table, kCert1) == "first");
  }

  TEST_CASE("table: an empty text trusts nobody") {
    CHECK(FingerprintTable::parse("", "t").size() == 0);
    CHECK(FingerprintTable::parse("\n\n# nothing\n", "t").size() == 0);
  }

  TEST_CASE("table error: bad fingerprint names origin and line") {
    CHECK(parseError("# ok\n" + kCert1 + " a\n\nnot-a-fingerprint client\n") ==
          "relay_clientcerts:4: bad fingerprint 'not-a-fingerprint'");
    CHECK(parseError(kCert1.substr(2) + " truncated\n") ==
          "relay_clientcerts:1: bad fingerprint '" + kCert1.substr(2) + "'");
  }

  TEST_CASE("table error: line numbers count CRLF lines and comments") {
    CHECK(parseError("# a\r\n\r\n" + kCert1 + "\r\n  # b\r\nZZ\r\n") ==
          "relay_clientcerts:5: bad fingerprint 'ZZ'");
  }

  TEST_CASE("table error: the quoted key is cut at 80 bytes and sanitized") {
    const std::string longKey = std::string(100, 'x');
    CHECK(parseError(longKey + " id\n") ==
          "relay_clientcerts:1: bad fingerprint '" + std::string(80, 'x') + "'");
    CHECK(parseError(std::string("ab\x01\x1b[31m\xff") + " id\n") ==
          "relay_clientcerts:1: bad fingerprint 'ab??[31m?'");
  }

  TEST_CASE("table error: identity must be printable ASCII") {
    CHECK(parseError("\n" + kCert1 + " bad\x01id\n") ==
          "relay_clientcerts:2: identity 'bad?id' must be printable ASCII (spaces allowed inside)");
    CHECK(parseError(kCert1 + " caf\xc3\xa9\n") ==
          "relay_clientcerts:1: identity 'caf?"
          "?' must be printable ASCII (spaces allowed inside)");
    CHECK(parseError(kCert1 + " a\tb\n") ==
          "relay_clientcerts:1: identity 'a?b' must be printable ASCII (spaces allowed inside)");
    CHECK(parseError(kCert1 + " a\x7f\n") ==
          "relay_clientcerts:1: identity 'a?' must be printable ASCII (spaces allowed inside)");
    CHECK(parseError(kCert1 + " a\rb\n") ==
          "relay_clientcerts:1: identity 'a?b' must be printable ASCII (spaces allowed inside)");
  }

  TEST_CASE("table error: identity longer than 255 bytes") {
    CHECK(parseError(kCert1 + " " + std::string(255, 'i') + "\n").empty());
    CHECK(parseError(kCert1 + " " + std::string(256, 'i') + "\n") ==
          "relay_clientcerts:1: identity longer than 255 bytes");
  }

  TEST_CASE("table: 100,000 entries load") {
    std::string text;
    text.reserve(std::size_t{100'000} * 80);
    char key[65];
    for (unsigned i = 0; i < 100'000; ++i) {
      std::snprintf(key, sizeof(key), "%056x%08x", 0u, i);
      text += key;
      text += " client-";
      text += std::to_string(i);
      text += '\n';
    }
    const FingerprintTable table = FingerprintTable::parse(text, "big");
    CHECK(table.size() == 100'000);
    std::snprintf(key, sizeof(key), "%056X%08X", 0u, 99'999u);
    CHECK(identityOf(table, key) == "client-99999");
    std::snprintf(key, sizeof(key), "%056X%08X", 0u, 100'000u);
    CHECK(table.find(key) == nullptr);
  }

  TEST_CASE("load: the fixture table") {
    const FingerprintTable table =
        FingerprintTable::load(fs::path(CERTRELAY_TEST_DATA_DIR) / "config" / "relay_clientcerts");
    CHECK(table.size() == 2);
    CHECK(identityOf(table, kCert1) == "client1");
    CHECK(identityOf(table, kPkey2) == "client2-pkey");
  }

  TEST_CASE("load: errors name the file") {
    TempDir dir;
    const fs::path missing = dir.path() / "absent";
    CHECK_THROWS_WITH_AS(FingerprintTable::load(missing),
                         (missing.string() + ": cannot read: No such file or directory").c_str(),
                         PolicyError);
    CHECK_THROWS_WITH_AS(FingerprintTable::load(dir.path()),
                         (dir.path().string() + ": cannot read: Is a directory").c_str(),
                         PolicyError);
    const fs::path bad = dir.path() / "bad";
    std::ofstream(bad) << kCert1 << " ok\nnope\n";
    CHECK_THROWS_WITH_AS(FingerprintTable::load(bad),
                         (bad.string() + ":2: bad fingerprint 'nope'").c_str(), PolicyError);
  }

  TEST_CASE("local domains: exact names, case-insensitive, one trailing dot ignored") {
    const LocalDomains domains({"local.example", "Other.EXAMPLE."});
    CHECK(domains.contains("local.example"));
    CHECK(domains.contains("LOCAL.Example"));
    CHECK(domains.contains("local.example."));
    CHECK(domains.contains("other.example"));
    CHECK_FALSE(domains.contains("local.example.."));
    CHECK_FALSE(domains.contains("sub.local.example"));  // exact names do not cover subdomains
    CHECK_FALSE(domains.contains("badlocal.example"));
    CHECK_FALSE(domains.contains("local.example.net"));
    CHECK_FALSE(domains.contains(""));
    CHECK_FALSE(domains.contains("."));
  }

  TEST_CASE("local domains: .example.com means subdomains only") {
    const LocalDomains domains({".Example.com"});
    CHECK(domains.contains("a.example.com"));
    CHECK(domains.contains("A.B.EXAMPLE.COM."));
    CHECK_FALSE(domains.contains("example.com"));
    CHECK_FALSE(domains.contains(".example.com"));
    CHECK_FALSE(domains.contains("badexample.com"));
    CHECK_FALSE(domains.contains("example.com.evil"));
  }

  TEST_CASE("local domains: address literals match as written, any case") {
    const LocalDomains domains({"[192.0.2.1]", "[IPv6:2001:db8::1]"});
    CHECK(domains.contains("[192.0.2.1]"));
    CHECK(domains.contains("[ipv6:2001:DB8::1]"));
    CHECK_FALSE(domains.contains("[192.0.2.10]"));
    CHECK_FALSE(domains.contains("192.0.2.1"));
  }

  TEST_CASE("local domains: empty or lone-dot patterns match nothing") {
    const LocalDomains domains({"", ".", "..."});
    CHECK_FALSE(domains.contains("example.com"));
    CHECK_FALSE(domains.contains("a"));
    CHECK_FALSE(LocalDomains({}).contains("example.com"));
  }

  TEST_CASE("trustedIdentity: by certificate fingerprint") {
    Policy policy;
    policy.table = FingerprintTable::parse(kCert1 + " client1\n", "t");
    CHECK(policy.trustedIdentity({kCert1, kPkey2}) == "client1");
    CHECK(policy.trustedIdentity({kCert1, ""}) == "client1");
  }

  TEST_CASE("trustedIdentity: by public-key fingerprint") {
    Policy policy;
    policy.table = FingerprintTable::parse(kPkey2 + " client2-pkey\n", "t");
    CHECK(policy.trustedIdentity({kCert1, kPkey2}) == "client2-pkey");
    CHECK(policy.trustedIdentity({"", kPkey2}) == "client2-pkey");
    // The same fingerprint offered as a certificate digest matches too: the table does not say
    // which kind a key is, just as in Postfix.
    CHECK(policy.trustedIdentity({kPkey2, ""}) == "client2-pkey");
  }

  TEST_CASE("trustedIdentity: certificate entry wins over public-key entry") {
    Policy policy;
    policy.table = FingerprintTable::parse(kPkey2 + " by-key\n" + kCert1 + " by-cert\n", "t");
    CHECK(policy.trustedIdentity({kCert1, kPkey2}) == "by-cert");
  }

  TEST_CASE("trustedIdentity: unlisted, absent or malformed keys are untrusted") {
    Policy policy;
    policy.table = FingerprintTable::parse(kCert1 + " client1\n", "t");
    CHECK_FALSE(policy.trustedIdentity({}).has_value());
    CHECK_FALSE(policy.trustedIdentity({kPkey2, kPkey2}).has_value());
    CHECK_FALSE(policy.trustedIdentity({"zz", "not hex"}).has_value());
    CHECK_FALSE(Policy{}.trustedIdentity({kCert1, kPkey2}).has_value());
  }

  TEST_CASE("trustedIdentity: non-canonical input spelling still matches") {
    Policy policy;
    policy.table = FingerprintTable::parse(kCert1 + " client1\n", "t");
    CHECK(policy.trustedIdentity({lower(kCert1Colons), ""}) == "client1");
  }

  TEST_CASE("table: each digest accepts fingerprints of its own size") {
    using config::FingerprintDigest;
    const FingerprintTable md5 =
        FingerprintTable::parse(colonKey(16) + " old-md5\n", "t", FingerprintDigest::Md5);
    CHECK(md5.size() == 1);
    CHECK(md5.digest() == FingerprintDigest::Md5);
    CHECK(identityOf(md5, plainKey(16)) == "old-md5");
    const FingerprintTable sha1 =
        FingerprintTable::parse(lower(colonKey(20, "CD")) + "\n", "t", FingerprintDigest::Sha1);
    CHECK(sha1.size() == 1);
    CHECK(sha1.digest() == FingerprintDigest::Sha1);
    CHECK(identityOf(sha1, plainKey(20, "CD")) == colonKey(20, "CD"));
    const FingerprintTable sha256 =
        FingerprintTable::parse(kCert1 + " c\n", "t", FingerprintDigest::Sha256);
    CHECK(sha256.size() == 1);
    CHECK(sha256.digest() == FingerprintDigest::Sha256);
    CHECK(FingerprintTable::parse(kCert1 + " c\n", "t").digest() == FingerprintDigest::Sha256);
  }

  TEST_CASE("table error: a fingerprint of another digest's size names line and digest") {
    using config::FingerprintDigest;
    CHECK(
        parseError("# sha256 table\n" + colonKey(20) + " from-sha1\n", FingerprintDigest::Sha256) ==
        "relay_clientcerts:2: fingerprint has 20 bytes, policy.digest sha256 needs 32");
    CHECK(parseError(colonKey(16) + "\n", FingerprintDigest::Sha256) ==
          "relay_clientcerts:1: fingerprint has 16 bytes, policy.digest sha256 needs 32");
    for (std::size_t bytes : {28u, 48u, 64u}) {
      CAPTURE(bytes);
      CHECK(parseError(std::string(bytes * 2, 'a') + " x\n", FingerprintDigest::Sha256) ==
            "relay_clientcerts:1: fingerprint has " + std::to_string(bytes) +
                " bytes, policy.digest sha256 needs 32");
    }
    CHECK(parseError(colonKey(20) + " ok\n\n" + kCert1 + " new\n", FingerprintDigest::Sha1) ==
          "relay_clientcerts:3: fingerprint has 32 bytes, policy.digest sha1 needs 20");
    CHECK(parseError(colonKey(20) + "\n", FingerprintDigest::Md5) ==
          "relay_clientcerts:1: fingerprint has 20 bytes, policy.digest md5 needs 16");
    CHECK(parseError(colonKey(16) + "\n", FingerprintDigest::Sha1) ==
          "relay_clientcerts:1: fingerprint has 16 bytes, policy.digest sha1 needs 20");
    // The default digest is SHA-256.
    CHECK(parseError(colonKey(20) + "\n") ==
          "relay_clientcerts:1: fingerprint has 20 bytes, policy.digest sha256 needs 32");
    // Malformed text is still reported as such, not as a size mismatch.
    CHECK(parseError("zz\n", FingerprintDigest::Md5) ==
          "relay_clientcerts:1: bad fingerprint 'zz'");
  }

  TEST_CASE("load: with a digest, errors name the file") {
    TempDir dir;
    const fs::path file = dir.path() / "relay_clientcerts.sha1";
    std::ofstream(file) << "# copied from an old Postfix\n" << lower(colonKey(20)) << " legacy\n";
    const FingerprintTable table = FingerprintTable::load(file, config::FingerprintDigest::Sha1);
    CHECK(table.size() == 1);
    CHECK(table.digest() == config::FingerprintDigest::Sha1);
    CHECK_THROWS_WITH_AS(
        FingerprintTable::load(file),
        (file.string() + ":2: fingerprint has 20 bytes, policy.digest sha256 needs 32").c_str(),
        PolicyError);
    CHECK_THROWS_WITH_AS(
        FingerprintTable::load(file, config::FingerprintDigest::Md5),
        (file.string() + ":2: fingerprint has 20 bytes, policy.digest md5 needs 16").c_str(),
        PolicyError);
  }

  TEST_CASE("contentHash: SHA-256 in lower-case hex") {
    CHECK(FingerprintTable::contentHash("") ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(FingerprintTable::contentHash("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(FingerprintTable::contentHash(std::string_view("a\0b", 3)) !=
          FingerprintTable::contentHash("a"));
  }

  TEST_CASE("hash: the table remembers the hash of the exact bytes it was parsed from") {
    const std::string text = kCert1 + " client1\n";
    const FingerprintTable table = FingerprintTable::parse(text, "t");
    CHECK(table.hash() == FingerprintTable::contentHash(text));
    CHECK(table.hash().size() == 64);
    // Same entries, different bytes (a comment): a different hash. Change detection compares
    // file contents, not entries.
    CHECK(FingerprintTable::parse("# c\n" + text, "t").hash() != table.hash());
    CHECK(FingerprintTable::parse(text, "other-origin").hash() == table.hash());
    CHECK(FingerprintTable{}.hash() == FingerprintTable::contentHash(""));
    CHECK(FingerprintTable::parse("", "t").hash() == FingerprintTable::contentHash(""));
  }

  TEST_CASE("hash: load hashes the file's bytes") {
    const fs::path file = fs::path(CERTRELAY_TEST_DATA_DIR) / "config" / "relay_clientcerts";
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE_FALSE(bytes.empty());
    CHECK(FingerprintTable::load(file).hash() == FingerprintTable::contentHash(bytes));
  }

  TEST_CASE("relayAllowed: a listed certificate fingerprint, with its identity") {
    Policy policy;
    policy.table = FingerprintTable::parse(kCert1 + " client1\n", "t");
    std::string identity = "stale";
    CHECK(policy.relayAllowed({kCert1, kPkey2}, "203.0.113.9", &identity));
    CHECK(identity == "client1");
    CHECK(policy.relayAllowed({kCert1, ""}, "", nullptr));
  }

  TEST_CASE("relayAllowed: a listed public-key fingerprint, with its identity") {
    Policy policy;
    policy.table = FingerprintTable::parse(kPkey2 + " client2-pkey\n", "t");
    std::string identity;
    CHECK(policy.relayAllowed({kCert1, kPkey2}, "203.0.113.9", &identity));
    CHECK(identity == "client2-pkey");
  }

  TEST_CASE("relayAllowed: the certificate entry wins over the public-key entry") {
    Policy policy;
    policy.table = FingerprintTable::parse(kPkey2 + " by-key\n" + kCert1 + " by-cert\n", "t");
    std::string identity;
    CHECK(policy.relayAllowed({kCert1, kPkey2}, "192.0.2.7", &identity));
    CHECK(identity == "by-cert");
  }

  TEST_CASE("relayAllowed: a client in relay_networks, without certificate and identity") {
    Policy policy;
    policy.relayNetworks = NetworkList::parse({"192.0.2.0/24", "2001:db8::/32"});
    std::string identity = "stale";
    CHECK(policy.relayAllowed({}, "192.0.2.7", &identity));
    CHECK(identity.empty());
    CHECK(policy.relayAllowed({}, "::ffff:192.0.2.8", &identity));
    CHECK(policy.relayAllowed({}, "2001:db8::25", &identity));
    CHECK(policy.relayAllowed({kCert1, kPkey2}, "192.0.2.7", &identity));  // unlisted cert
    CHECK(identity.empty());
    CHECK(policy.relayAllowed({}, "192.0.2.7", nullptr));
  }

  TEST_CASE("relayAllowed: a listed certificate from a relay network keeps its identity") {
    Policy policy;
    policy.table = FingerprintTable::parse(kCert1 + " client1\n", "t");
    policy.relayNetworks = NetworkList::parse({"192.0.2.0/24"});
    std::string identity;
    CHECK(policy.relayAllowed({kCert1, ""}, "192.0.2.7", &identity));
    CHECK(identity == "client1");
  }

  TEST_CASE("relayAllowed: neither listed nor in a relay network") {
    Policy policy;
    policy.table = FingerprintTable::parse(kCert1 + " client1\n", "t");
    policy.relayNetworks = NetworkList::parse({"192.0.2.0/24"});
    std::string identity = "stale";
    CHECK_FALSE(policy.relayAllowed({kPkey2, kPkey2}, "198.51.100.7", &identity));
    CHECK(identity.empty());
    CHECK_FALSE(policy.relayAllowed({}, "192.0.3.1", &identity));
    CHECK_FALSE(policy.relayAllowed({}, "", &identity));
    CHECK_FALSE(policy.relayAllowed({}, "unknown", &identity));
    CHECK_FALSE(policy.relayAllowed({}, "192.0.2.7:25", nullptr));
    CHECK_FALSE(Policy{}.relayAllowed({kCert1, kPkey2}, "192.0.2.7", &identity));
    CHECK(identity.empty());
  }

  TEST_CASE("buildPolicy: table file, digest, local domains and relay networks") {
    config::Policy settings;
    settings.fingerprints = fs::path(CERTRELAY_TEST_DATA_DIR) / "config" / "relay_clientcerts";
    settings.localDomains = {"local.example"};
    settings.relayNetworks = {"192.0.2.0/24"};
    const PolicyPtr policy = buildPolicy(settings);
    REQUIRE(policy != nullptr);
    CHECK(policy->table.size() == 2);
    CHECK(policy->digest == config::FingerprintDigest::Sha256);
    CHECK(policy->trustedIdentity({kCert1, ""}) == "client1");
    CHECK(policy->localDomains.contains("local.example"));
    CHECK_FALSE(policy->localDomains.contains("remote.example"));
    CHECK(policy->relayNetworks.contains("192.0.2.7"));
    CHECK_FALSE(policy->relayNetworks.contains("192.0.3.7"));
  }

  TEST_CASE("buildPolicy: the table is read with policy.digest") {
    TempDir dir;
    config::Policy settings;
    settings.fingerprints = dir.path() / "md5";
    settings.digest = config::FingerprintDigest::Md5;
    std::ofstream(settings.fingerprints) << colonKey(16) << " legacy\n";
    const PolicyPtr policy = buildPolicy(settings);
    CHECK(policy->digest == config::FingerprintDigest::Md5);
    CHECK(policy->table.digest() == config::FingerprintDigest::Md5);
    std::string identity;
    CHECK(policy->relayAllowed({colonKey(16), ""}, "", &identity));
    CHECK(identity == "legacy");
    // The same file under the default digest is refused, naming file and line.
    settings.digest = config::FingerprintDigest::Sha256;
    CHECK_THROWS_WITH_AS(buildPolicy(settings),
                         (settings.fingerprints.string() +
                          ":1: fingerprint has 16 bytes, policy.digest sha256 needs 32")
                             .c_str(),
                         PolicyError);
  }

  TEST_CASE("buildPolicy: no table file trusts nobody, a missing file throws") {
    config::Policy settings;
    settings.localDomains = {".local.example"};
    const PolicyPtr policy = buildPolicy(settings);
    CHECK(policy->table.size() == 0);
    CHECK(policy->relayNetworks.empty());
    CHECK(policy->localDomains.contains("a.local.example"));
    CHECK_FALSE(policy->relayAllowed({kCert1, kPkey2}, "127.0.0.1", nullptr));
    settings.fingerprints = "/nonexistent/certrelay/relay_clientcerts";
    CHECK_THROWS_AS(buildPolicy(settings), PolicyError);
  }

  TEST_CASE("buildPolicy: a bad relay network throws") {
    config::Policy settings;
    settings.relayNetworks = {"192.0.2.0/24", "192.0.2.1/24"};
    CHECK_THROWS_WITH_AS(buildPolicy(settings),
                         "policy.relay_networks[1]: bad CIDR '192.0.2.1/24': host bits set beyond "
                         "/24 (use '192.0.2.0/24')",
                         PolicyError);
  }

  TEST_CASE("buildPolicy with a parsed table: uses that table, not the file") {
    config::Policy settings;
    settings.fingerprints = "/nonexistent/never/read";
    settings.localDomains = {"local.example"};
    settings.relayNetworks = {"2001:db8::/32"};
    const PolicyPtr policy =
        buildPolicy(settings, FingerprintTable::parse(kPkey2 + " reloaded\n", "reload"));
    CHECK(policy->table.size() == 1);
    CHECK(policy->trustedIdentity({"", kPkey2}) == "reloaded");
    CHECK(policy->table.hash() == FingerprintTable::contentHash(kPkey2 + " reloaded\n"));
    CHECK(policy->localDomains.contains("local.example"));
    CHECK(policy->relayNetworks.contains("2001:db8::1"));
  }

  TEST_CASE("buildPolicy with a parsed table: a table of another digest is refused") {
    config::Policy settings;
    settings.digest = config::FingerprintDigest::Sha1;
    CHECK_THROWS_WITH_AS(buildPolicy(settings, FingerprintTable::parse(kCert1 + "\n", "t")),
                         "fingerprint table parsed as sha256, policy.digest is sha1", PolicyError);
    // An empty table matches nothing under any digest: accepted.
    CHECK(buildPolicy(settings, FingerprintTable{})->table.size() == 0);
    CHECK(buildPolicy(settings, FingerprintTable::parse(colonKey(20) + "\n", "t",
                                                        config::FingerprintDigest::Sha1))
              ->table.size() == 1);
  }

}  // TEST_SUITE

}  // namespace certrelay::policy
