#include "config/environment.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not in a header

namespace certrelay::config {
namespace {

constexpr std::string_view kPrefix = "CERTRELAY_";
constexpr std::array<std::string_view, 2> kRootKeys = {"hostname", "workers"};
constexpr std::array<std::string_view, 10> kSections = {
    "backend", "tls", "policy", "timeouts", "limits", "admin", "log", "shutdown", "dns", "metrics"};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The value as TOML when it parses as one ("10", "true", "[\"a\"]"), else as a string.
void setValue(toml::table& table, const std::string& key, const std::string& value) {
  try {
    toml::table parsed = toml::parse("v = " + value);
    if (toml::node* node = parsed.get("v")) {
      node->visit([&](auto& typed) { table.insert_or_assign(key, typed); });
      return;
    }
  } catch (const toml::parse_error&) {
    // not a TOML value: a plain string (30s, mx.example.com)
  }
  table.insert_or_assign(key, value);
}

// "backend.address = 127.0.0.1:25 (CERTRELAY_BACKEND_ADDRESS)"
std::string describe(const std::string& key, const std::string& value, const std::string& name) {
  std::string line = key;
  line.append(" = ").append(value).append(" (").append(name).append(")");
  return line;
}

}  // namespace

EnvironmentVariables certrelayEnvironment() {
  EnvironmentVariables variables;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::size_t equals = text.find('=');
    if (equals != std::string_view::npos && text.substr(0, kPrefix.size()) == kPrefix) {
      variables.emplace_back(std::string(text.substr(0, equals)),
                             std::string(text.substr(equals + 1)));
    }
  }
  return variables;
}

EnvironmentResult applyEnvironment(toml::table& root, const EnvironmentVariables& variables) {
  EnvironmentResult result;
  for (const auto& [name, value] : variables) {
    if (name.size() <= kPrefix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0) {
      continue;
    }
    const std::string rest = lower(std::string_view(name).substr(kPrefix.size()));
    if (std::find(kRootKeys.begin(), kRootKeys.end(), rest) != kRootKeys.end()) {
      setValue(root, rest, value);
      result.applied.push_back(describe(rest, value, name));
      continue;
    }
    const std::size_t underscore = rest.find('_');
    const std::string section = rest.substr(0, underscore);
    if (underscore == std::string::npos || underscore + 1 == rest.size() ||
        std::find(kSections.begin(), kSections.end(), section) == kSections.end()) {
      continue;
    }
    const std::string key = rest.substr(underscore + 1);
    toml::table* table = root.get_as<toml::table>(section);
    if (table == nullptr) {
      root.insert_or_assign(section, toml::table{});
      table = root.get_as<toml::table>(section);
    }
    setValue(*table, key, value);
    std::string dotted = section;
    dotted.append(".").append(key);
    result.applied.push_back(describe(dotted, value, name));
  }
  return result;
}

}  // namespace certrelay::config
