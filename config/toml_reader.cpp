// TomlReader: typed reads with file:line:key messages (see toml_reader.h).

#include "config/toml_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "common/text.h"

namespace certrelay::config {

namespace {

// RFC 8446 caps ticket lifetime at 7 days; no timer in this proxy has a reason to be longer,
// and the cap keeps every millisecond count far from overflow.
constexpr int64_t kMaxDurationMs = 7LL * 24 * 3600 * 1000;

}  // namespace

TomlReader::TomlReader(const std::filesystem::path& origin)
    : origin_(origin.string()),
      baseDir_(std::filesystem::absolute(origin).lexically_normal().parent_path()) {}

const char* TomlReader::typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "nothing";
  }
}

void TomlReader::fail(const toml::source_region& where, const std::string& key,
                      const std::string& reason) const {
  std::string message = origin_;
  if (where.begin.line > 0) {
    message += ":" + std::to_string(where.begin.line);
  }
  message += ": ";
  if (!key.empty()) {
    message += key + ": ";
  }
  throw ConfigError(message + reason);
}

// A missing key is reported at the table that should hold it; the root has no useful line.
void TomlReader::failMissing(const toml::table& table, bool isRoot, const std::string& key,
                             const std::string& what) const {
  fail(isRoot ? toml::source_region{} : table.source(), key, what);
}

std::string TomlReader::join(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

// Unknown keys are errors: a typo such as `max_recipient` must not leave a default in force.
void TomlReader::checkKeys(const toml::table& table, const std::string& prefix,
                           std::initializer_list<std::string_view> allowed) const {
  for (auto&& [key, value] : table) {
    if (std::find(allowed.begin(), allowed.end(), key.str()) == allowed.end()) {
      fail(key.source(), join(prefix, key.str()), "unknown key");
    }
  }
}

void TomlReader::failType(const toml::node& node, const std::string& key,
                          std::string_view expected) const {
  fail(node.source(), key,
       "expected " + std::string(expected) + ", got " + std::string(typeName(node)));
}

const toml::table* TomlReader::subTable(const toml::table& parent, std::string_view name,
                                        bool required, bool parentIsRoot,
                                        const std::string& prefix) const {
  const toml::node* node = parent.get(name);
  const std::string key = join(prefix, name);
  if (node == nullptr) {
    if (required) {
      failMissing(parent, parentIsRoot, key, "missing required table [" + key + "]");
    }
    return nullptr;
  }
  if (!node->is_table()) {
    failType(*node, key, "table");
  }
  return node->as_table();
}

std::optional<std::string> TomlReader::getString(const toml::table& table, std::string_view name,
                                                 const std::string& prefix) const {
  const toml::node* node = table.get(name);
  if (node == nullptr) {
    return std::nullopt;
  }
  if (!node->is_string()) {
    failType(*node, join(prefix, name), "string");
  }
  return node->as_string()->get();
}

std::string TomlReader::requireString(const toml::table& table, std::string_view name,
                                      const std::string& prefix) const {
  auto value = getString(table, name, prefix);
  if (!value) {
    failMissing(table, false, join(prefix, name), "missing required key");
  }
  return *value;
}

std::optional<bool> TomlReader::getBool(const toml::table& table, std::string_view name,
                                        const std::string& prefix) const {
  const toml::node* node = table.get(name);
  if (node == nullptr) {
    return std::nullopt;
  }
  if (!node->is_boolean()) {
    failType(*node, join(prefix, name), "boolean");
  }
  return node->as_boolean()->get();
}

// An integer within [min, max], or nullopt when absent.
std::optional<int64_t> TomlReader::getInteger(const toml::table& table, std::string_view name,
                                              const std::string& prefix, int64_t min,
                                              int64_t max) const {
  const toml::node* node = table.get(name);
  if (node == nullptr) {
    return std::nullopt;
  }
  const std::string key = join(prefix, name);
  if (!node->is_integer()) {
    failType(*node, key, "integer");
  }
  const int64_t value = node->as_integer()->get();
  if (value < min || value > max) {
    std::string range;
    if (max == std::numeric_limits<int64_t>::max()) {
      range = "at least " + std::to_string(min);
    } else {
      range = "from " + std::to_string(min) + " to " + std::to_string(max);
    }
    fail(node->source(), key, "must be " + range + ", got " + std::to_string(value));
  }
  return value;
}

// Integer = seconds; string = "<digits><unit>" with unit ms, s, m or h. Must be > 0.
// `allowZero`: 0 is a meaningful value (shutdown.delay), not a mistake.
std::optional<std::chrono::milliseconds> TomlReader::getDuration(const toml::table& table,
                                                                 std::string_view name,
                                                                 const std::string& prefix,
                                                                 bool allowZero) const {
  const toml::node* node = table.get(name);
  if (node == nullptr) {
    return std::nullopt;
  }
  const std::string key = join(prefix, name);
  const char* const format = "expected a duration such as 30, \"500ms\", \"30s\", \"5m\" or \"1h\"";
  int64_t ms = 0;
  if (node->is_integer()) {
    const int64_t seconds = node->as_integer()->get();
    if (seconds < 0 || (seconds == 0 && !allowZero)) {
      fail(node->source(), key, allowZero ? "must not be negative" : "must be greater than 0");
    }
    ms = seconds > kMaxDurationMs / 1000 ? kMaxDurationMs + 1 : seconds * 1000;
  } else if (node->is_string()) {
    const std::string& text = node->as_string()->get();
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
      ++digits;
    }
    const std::string unit = text.substr(digits);
    int64_t scale = 0;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = int64_t{60} * 1000;
    } else if (unit == "h") {
      scale = int64_t{3600} * 1000;
    }
    if (digits == 0 || scale == 0) {
      fail(node->source(), key, std::string(format) + ", got \"" + text + "\"");
    }
    // Twelve digits are already far beyond the cap; stop before stoll could overflow.
    if (digits > 12) {
      ms = kMaxDurationMs + 1;
    } else {
      const int64_t count = std::stoll(text.substr(0, digits));
      ms = count > kMaxDurationMs / scale ? kMaxDurationMs + 1 : count * scale;
    }
    if (ms == 0 && !allowZero) {
      fail(node->source(), key, "must be greater than 0");
    }
  } else {
    fail(node->source(), key, std::string(format) + ", got " + std::string(typeName(*node)));
  }
  if (ms > kMaxDurationMs) {
    fail(node->source(), key, "must be at most 168h (7 days)");
  }
  return std::chrono::milliseconds(ms);
}

