// Fuzz target: the relay_clientcerts fingerprint table (policy::FingerprintTable::parse) and
// policy::normalizeFingerprint.
//
// Input: byte 0 = digest (b % 3: sha256, sha1, md5), then the table file's text.
//
// Oracles:
//  * parse() either returns a table or throws PolicyError, nothing else; the error names the
//    origin and holds only printable ASCII (it goes to the log);
//  * it throws exactly when a validator written here from the format's rules (relay_policy.h)
//    finds a bad line, and otherwise holds exactly the distinct keys of the file, each canonical
//    (upper-case hex, 2 * digest size long) and mapped to the identity of its first line;
//    a listed key is trusted through Policy::trustedIdentity in lower case with colons too;
//  * normalizeFingerprint agrees with the independent normaliser on the first line's text.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "policy/error.h"
#include "policy/relay_policy.h"
#include "tests/fuzz/fuzz_support.h"

namespace certrelay::policy {
namespace {

constexpr std::string_view kOrigin = "fuzz.table";

bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// "HH:HH:...:HH" or "HHHH...", any case, of an md5..sha512 size, to upper-case hex.
std::optional<std::string> normalize(std::string_view text) {
  std::string hex;
  if (text.find(':') != std::string_view::npos) {
    // Groups of exactly two digits, separated by single colons.
    if ((text.size() + 1) % 3 != 0) {
      return std::nullopt;
    }
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (i % 3 == 2 ? text[i] != ':' : !isHex(text[i])) {
        return std::nullopt;
      }
      if (i % 3 != 2) {
        hex.push_back(fuzz::toUpperAscii(text[i]));
      }
    }
  } else {
    if (text.size() % 2 != 0) {
      return std::nullopt;
    }
    for (char c : text) {
      if (!isHex(c)) {
        return std::nullopt;
      }
      hex.push_back(fuzz::toUpperAscii(c));
    }
  }
  switch (hex.size() / 2) {
    case 16:
    case 20:
    case 28:
    case 32:
    case 48:
    case 64:
      return hex;
    default:
      return std::nullopt;
  }
}

bool isBlank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isBlank(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isBlank(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

std::string colonForm(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    if (i != 0) {
      out.push_back(':');
    }
    out.append(hex, i, 2);
  }
  return out;
}

// The table the file must give (canonical key -> identity), or nullopt when a line is bad.
std::optional<std::map<std::string, std::string>> expectedTable(std::string_view text,
                                                                std::size_t digestBytes) {
  std::map<std::string, std::string> table;
  std::size_t pos = 0;
  while (pos < text.size()) {
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
    if (line.empty() || line.front() == '#') {
      continue;
    }
    std::size_t keyEnd = 0;
    while (keyEnd < line.size() && !isBlank(line[keyEnd])) {
      ++keyEnd;
    }
    const auto key = normalize(line.substr(0, keyEnd));
    if (!key || key->size() != 2 * digestBytes) {
      return std::nullopt;
    }
    const std::string_view identity = trim(line.substr(keyEnd));
    if (identity.size() > 255) {
      return std::nullopt;
    }
    for (char c : identity) {
      const auto u = static_cast<unsigned char>(c);
      if (c != ' ' && (u < 0x21 || u > 0x7e)) {
        return std::nullopt;
      }
    }
    table.emplace(*key, identity.empty() ? colonForm(*key) : std::string(identity));
  }
  return table;
}

std::string lowerColonForm(const std::string& hex) {
  return fuzz::toLowerAscii(colonForm(hex));
}

void checkTable(std::string_view text, config::FingerprintDigest digest) {
  const std::size_t digestBytes = config::digestSize(digest);
  const auto expected = expectedTable(text, digestBytes);
  std::optional<FingerprintTable> table;
  try {
    table = FingerprintTable::parse(text, kOrigin, digest);
  } catch (const PolicyError& error) {
    const std::string_view what = error.what();
    FUZZ_CHECK(what.rfind(std::string(kOrigin) + ":", 0) == 0);
    for (char c : what) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK(u >= 0x20 && u <= 0x7e);
    }
    FUZZ_CHECK(!expected.has_value());  // refused only what the format refuses
    return;
  }
  FUZZ_CHECK(expected.has_value());
  FUZZ_CHECK(table->digest() == digest);
  FUZZ_CHECK(table->hash() == FingerprintTable::contentHash(text));
  FUZZ_CHECK(table->hash().size() == 64);
  FUZZ_CHECK(table->size() == expected->size());
  Policy policy;
  policy.table = *table;
  policy.digest = digest;
  std::size_t trustChecks = 0;
  for (const auto& [key, identity] : *expected) {
    FUZZ_CHECK(key.size() == 2 * digestBytes);
    const std::string* found = table->find(key);
    FUZZ_CHECK(found != nullptr);
    FUZZ_CHECK(*found == identity);
    FUZZ_CHECK(!found->empty() && found->size() <= 255);
    if (trustChecks++ < 4) {
      const auto viaCert = policy.trustedIdentity(CertificateKeys{lowerColonForm(key), ""});
      FUZZ_CHECK(viaCert.has_value() && *viaCert == identity);
      const auto viaKey = policy.trustedIdentity(CertificateKeys{"", fuzz::toLowerAscii(key)});
      FUZZ_CHECK(viaKey.has_value() && *viaKey == identity);
    }
  }
}

}  // namespace
}  // namespace certrelay::policy

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace certrelay;
  if (size < 1) {
    return 0;
  }
  static constexpr config::FingerprintDigest kDigests[] = {config::FingerprintDigest::Sha256,
                                                           config::FingerprintDigest::Sha1,
                                                           config::FingerprintDigest::Md5};
  const config::FingerprintDigest digest = kDigests[data[0] % 3];
  const std::string_view text = fuzz::asText(data + 1, size - 1);

  policy::checkTable(text, digest);

  const std::string_view first = text.substr(0, text.find('\n'));
  const auto normalized = policy::normalizeFingerprint(first);
  FUZZ_CHECK(normalized == policy::normalize(first));
  if (normalized) {
    FUZZ_CHECK(policy::normalizeFingerprint(*normalized) == normalized);
    FUZZ_CHECK(policy::normalizeFingerprint(policy::colonForm(*normalized)) == normalized);
  }
  return 0;
}
