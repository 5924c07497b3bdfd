// Fingerprint table, local domains and the trust lookup. The table is read in Postfix's
// relay_clientcerts format so that an existing file can be reused unchanged.

#include "policy/relay_policy.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <openssl/evp.h>

#include "common/text.h"
#include "config/read_file.h"

namespace certrelay::policy {

namespace {

// Digest sizes a fingerprint can have: md5, sha1, sha224, sha256, sha384, sha512. Any other
// length is a truncated or mangled copy that could never match, so it is refused at load time
// instead of sitting silently in the table.
constexpr std::size_t kDigestSizes[] = {16, 20, 28, 32, 48, 64};

// An identity ends up in XCLIENT LOGIN= and in log lines; keep it well inside one SMTP line.
constexpr std::size_t kMaxIdentity = 255;

bool isBlank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && isBlank(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && isBlank(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

// Untrusted text quoted in an error message: kept short, anything unprintable shown as '?'.
constexpr std::size_t kMaxQuoted = 80;

std::string sanitize(std::string_view raw) {
  return text::sanitizePrintable(raw, kMaxQuoted);
}

// Lower case, one trailing dot removed: the form both patterns and queries are compared in.
std::string normalizeDomain(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') {
    domain.remove_suffix(1);
  }
  return text::toLower(domain);
}

}  // namespace

std::optional<std::string> normalizeFingerprint(std::string_view written) {
  const bool colons = written.find(':') != std::string_view::npos;
  std::string out;
  out.reserve(written.size());
  std::size_t i = 0;
  while (i < written.size()) {
    // With colons the layout is strictly "HH:HH:...:HH"; a colon anywhere else is refused so
    // that "A:BC" is never read as the byte 0xAB followed by half of another.
    if (colons && i != 0) {
      if (written[i] != ':') {
        return std::nullopt;
      }
      ++i;
    }
    if (i + 1 >= written.size()) {  // half a byte at the end
      return std::nullopt;
    }
    const int high = text::hexValue(written[i]);
    const int low = text::hexValue(written[i + 1]);
    if (high < 0 || low < 0) {
      return std::nullopt;
    }
    text::appendUpperHex(out, static_cast<unsigned char>(high * 16 + low));
    i += 2;
  }
  const std::size_t bytes = out.size() / 2;
  for (std::size_t size : kDigestSizes) {
    if (bytes == size) {
      return out;
    }
  }
  return std::nullopt;
}

FingerprintTable FingerprintTable::parse(std::string_view text, std::string_view origin,
                                         config::FingerprintDigest digest) {
  FingerprintTable table;
  table.digest_ = digest;
  table.hash_ = contentHash(text);
  const std::size_t digestBytes = config::digestSize(digest);
  // A rough count of lines keeps a 100,000-entry table from rehashing a dozen times.
  table.entries_.reserve(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
  std::size_t lineNumber = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++lineNumber;
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    line = trim(line);
    // '#' starts a comment only as the first non-blank character: an identity may contain it.
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const auto where = [&] {
      return std::string(origin) + ":" + std::to_string(lineNumber) + ": ";
    };
    std::size_t keyEnd = 0;
    while (keyEnd < line.size() && !isBlank(line[keyEnd])) {
      ++keyEnd;
    }
    const std::string_view key = line.substr(0, keyEnd);
    auto fingerprint = normalizeFingerprint(key);
    if (!fingerprint) {
      throw PolicyError(where() + "bad fingerprint '" + sanitize(key) + "'");
    }
    // A well-formed fingerprint of another digest would sit in the table matching nothing: the
    // operator would believe a client is listed while it is refused. Say so at load time.
    if (fingerprint->size() / 2 != digestBytes) {
      throw PolicyError(where() + "fingerprint has " + std::to_string(fingerprint->size() / 2) +
                        " bytes, policy.digest " + std::string(config::digestKeyword(digest)) +
                        " needs " + std::to_string(digestBytes));
    }
    const std::string_view rest = trim(line.substr(keyEnd));
    for (char c : rest) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte != ' ' && (byte < 0x21 || byte > 0x7e)) {
        throw PolicyError(where() + "identity '" + sanitize(rest) +
                          "' must be printable ASCII (spaces allowed inside)");
      }
    }
    if (rest.size() > kMaxIdentity) {
      throw PolicyError(where() + "identity longer than " + std::to_string(kMaxIdentity) +
                        " bytes");
    }
    std::string identity = rest.empty() ? text::withColons(*fingerprint) : std::string(rest);
    // emplace keeps the existing entry: the first line for a key wins, as with postmap.
    table.entries_.emplace(std::move(*fingerprint), std::move(identity));
  }
  return table;
}