namespace {

// The multiplier of a size unit ("MiB"), or 0 for one we do not know.
std::uint64_t sizeUnit(std::string_view unit) {
  static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
      {"", 1},           {"B", 1},          {"KiB", 1ULL << 10},
      {"k", 1ULL << 10}, {"K", 1ULL << 10}, {"MiB", 1ULL << 20},
      {"m", 1ULL << 20}, {"M", 1ULL << 20}, {"GiB", 1ULL << 30},
      {"g", 1ULL << 30}, {"G", 1ULL << 30}};
  for (const auto& [name, scale] : kUnits) {
    if (unit == name) {
      return scale;
    }
  }
  return 0;
}

}  // namespace

std::optional<std::size_t> TomlReader::getSize(const toml::table& table, std::string_view name,
                                               const std::string& prefix, std::size_t max) const {
  const toml::node* node = table.get(name);
  if (node == nullptr) {
    return std::nullopt;
  }
  const std::string key = join(prefix, name);
  const char* const format = "expected a size such as 16777216, \"512KiB\", \"16MiB\" or \"1GiB\"";
  std::uint64_t bytes = 0;
  if (node->is_integer()) {
    const int64_t value = node->as_integer()->get();
    if (value < 0) {
      fail(node->source(), key, "must not be negative");
    }
    bytes = static_cast<std::uint64_t>(value);
  } else if (node->is_string()) {
    const std::string& text = node->as_string()->get();
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
      ++digits;
    }
    std::string_view unit = std::string_view(text).substr(digits);
    if (!unit.empty() && unit.front() == ' ') {
      unit.remove_prefix(1);
    }
    const std::uint64_t scale = sizeUnit(unit);
    if (digits == 0 || scale == 0 || (unit.empty() && digits != text.size())) {
      fail(node->source(), key, std::string(format) + ", got \"" + text + "\"");
    }
    // Nineteen digits could overflow; far beyond any cap anyway.
    const std::uint64_t count = digits > 18 ? UINT64_MAX : std::stoull(text.substr(0, digits));
    bytes = count > UINT64_MAX / scale ? UINT64_MAX : count * scale;
  } else {
    fail(node->source(), key, std::string(format) + ", got " + std::string(typeName(*node)));
  }
  if (bytes > max) {
    fail(node->source(), key, "must be at most " + std::to_string(max) + " bytes");
  }
  return static_cast<std::size_t>(bytes);
}

