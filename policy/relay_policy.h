#pragma once
// The relay decision: who may relay, and which recipients are local.
//
// Security role: this is the open-relay boundary. A client is trusted only when the SHA-256
// fingerprint of its certificate, or of its public key (DER SubjectPublicKeyInfo), is listed.
// Anyone may send to a local domain. Everything else is refused with
// `454 4.7.1 <rcpt>: Relay access denied`. No libuv, no I/O except loading the table file.
//
// A Policy is immutable once built; the proxy shares it as std::shared_ptr<const Policy> and
// reads the current one at every RCPT (a reload swaps the pointer).

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace certrelay::policy {

// `file:line: reason`.
class PolicyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Canonical form of a fingerprint: upper-case hex, no colons ("3EF837..."). Accepts upper or
// lower case, with or without colons between byte pairs. Returns nullopt for anything else
// (odd length, non-hex, misplaced colons), and for lengths that are no digest size (16, 20, 28,
// 32, 48 or 64 bytes: md5 .. sha512), since a truncated copy could never match.
std::optional<std::string> normalizeFingerprint(std::string_view text);

// Postfix `relay_clientcerts` table: `FINGERPRINT [identity...]` lines, `#` comments, blank
// lines, surrounding white space ignored. Identity = the rest of the line, trimmed; when empty,
// the fingerprint as written in canonical colon form (AA:BB:...). Duplicate keys: the first entry wins
// (documented in README), like a Postfix table built by postmap.
class FingerprintTable {
 public:
  // Throws PolicyError("<origin>:<line>: <reason>") on a malformed line.
  static FingerprintTable parse(std::string_view text, std::string_view origin);
  static FingerprintTable load(const std::filesystem::path& file);

  // `fingerprint` in canonical form (see normalizeFingerprint). nullptr when absent.
  const std::string* find(std::string_view canonicalFingerprint) const;
  std::size_t size() const { return entries_.size(); }

 private:
  std::unordered_map<std::string, std::string> entries_;
};

// Local domains: exact names, or ".example.com" for every subdomain of example.com (not
// example.com itself). Case-insensitive; one trailing dot on the queried domain is ignored.
class LocalDomains {
 public:
  explicit LocalDomains(const std::vector<std::string>& patterns);
  bool contains(std::string_view domain) const;

 private:
  std::vector<std::string> exact_;     // lower case
  std::vector<std::string> suffixes_;  // lower case, with the leading dot
};

// What the TLS layer learned about the client certificate (hex canonical fingerprints).
struct CertificateKeys {
  std::string certFingerprint;  // SHA-256 over the DER certificate, canonical hex; "" if none
  std::string pkeyFingerprint;  // SHA-256 over the DER SubjectPublicKeyInfo; "" if none
};

struct Policy {
  FingerprintTable table;
  LocalDomains localDomains{{}};

  // The identity of a trusted client, or nullopt. Certificate fingerprint first, then the
  // public-key fingerprint (Postfix <= 3.8 order).
  std::optional<std::string> trustedIdentity(const CertificateKeys& keys) const;
};

using PolicyPtr = std::shared_ptr<const Policy>;

// Builds a Policy from the config's [policy] section (loads the table file if one is named).
// Throws PolicyError / config::ConfigError.
PolicyPtr buildPolicy(const std::filesystem::path& fingerprintsFile,
                      const std::vector<std::string>& localDomains);

}  // namespace certrelay::policy