FingerprintTable FingerprintTable::load(const std::filesystem::path& file,
                                        config::FingerprintDigest digest) {
  std::string text;
  std::string error;
  if (!config::readWholeFile(file, text, error)) {
    throw PolicyError(error);
  }
  return parse(text, file.string(), digest);
}

std::string FingerprintTable::contentHash(std::string_view bytes) {
  // EVP_Q_digest fetches SHA-256 per call; a reload happens a few times a day, so that is fine.
  unsigned char md[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  if (EVP_Q_digest(nullptr, "SHA256", nullptr, bytes.data(), bytes.size(), md, &len) != 1) {
    throw PolicyError("SHA-256 is not available from OpenSSL");
  }
  return text::lowerHex(std::span<const unsigned char>(md, len));
}

const std::string* FingerprintTable::find(std::string_view canonicalFingerprint) const {
  const auto it = entries_.find(std::string(canonicalFingerprint));
  return it == entries_.end() ? nullptr : &it->second;
}

LocalDomains::LocalDomains(const std::vector<std::string>& patterns) {
  for (const std::string& pattern : patterns) {
    std::string normalized = normalizeDomain(pattern);
    if (normalized.empty() || normalized == ".") {
      continue;  // would otherwise match nothing or, as a suffix, everything
    }
    if (normalized.front() == '.') {
      suffixes_.push_back(std::move(normalized));
    } else {
      exact_.push_back(std::move(normalized));
    }
  }
}

bool LocalDomains::contains(std::string_view domain) const {
  const std::string name = normalizeDomain(domain);
  if (name.empty()) {
    return false;
  }
  for (const std::string& exact : exact_) {
    if (name == exact) {
      return true;
    }
  }
  // ".example.com" matches "a.example.com" but not "example.com" nor "badexample.com": the
  // suffix carries its leading dot, and the name must have at least one label before it.
  for (const std::string& suffix : suffixes_) {
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> Policy::trustedIdentity(const CertificateKeys& keys) const {
  // Certificate first, then public key: the Postfix <= 3.8 order. The TLS layer hands over the
  // canonical form already (checked for free by the first lookup); anything else is normalised
  // so a caller passing lower case or colons cannot make a listed key miss.
  for (const std::string* fingerprint : {&keys.certFingerprint, &keys.pkeyFingerprint}) {
    if (fingerprint->empty()) {
      continue;
    }
    if (const std::string* identity = table.find(*fingerprint)) {
      return *identity;
    }
    const bool alreadyCanonical = std::all_of(fingerprint->begin(), fingerprint->end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
    });
    if (alreadyCanonical) {
      continue;  // the lookup above was the canonical one
    }
    const auto canonical = normalizeFingerprint(*fingerprint);
    if (!canonical) {
      continue;
    }
    if (const std::string* identity = table.find(*canonical)) {
      return *identity;
    }
  }
  return std::nullopt;
}

bool Policy::relayAllowed(const CertificateKeys& keys, std::string_view clientAddr,
                          std::string* identity) const {
  if (identity != nullptr) {
    identity->clear();
  }
  if (auto listed = trustedIdentity(keys)) {
    if (identity != nullptr) {
      *identity = std::move(*listed);
    }
    return true;
  }
  return relayNetworks.contains(clientAddr);
}

PolicyPtr buildPolicy(const config::Policy& settings) {
  FingerprintTable table;
  if (!settings.fingerprints.empty()) {
    table = FingerprintTable::load(settings.fingerprints, settings.digest);
  }
  return buildPolicy(settings, std::move(table));
}

PolicyPtr buildPolicy(const config::Policy& settings, FingerprintTable table) {
  if (table.size() != 0 && table.digest() != settings.digest) {
    throw PolicyError("fingerprint table parsed as " +
                      std::string(config::digestKeyword(table.digest())) + ", policy.digest is " +
                      std::string(config::digestKeyword(settings.digest)));
  }
  auto policy = std::make_shared<Policy>();
  policy->table = std::move(table);
  policy->localDomains = LocalDomains(settings.localDomains);
  policy->relayNetworks = NetworkList::parse(settings.relayNetworks);
  policy->digest = settings.digest;
  return policy;
}

}  // namespace certrelay::policy
