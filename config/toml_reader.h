// TomlReader: the typed reads every section of the configuration shares (strings, integers in a
// range, durations, readable files, host names, CIDRs), each failing with the file, the line and
// the key. Internal to config/: the sections (config.cpp, backend_config.cpp, limits_config.cpp,
// dns_config.cpp)
// derive from it.
#pragma once

#include <toml++/toml.h>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace certrelay::config {

class TomlReader {
 public:
  explicit TomlReader(const std::filesystem::path& origin);

  // "table", "integer"...: what a node holds, for messages.
  static const char* typeName(const toml::node& node);

  [[noreturn]] void fail(const toml::source_region& where, const std::string& key,
                         const std::string& reason) const;

  // A missing key is reported at the table that should hold it; the root has no useful line.
  [[noreturn]] void failMissing(const toml::table& table, bool isRoot, const std::string& key,
                                const std::string& what) const;

  static std::string join(const std::string& prefix, std::string_view key);

  // Unknown keys are errors: a typo such as `max_recipient` must not leave a default in force.
  void checkKeys(const toml::table& table, const std::string& prefix,
                 std::initializer_list<std::string_view> allowed) const;

  [[noreturn]] void failType(const toml::node& node, const std::string& key,
                             std::string_view expected) const;

  const toml::table* subTable(const toml::table& parent, std::string_view name, bool required,
                              bool parentIsRoot, const std::string& prefix) const;

  std::optional<std::string> getString(const toml::table& table, std::string_view name,
                                       const std::string& prefix) const;

  std::string requireString(const toml::table& table, std::string_view name,
                            const std::string& prefix) const;

  std::optional<bool> getBool(const toml::table& table, std::string_view name,
                              const std::string& prefix) const;

  // An integer within [min, max], or nullopt when absent.
  std::optional<int64_t> getInteger(const toml::table& table, std::string_view name,
                                    const std::string& prefix, int64_t min, int64_t max) const;

  // Integer = seconds; string = "<digits><unit>" with unit ms, s, m or h. Must be > 0.
  // `allowZero`: 0 is a meaningful value (shutdown.delay), not a mistake.
  std::optional<std::chrono::milliseconds> getDuration(const toml::table& table,
                                                       std::string_view name,
                                                       const std::string& prefix,
                                                       bool allowZero = false) const;

  // A size in bytes: an integer (bytes) or a string "<digits>[ ]<unit>" with unit B, KiB, MiB
  // or GiB (k, m, g as nginx writes them mean the same). At most `max` bytes.
  std::optional<std::size_t> getSize(const toml::table& table, std::string_view name,
                                     const std::string& prefix, std::size_t max) const;

  // Resolves against the config file's directory and checks that the file can be opened,
  // so that a typo fails `--check-config` instead of the first TLS handshake.
  std::filesystem::path readableFile(const toml::node& node, const std::string& key,
                                     const std::string& value) const;

  // Names that end up in SMTP lines (greeting, EHLO) must be plain host names: a TOML string
  // can hold "\r\n", which would otherwise let the config inject protocol lines.
  std::string hostName(const toml::node& node, const std::string& key,
                       const std::string& value) const;

  Endpoint endpoint(const toml::table& table, const std::string& prefix, bool allowPortZero) const;

  // The strings of an array-of-strings key; empty when absent.
  // An array of CIDRs, each checked with the parser policy::NetworkList uses, so that
  // --check-config names the line; the strings are kept as written.
  std::vector<std::string> cidrArray(const toml::table& table, std::string_view name,
                                     const std::string& prefix) const;

  std::vector<std::string> stringArray(const toml::table& table, std::string_view name,
                                       const std::string& prefix) const;

  // Picks one of `names` (the config spellings of `values`, same order) for a string key.
  template <class Enum>
  std::optional<Enum> keyword(const toml::table& table, std::string_view name,
                              const std::string& prefix,
                              std::initializer_list<std::pair<const char*, Enum>> choices) const {
    const auto value = getString(table, name, prefix);
    if (!value) {
      return std::nullopt;
    }
    std::string expected;
    for (const auto& [spelling, choice] : choices) {
      if (*value == spelling) {
        return choice;
      }
      expected += std::string(expected.empty() ? "" : ", ") + "\"" + spelling + "\"";
    }
    fail(table.get(name)->source(), join(prefix, name),
         "expected one of " + expected + ", got \"" + *value + "\"");
  }

 protected:
  [[nodiscard]] const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
  std::filesystem::path baseDir_;
};

// [backend] (backend_config.cpp).
void readBackendSection(const TomlReader& reader, const toml::table& root, Config& config);
// [timeouts] and [limits] (limits_config.cpp).
void readLimitsSections(const TomlReader& reader, const toml::table& root, Config& config);
// [dns] (dns_config.cpp).
void readDnsSection(const TomlReader& reader, const toml::table& root, Config& config);

}  // namespace certrelay::config
