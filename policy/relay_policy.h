#pragma once
// The relay decision: who may relay, and which recipients are local.
//
// Security role: this is the open-relay boundary. A client is trusted only when the fingerprint
// (policy.digest: SHA-256 by default, SHA-1 or MD5) of its certificate, or of its public key
// (DER SubjectPublicKeyInfo), is listed, or when its address is in policy.relay_networks.
// Anyone may send to a local domain. Everything else is refused with
// `454 4.7.1 <rcpt>: Relay access denied`. No libuv, no I/O except loading the table file.
//
// A Policy is immutable once built; the proxy shares it as std::shared_ptr<const Policy> and
// reads the current one at every RCPT (a reload swaps the pointer).

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "policy/error.h"
#include "policy/networks.h"

namespace certrelay::policy {

// Canonical form of a fingerprint: upper-case hex, no colons ("3EF837..."). Accepts upper or
// lower case, with or without colons between byte pairs. Returns nullopt for anything else
// (odd length, non-hex, misplaced colons), and for lengths that are no digest size (16, 20, 28,
// 32, 48 or 64 bytes: md5 .. sha512), since a truncated copy could never match.
std::optional<std::string> normalizeFingerprint(std::string_view text);

// Postfix `relay_clientcerts` table: `FINGERPRINT [identity...]` lines, `#` comments, blank
// lines, surrounding white space ignored. Identity = the rest of the line, trimmed; when empty,
// the fingerprint as written in canonical colon form (AA:BB:...). Duplicate keys: the first entry
// wins (documented in README), like a Postfix table built by postmap. Every fingerprint must have
// the size of `digest` (a SHA-1 entry in a SHA-256 table could never match: refused).
class FingerprintTable {
 public:
  // Throws PolicyError("<origin>:<line>: <reason>") on a malformed line.
  static FingerprintTable parse(
      std::string_view text, std::string_view origin,
      config::FingerprintDigest digest = config::FingerprintDigest::Sha256);
  // Reads the whole file, then parse(). Throws PolicyError("<file>: cannot read: ...") too.
  static FingerprintTable load(
      const std::filesystem::path& file,
      config::FingerprintDigest digest = config::FingerprintDigest::Sha256);

  // SHA-256 of `bytes` as 64 lower-case hex digits (reload change detection and logs).
  static std::string contentHash(std::string_view bytes);

  // `fingerprint` in canonical form (see normalizeFingerprint). nullptr when absent.
  const std::string* find(std::string_view canonicalFingerprint) const;
  std::size_t size() const { return entries_.size(); }
  // contentHash() of the text this table was parsed from; contentHash("") for a default table.
  const std::string& hash() const { return hash_; }
  config::FingerprintDigest digest() const { return digest_; }

 private:
  std::unordered_map<std::string, std::string> entries_;
  // contentHash(""): the SHA-256 of nothing.
  std::string hash_ = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  config::FingerprintDigest digest_ = config::FingerprintDigest::Sha256;
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

// What the TLS layer learned about the client certificate (hex canonical fingerprints, computed
// with policy.digest: tls::Context::create must be given the same digest).
struct CertificateKeys {
  std::string certFingerprint;  // digest of the DER certificate, canonical hex; "" if none
  std::string pkeyFingerprint;  // digest of the DER SubjectPublicKeyInfo; "" if none
};

struct Policy {
  FingerprintTable table;
  LocalDomains localDomains{{}};
  NetworkList relayNetworks;
  config::FingerprintDigest digest = config::FingerprintDigest::Sha256;  // == table.digest()

  // The identity of a listed certificate, or nullopt. Certificate fingerprint first, then the
  // public-key fingerprint (Postfix <= 3.8 order). Ignores relayNetworks.
  std::optional<std::string> trustedIdentity(const CertificateKeys& keys) const;

  // May this client relay? True when its certificate is listed (as trustedIdentity(); *identity
  // = the table's identity), else when `clientAddr` (numeric, as NetworkList::contains) is in
  // relayNetworks (*identity = "": no XCLIENT LOGIN for a network-trusted client). `identity`
  // may be nullptr; when given it is always overwritten.
  bool relayAllowed(const CertificateKeys& keys, std::string_view clientAddr,
                    std::string* identity) const;
};

using PolicyPtr = std::shared_ptr<const Policy>;

// Builds a Policy from the config's [policy] section: loads the table file with settings.digest
// (when one is named), local domains, relay networks. Throws PolicyError.
PolicyPtr buildPolicy(const config::Policy& settings);

// Same with a table already loaded (a reload parses the file off the event loop, then builds
// the snapshot). Throws PolicyError when a non-empty table was parsed with another digest than
// settings.digest (an empty table matches nothing under any digest).
PolicyPtr buildPolicy(const config::Policy& settings, FingerprintTable table);

}  // namespace certrelay::policy