// Resolves against the config file's directory and checks that the file can be opened,
// so that a typo fails `--check-config` instead of the first TLS handshake.
std::filesystem::path TomlReader::readableFile(const toml::node& node, const std::string& key,
                                               const std::string& value) const {
  if (value.find('\0') != std::string::npos) {
    fail(node.source(), key, "path contains a NUL byte");
  }
  std::filesystem::path path(value);
  if (path.is_relative()) {
    path = baseDir_ / path;
  }
  path = path.lexically_normal();
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    fail(node.source(), key, "cannot read '" + path.string() + "': " + std::strerror(EISDIR));
  }
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    fail(node.source(), key, "cannot read '" + path.string() + "': " + std::strerror(errno));
  }
  std::fclose(file);
  return path;
}

// Names that end up in SMTP lines (greeting, EHLO) must be plain host names: a TOML string
// can hold "\r\n", which would otherwise let the config inject protocol lines.
std::string TomlReader::hostName(const toml::node& node, const std::string& key,
                                 const std::string& value) const {
  std::string name = value;
  if (!name.empty() && name.back() == '.') {
    name.pop_back();
  }
  if (!text::isDomainName(name)) {
    fail(node.source(), key, "'" + value + "' is not a valid host name");
  }
  return name;
}

Endpoint TomlReader::endpoint(const toml::table& table, const std::string& prefix,
                              bool allowPortZero) const {
  const std::string key = join(prefix, "address");
  const std::string text = requireString(table, "address", prefix);
  const toml::node& node = *table.get("address");
  Endpoint result;
  try {
    result = parseEndpoint(text);
  } catch (const std::invalid_argument& e) {
    fail(node.source(), key,
         "expected host:port or [IPv6]:port (" + std::string(e.what()) + "), got \"" + text + "\"");
  }
  // Numeric addresses only: the event loop binds and connects without a resolver, and a name
  // that resolves differently later would be a silent change of backend.
  const bool v6 = result.host.find(':') != std::string::npos;
  if (!text::isIpAddress(result.host, v6)) {
    fail(node.source(), key, "'" + result.host + "' is not an IPv4 or IPv6 address");
  }
  if (!allowPortZero && result.port == 0) {
    fail(node.source(), key, "port must be from 1 to 65535");
  }
  return result;
}

// The strings of an array-of-strings key; empty when absent.
// An array of CIDRs, each checked with the parser policy::NetworkList uses, so that
// --check-config names the line; the strings are kept as written.
std::vector<std::string> TomlReader::cidrArray(const toml::table& table, std::string_view name,
                                               const std::string& prefix) const {
  std::vector<std::string> cidrs = stringArray(table, name, prefix);
  for (size_t i = 0; i < cidrs.size(); ++i) {
    try {
      parseCidr(cidrs[i]);
    } catch (const std::invalid_argument& e) {
      fail(table.get(name)->as_array()->get(i)->source(),
           join(prefix, name) + "[" + std::to_string(i) + "]",
           "bad CIDR '" + cidrs[i] + "': " + e.what());
    }
  }
  return cidrs;
}

std::vector<std::string> TomlReader::stringArray(const toml::table& table, std::string_view name,
                                                 const std::string& prefix) const {
  std::vector<std::string> values;
  const toml::node* node = table.get(name);
  if (node == nullptr) {
    return values;
  }
  const std::string key = join(prefix, name);
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    failType(*node, key, "array of strings");
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    if (!element.is_string()) {
      failType(element, key + "[" + std::to_string(i) + "]", "string");
    }
    values.push_back(element.as_string()->get());
  }
  return values;
}
}  // namespace certrelay::config
