// TOML -> validated Config. Every value is checked here, at load time, so that the data path
// never meets a limit it cannot honour; every message names the file, the line and the key.

#include "config/config.h"

#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>
#include <thread>

#include "common/text.h"
#include "config/cpus.h"
#include "config/environment.h"
#include "config/read_file.h"

namespace certrelay::config {

namespace {

constexpr int64_t kMaxWorkers = 256;
// Reload debounce: long enough to let a writer finish, short enough that a revocation is not
// noticeably late.
constexpr int64_t kMaxDebounceMs = 10'000;
// RFC 8446 caps ticket lifetime at 7 days; no timer in this proxy has a reason to be longer,
// and the cap keeps every millisecond count far from overflow.
constexpr int64_t kMaxDurationMs = 7LL * 24 * 3600 * 1000;

const char* typeName(const toml::node& node) {
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

// Holds what every message needs (the file name) and what every path needs (the base dir).
class Loader {
 public:
  explicit Loader(const std::filesystem::path& origin)
      : origin_(origin.string()),
        baseDir_(std::filesystem::absolute(origin).lexically_normal().parent_path()) {}

  Config run(const std::string& text, const EnvironmentVariables& environment) {
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(origin_));
    } catch (const toml::parse_error& e) {
      throw ConfigError(origin_ + ":" + std::to_string(e.source().begin.line) + ": " +
                        std::string(e.description()));
    }
    EnvironmentResult overrides = applyEnvironment(root, environment);

    Config config;
    config.environmentOverrides = std::move(overrides.applied);
    config.file = std::filesystem::absolute(origin_).lexically_normal();
    checkKeys(root, "",
              {"hostname", "workers", "listener", "backend", "tls", "policy", "timeouts", "limits",
               "admin", "log", "shutdown", "metrics"});

    readHostname(root, config);
    readWorkers(root, config);
    readListeners(root, config);
    readBackend(root, config);
    readTls(root, config);
    readPolicy(root, config);
    readTimeouts(root, config);
    readLimits(root, config);
    readOperations(root, config);
    return config;
  }

 private:
  [[noreturn]] void fail(const toml::source_region& where, const std::string& key,
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
  [[noreturn]] void failMissing(const toml::table& table, bool isRoot, const std::string& key,
                                const std::string& what) const {
    fail(isRoot ? toml::source_region{} : table.source(), key, what);
  }

  static std::string join(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }

  // Unknown keys are errors: a typo such as `max_recipient` must not leave a default in force.
  void checkKeys(const toml::table& table, const std::string& prefix,
                 std::initializer_list<std::string_view> allowed) const {
    for (auto&& [key, value] : table) {
      if (std::find(allowed.begin(), allowed.end(), key.str()) == allowed.end()) {
        fail(key.source(), join(prefix, key.str()), "unknown key");
      }
    }
  }

  [[noreturn]] void failType(const toml::node& node, const std::string& key,
                             std::string_view expected) const {
    fail(node.source(), key,
         "expected " + std::string(expected) + ", got " + std::string(typeName(node)));
  }

  const toml::table* subTable(const toml::table& parent, std::string_view name, bool required,
                              bool parentIsRoot, const std::string& prefix) const {
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

  std::optional<std::string> getString(const toml::table& table, std::string_view name,
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

  std::string requireString(const toml::table& table, std::string_view name,
                            const std::string& prefix) const {
    auto value = getString(table, name, prefix);
    if (!value) {
      failMissing(table, false, join(prefix, name), "missing required key");
    }
    return *value;
  }

  std::optional<bool> getBool(const toml::table& table, std::string_view name,
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
  std::optional<int64_t> getInteger(const toml::table& table, std::string_view name,
                                    const std::string& prefix, int64_t min, int64_t max) const {
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
  std::optional<std::chrono::milliseconds> getDuration(const toml::table& table,
                                                       std::string_view name,
                                                       const std::string& prefix,
                                                       bool allowZero = false) const {
    const toml::node* node = table.get(name);
    if (node == nullptr) {
      return std::nullopt;
    }
    const std::string key = join(prefix, name);
    const char* const format =
        "expected a duration such as 30, \"500ms\", \"30s\", \"5m\" or \"1h\"";
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

  // Resolves against the config file's directory and checks that the file can be opened,
  // so that a typo fails `--check-config` instead of the first TLS handshake.
  std::filesystem::path readableFile(const toml::node& node, const std::string& key,
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
  std::string hostName(const toml::node& node, const std::string& key,
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

  void readHostname(const toml::table& root, Config& config) const {
    if (const toml::node* node = root.get("hostname")) {
      auto value = getString(root, "hostname", "");
      config.hostname = hostName(*node, "hostname", *value);
      return;
    }
    char buffer[HOST_NAME_MAX + 1] = {};
    if (gethostname(buffer, sizeof(buffer) - 1) != 0) {
      fail({}, "hostname",
           std::string("not set and gethostname() failed: ") + std::strerror(errno));
    }
    std::string name = buffer;
    if (!name.empty() && name.back() == '.') {
      name.pop_back();
    }
    if (!text::isDomainName(name)) {
      fail({}, "hostname",
           "not set, and the system host name '" + name + "' is not a valid host name");
    }
    config.hostname = name;
  }

  void readWorkers(const toml::table& root, Config& config) const {
    const int64_t workers = getInteger(root, "workers", "", 0, kMaxWorkers).value_or(0);
    if (workers == 0) {
      // The CPUs this process may use (affinity, cgroup quota); the cap applies to them too.
      config.workers = std::clamp<unsigned>(availableCpus(), 1, kMaxWorkers);
    } else {
      config.workers = static_cast<unsigned>(workers);
    }
  }

  Endpoint endpoint(const toml::table& table, const std::string& prefix, bool allowPortZero) const {
    const std::string key = join(prefix, "address");
    const std::string text = requireString(table, "address", prefix);
    const toml::node& node = *table.get("address");
    Endpoint result;
    try {
      result = parseEndpoint(text);
    } catch (const std::invalid_argument& e) {
      fail(node.source(), key,
           "expected host:port or [IPv6]:port (" + std::string(e.what()) + "), got \"" + text +
               "\"");
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

  // One backend address: a numeric address or a host name (resolved by the proxy), with a port.
  Endpoint backendEndpoint(const toml::node& node, const std::string& key) const {
    if (!node.is_string()) {
      failType(node, key, "string");
    }
    const std::string& text = node.as_string()->get();
    Endpoint result;
    try {
      result = parseEndpoint(text);
    } catch (const std::invalid_argument& e) {
      fail(node.source(), key,
           "expected host:port or [IPv6]:port (" + std::string(e.what()) + "), got \"" + text +
               "\"");
    }
    if (!isNumericHost(result)) {
      if (result.host.find(':') != std::string::npos) {
        fail(node.source(), key, "'" + result.host + "' is not an IPv6 address");
      }
      if (!result.host.empty() && result.host.back() == '.') {
        result.host.pop_back();  // "mx.example.com.": the resolver takes it without the dot
      }
      // A last label of digits only is a mistyped IPv4 address ("10.0.0.256"), not a name.
      const std::string_view last =
          std::string_view(result.host).substr(result.host.rfind('.') + 1);
      const bool numeric = !last.empty() && std::all_of(last.begin(), last.end(), [](char c) {
        return c >= '0' && c <= '9';
      });
      if (numeric || !text::isDomainName(result.host)) {
        fail(node.source(), key,
             "'" + result.host + "' is neither an IPv4 or IPv6 address nor a host name");
      }
    }
    if (result.port == 0) {
      fail(node.source(), key, "port must be from 1 to 65535");
    }
    return result;
  }

  // backend.address (one) or backend.addresses (a non-empty list): exactly one of them.
  void readBackendAddresses(const toml::table& table, Backend& backend) const {
    const toml::node* one = table.get("address");
    const toml::node* several = table.get("addresses");
    if (one != nullptr && several != nullptr) {
      fail(several->source(), "backend.addresses",
           "set together with backend.address; give exactly one of them");
    }
    if (one != nullptr) {
      backend.addresses.push_back(backendEndpoint(*one, "backend.address"));
    } else if (several != nullptr) {
      const toml::array* array = several->as_array();
      if (array == nullptr) {
        failType(*several, "backend.addresses", "array of strings");
      }
      if (array->empty()) {
        fail(several->source(), "backend.addresses", "must not be empty");
      }
      for (size_t i = 0; i < array->size(); ++i) {
        const std::string key = "backend.addresses[" + std::to_string(i) + "]";
        Endpoint endpoint = backendEndpoint(*array->get(i), key);
        for (size_t j = 0; j < backend.addresses.size(); ++j) {
          if (text::toLower(backend.addresses[j].toString()) ==
              text::toLower(endpoint.toString())) {
            fail(array->get(i)->source(), key,
                 "'" + endpoint.toString() + "' is listed twice (also backend.addresses[" +
                     std::to_string(j) + "])");
          }
        }
        backend.addresses.push_back(std::move(endpoint));
      }
    } else {
      failMissing(table, false, "backend.address",
                  "missing required key (or backend.addresses for several backends)");
    }
    backend.balance =
        keyword(table, "balance", "backend",
                {std::pair{"first", BalanceMode::First}, {"round_robin", BalanceMode::RoundRobin}})
            .value_or(BalanceMode::First);
  }

  void readListeners(const toml::table& root, Config& config) const {
    const toml::node* node = root.get("listener");
    if (node == nullptr) {
      failMissing(root, true, "listener", "at least one [[listener]] is required");
    }
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      fail(node->source(), "listener",
           std::string("expected an array of tables ([[listener]]), got ") + typeName(*node));
    }
    if (array->empty()) {
      fail(node->source(), "listener", "at least one [[listener]] is required");
    }
    for (size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      const std::string prefix = "listener[" + std::to_string(i) + "]";
      if (!element.is_table()) {
        failType(element, prefix, "table");
      }
      const toml::table& table = *element.as_table();
      checkKeys(table, prefix,
                {"name", "address", "require_tls", "tls_mode", "client_cert", "proxy_protocol",
                 "proxy_networks"});
      Listener listener;
      listener.name = requireString(table, "name", prefix);
      if (listener.name.empty()) {
        fail(table.get("name")->source(), prefix + ".name", "must not be empty");
      }
      // The name appears in logs and metric labels: keep it to a safe alphabet.
      for (char c : listener.name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) {
          fail(table.get("name")->source(), prefix + ".name",
               "may contain only letters, digits, '-', '_' and '.'");
        }
      }
      for (size_t j = 0; j < config.listeners.size(); ++j) {
        if (config.listeners[j].name == listener.name) {
          fail(table.get("name")->source(), prefix + ".name",
               "duplicate listener name '" + listener.name + "' (also listener[" +
                   std::to_string(j) + "])");
        }
      }
      listener.address = endpoint(table, prefix, true);
      listener.requireTls = getBool(table, "require_tls", prefix).value_or(false);
      readListenerTls(table, prefix, listener);
      readListenerProxy(table, prefix, listener);
      config.listeners.push_back(std::move(listener));
    }
  }

  // proxy_protocol and proxy_networks of one [[listener]].
  void readListenerProxy(const toml::table& table, const std::string& prefix,
                         Listener& listener) const {
    listener.proxyProtocol = getBool(table, "proxy_protocol", prefix).value_or(false);
    listener.proxyNetworks = cidrArray(table, "proxy_networks", prefix);
    if (listener.proxyProtocol && listener.proxyNetworks.empty()) {
      fail(table.get("proxy_protocol")->source(), prefix + ".proxy_networks",
           "required with proxy_protocol = true: the networks of the load balancers that may "
           "send the header (anyone else could claim any client address)");
    }
    if (!listener.proxyProtocol && !listener.proxyNetworks.empty()) {
      fail(table.get("proxy_networks")->source(), prefix + ".proxy_networks",
           "set without proxy_protocol = true");
    }
  }

  // tls_mode and client_cert of one [[listener]].
  void readListenerTls(const toml::table& table, const std::string& prefix,
                       Listener& listener) const {
    if (auto mode = getString(table, "tls_mode", prefix)) {
      if (*mode == "implicit") {
        listener.tlsMode = TlsMode::Implicit;
      } else if (*mode != "starttls") {
        fail(table.get("tls_mode")->source(), prefix + ".tls_mode",
             "expected \"starttls\" or \"implicit\", got \"" + *mode + "\"");
      }
    }
    if (auto mode = getString(table, "client_cert", prefix)) {
      if (*mode == "require") {
        listener.clientCert = ClientCertMode::Require;
      } else if (*mode == "none") {
        listener.clientCert = ClientCertMode::None;
      } else if (*mode != "request") {
        fail(table.get("client_cert")->source(), prefix + ".client_cert",
             "expected \"request\", \"require\" or \"none\", got \"" + *mode + "\"");
      }
    }
  }

  void readBackend(const toml::table& root, Config& config) const {
    const toml::table& table = *subTable(root, "backend", true, true, "");
    checkKeys(table, "backend",
              {"address", "addresses", "balance", "helo_name", "probe_interval", "identity",
               "received_header", "max_connections"});
    readBackendAddresses(table, config.backend);
    const auto helo = getString(table, "helo_name", "backend");
    if (helo && !helo->empty()) {
      config.backend.heloName = hostName(*table.get("helo_name"), "backend.helo_name", *helo);
    } else {
      config.backend.heloName = config.hostname;
    }
    if (auto interval = getDuration(table, "probe_interval", "backend")) {
      config.backend.probeInterval = *interval;
    }
    if (auto mode = getString(table, "identity", "backend")) {
      bool known = false;
      for (IdentityMode candidate : {IdentityMode::Auto, IdentityMode::Xclient,
                                     IdentityMode::Xforward, IdentityMode::None}) {
        if (*mode == identityModeKeyword(candidate)) {
          config.backend.identity = candidate;
          known = true;
        }
      }
      if (!known) {
        fail(table.get("identity")->source(), "backend.identity",
             "expected \"auto\", \"xclient\", \"xforward\" or \"none\", got \"" + *mode + "\"");
      }
    }
    config.backend.receivedHeader = getBool(table, "received_header", "backend").value_or(true);
    if (auto v = getInteger(table, "max_connections", "backend", 0,
                            std::numeric_limits<int64_t>::max())) {
      config.backend.maxConnections = static_cast<std::size_t>(*v);
    }
  }

  // A key that holds one file name or a list of them (tls.cert, tls.key, tls.ticket_keys): each
  // resolved and checked readable, with the node it came from. Empty names are refused.
  std::vector<std::filesystem::path> fileList(const toml::table& table, std::string_view name,
                                              bool required) const {
    const std::string key = join("tls", name);
    const toml::node* node = table.get(name);
    std::vector<std::filesystem::path> files;
    if (node == nullptr) {
      if (required) {
        failMissing(table, false, key, "missing required key");
      }
      return files;
    }
    const auto add = [&](const toml::node& element, const std::string& elementKey) {
      if (!element.is_string()) {
        failType(element, elementKey, "string");
      }
      const std::string& value = element.as_string()->get();
      if (value.empty()) {
        fail(element.source(), elementKey, "must not be empty");
      }
      files.push_back(readableFile(element, elementKey, value));
    };
    if (const toml::array* array = node->as_array()) {
      if (array->empty() && required) {
        fail(node->source(), key, "must not be empty");
      }
      for (size_t i = 0; i < array->size(); ++i) {
        add(*array->get(i), key + "[" + std::to_string(i) + "]");
      }
    } else if (node->is_string()) {
      add(*node, key);
    } else {
      failType(*node, key, "string or array of strings");
    }
    return files;
  }

  void readTls(const toml::table& root, Config& config) const {
    const toml::table& table = *subTable(root, "tls", true, true, "");
    checkKeys(table, "tls",
              {"cert", "key", "client_ca", "min_version", "session_cache_size", "session_timeout",
               "session_tickets", "tickets_per_handshake", "tickets_on_resumption",
               "fast_ec_key_decoding", "ticket_keys", "strict_sni"});
    Tls& tls = config.tls;
    const std::vector<std::filesystem::path> certs = fileList(table, "cert", true);
    const std::vector<std::filesystem::path> keys = fileList(table, "key", true);
    if (certs.size() != keys.size()) {
      fail(table.get("key")->source(), "tls.key",
           "names " + std::to_string(keys.size()) + " file(s) but tls.cert names " +
               std::to_string(certs.size()) + "; give one key per certificate, in the same order");
    }
    for (size_t i = 0; i < certs.size(); ++i) {
      tls.certificates.push_back(CertificatePair{certs[i], keys[i]});
    }
    if (auto ca = getString(table, "client_ca", "tls"); ca && !ca->empty()) {
      tls.clientCa = readableFile(*table.get("client_ca"), "tls.client_ca", *ca);
    }
    tls.ticketKeys = fileList(table, "ticket_keys", false);
    tls.strictSni = getBool(table, "strict_sni", "tls").value_or(false);
    if (auto version = getString(table, "min_version", "tls")) {
      if (*version != "TLSv1.2" && *version != "TLSv1.3") {
        fail(table.get("min_version")->source(), "tls.min_version",
             "expected \"TLSv1.2\" or \"TLSv1.3\", got \"" + *version + "\"");
      }
      tls.minVersion = *version;
    }
    if (auto size = getInteger(table, "session_cache_size", "tls", 0,
                               std::numeric_limits<int64_t>::max())) {
      tls.sessionCacheSize = static_cast<std::size_t>(*size);
    }
    if (auto timeout = getDuration(table, "session_timeout", "tls")) {
      if (timeout->count() % 1000 != 0) {
        fail(table.get("session_timeout")->source(), "tls.session_timeout",
             "must be a whole number of seconds");
      }
      tls.sessionTimeout = std::chrono::duration_cast<std::chrono::seconds>(*timeout);
    }
    // Keys from files exist to share stateless tickets: they imply session_tickets.
    const std::optional<bool> tickets = getBool(table, "session_tickets", "tls");
    if (tickets == false && !tls.ticketKeys.empty()) {
      fail(table.get("session_tickets")->source(), "tls.session_tickets",
           "is false but tls.ticket_keys is set; ticket keys need session tickets");
    }
    tls.sessionTickets = tickets.value_or(!tls.ticketKeys.empty());
    tls.ticketsPerHandshake =
        static_cast<int>(getInteger(table, "tickets_per_handshake", "tls", 0, 8).value_or(1));
    tls.ticketsOnResumption =
        static_cast<int>(getInteger(table, "tickets_on_resumption", "tls", 0, 8).value_or(1));
    tls.fastEcKeyDecoding = getBool(table, "fast_ec_key_decoding", "tls").value_or(true);
  }

  void readPolicy(const toml::table& root, Config& config) const {
    const toml::table* table = subTable(root, "policy", false, true, "");
    if (table == nullptr) {
      return;
    }
    checkKeys(*table, "policy",
              {"fingerprints", "local_domains", "digest", "relay_networks", "reload_poll_interval",
               "reload_debounce"});
    Policy& policy = config.policy;
    if (auto file = getString(*table, "fingerprints", "policy"); file && !file->empty()) {
      policy.fingerprints = readableFile(*table->get("fingerprints"), "policy.fingerprints", *file);
    }
    readLocalDomains(*table, policy);
    if (auto digest = getString(*table, "digest", "policy")) {
      bool known = false;
      for (FingerprintDigest candidate :
           {FingerprintDigest::Sha256, FingerprintDigest::Sha1, FingerprintDigest::Md5}) {
        if (*digest == digestKeyword(candidate)) {
          policy.digest = candidate;
          known = true;
        }
      }
      if (!known) {
        fail(table->get("digest")->source(), "policy.digest",
             "expected \"sha256\", \"sha1\" or \"md5\", got \"" + *digest + "\"");
      }
    }
    policy.relayNetworks = cidrArray(*table, "relay_networks", "policy");
    if (auto interval = getDuration(*table, "reload_poll_interval", "policy")) {
      policy.reloadPollInterval = *interval;
    }
    if (auto debounce = getDuration(*table, "reload_debounce", "policy")) {
      if (debounce->count() > kMaxDebounceMs) {
        fail(table->get("reload_debounce")->source(), "policy.reload_debounce",
             "must be at most 10s");
      }
      policy.reloadDebounce = *debounce;
    }
  }

  // The strings of an array-of-strings key; empty when absent.
  // An array of CIDRs, each checked with the parser policy::NetworkList uses, so that
  // --check-config names the line; the strings are kept as written.
  std::vector<std::string> cidrArray(const toml::table& table, std::string_view name,
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

  std::vector<std::string> stringArray(const toml::table& table, std::string_view name,
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

  void readLocalDomains(const toml::table& table, Policy& policy) const {
    const std::vector<std::string> written = stringArray(table, "local_domains", "policy");
    for (size_t i = 0; i < written.size(); ++i) {
      const toml::node& element = *table.get("local_domains")->as_array()->get(i);
      const std::string key = "policy.local_domains[" + std::to_string(i) + "]";
      std::string domain = text::toLower(written[i]);
      if (!domain.empty() && domain.back() == '.' && domain.front() != '[') {
        domain.pop_back();
      }
      // ".example.com" = every subdomain of example.com; the rest must be a plain name.
      const std::string_view name =
          !domain.empty() && domain.front() == '.' ? std::string_view(domain).substr(1) : domain;
      if (!text::isDomainName(name) &&
          !(name.size() == domain.size() && text::isAddressLiteral(domain))) {
        fail(element.source(), key,
             "'" + written[i] + "' is not a domain name, \".domain\" or address literal");
      }
      policy.localDomains.push_back(std::move(domain));
    }
  }

  void readTimeouts(const toml::table& root, Config& config) const {
    const toml::table* table = subTable(root, "timeouts", false, true, "");
    if (table == nullptr) {
      return;
    }
    Timeouts& t = config.timeouts;
    const std::pair<const char*, std::chrono::milliseconds*> fields[] = {
        {"command", &t.command},
        {"command_under_stress", &t.commandUnderStress},
        {"tls_handshake", &t.tlsHandshake},
        {"data", &t.data},
        {"backend_connect", &t.backendConnect},
        {"backend_reply", &t.backendReply},
        {"backend_idle", &t.backendIdle},
        {"proxy_header", &t.proxyHeader},
        // The old name of shutdown.timeout, still accepted.
        {"shutdown", &config.shutdown.timeout},
    };
    checkKeys(*table, "timeouts",
              {"command", "command_under_stress", "tls_handshake", "data", "backend_connect",
               "backend_reply", "backend_idle", "proxy_header", "shutdown"});
    for (const auto& [name, target] : fields) {
      if (auto value = getDuration(*table, name, "timeouts")) {
        *target = *value;
      }
    }
  }

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

  // [admin], [log], [shutdown], [metrics]: how the process is operated.
  void readOperations(const toml::table& root, Config& config) const {
    if (const toml::table* admin = subTable(root, "admin", false, true, "")) {
      checkKeys(*admin, "admin", {"address", "stall_timeout"});
      config.admin.enabled = true;
      config.admin.address = endpoint(*admin, "admin", true);
      if (auto stall = getDuration(*admin, "stall_timeout", "admin")) {
        config.admin.stallTimeout = *stall;
      }
    }
    if (const toml::table* log = subTable(root, "log", false, true, "")) {
      checkKeys(*log, "log", {"format", "level", "flush_interval"});
      config.log.format = keyword(*log, "format", "log",
                                  {std::pair{"text", LogFormat::Text}, {"json", LogFormat::Json}})
                              .value_or(LogFormat::Text);
      config.log.level = keyword(*log, "level", "log",
                                 {std::pair{"debug", LogLevel::Debug},
                                  {"info", LogLevel::Info},
                                  {"warning", LogLevel::Warning},
                                  {"error", LogLevel::Error}})
                             .value_or(LogLevel::Info);
      if (auto interval = getDuration(*log, "flush_interval", "log", true)) {
        if (*interval > std::chrono::seconds(1)) {
          fail(log->get("flush_interval")->source(), "log.flush_interval",
               "at most 1s: a longer wait hides what a session is doing");
        }
        config.log.flushInterval = *interval;
      }
    }
    if (const toml::table* shutdown = subTable(root, "shutdown", false, true, "")) {
      checkKeys(*shutdown, "shutdown", {"delay", "timeout"});
      if (auto delay = getDuration(*shutdown, "delay", "shutdown", true)) {
        config.shutdown.delay = *delay;
      }
      if (auto timeout = getDuration(*shutdown, "timeout", "shutdown")) {
        const toml::table* timeouts = subTable(root, "timeouts", false, true, "");
        if (timeouts != nullptr && timeouts->get("shutdown") != nullptr) {
          fail(shutdown->get("timeout")->source(), "shutdown.timeout",
               "set twice: timeouts.shutdown is its old name; keep one");
        }
        config.shutdown.timeout = *timeout;
      }
    }
    if (const toml::table* metrics = subTable(root, "metrics", false, true, "")) {
      checkKeys(*metrics, "metrics", {"per_identity"});
      config.metrics.perIdentity = getBool(*metrics, "per_identity", "metrics").value_or(false);
    }
  }

  void readLimits(const toml::table& root, Config& config) const {
    const toml::table* table = subTable(root, "limits", false, true, "");
    if (table == nullptr) {
      return;
    }
    checkKeys(*table, "limits",
              {"max_line_length", "max_recipients", "max_errors", "max_connections",
               "high_watermark", "client_connections", "client_connection_rate",
               "client_message_rate", "client_recipient_rate", "rate_window", "exempt_networks",
               "greeting_delay", "max_junk_commands", "max_messages_per_session", "min_data_rate"});
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    Limits& l = config.limits;
    if (auto v = getInteger(*table, "max_line_length", "limits", 512, 65536)) {
      l.maxLineLength = static_cast<std::size_t>(*v);
    }
    if (auto v = getInteger(*table, "max_recipients", "limits", 1, kMax)) {
      l.maxRecipients = static_cast<std::size_t>(*v);
    }
    if (auto v = getInteger(*table, "max_errors", "limits", 1, UINT_MAX)) {
      l.maxErrors = static_cast<unsigned>(*v);
    }
    if (auto v = getInteger(*table, "max_connections", "limits", 1, kMax)) {
      l.maxConnections = static_cast<std::size_t>(*v);
    }
    if (auto v = getInteger(*table, "high_watermark", "limits", 4096, kMax)) {
      l.highWatermark = static_cast<std::size_t>(*v);
    }
    readClientLimits(*table, l);
  }

  // The anvil-style client limits of [limits]. Counts are capped where the counting table's
  // 24-bit counters saturate (proxy/client_limits.h).
  void readClientLimits(const toml::table& table, Limits& l) const {
    constexpr int64_t kMaxCount = (int64_t{1} << 24) - 2;
    const std::pair<const char*, std::size_t*> counts[] = {
        {"client_connections", &l.clientConnections},
        {"client_connection_rate", &l.clientConnectionRate},
        {"client_message_rate", &l.clientMessageRate},
        {"client_recipient_rate", &l.clientRecipientRate},
        {"max_junk_commands", &l.maxJunkCommands},
        {"max_messages_per_session", &l.maxMessagesPerSession},
        {"min_data_rate", &l.minDataRate},
    };
    for (const auto& [name, target] : counts) {
      if (auto v = getInteger(table, name, "limits", 0, kMaxCount)) {
        *target = static_cast<std::size_t>(*v);
      }
    }
    if (auto window = getDuration(table, "rate_window", "limits")) {
      if (*window < std::chrono::seconds(1) || *window > std::chrono::hours(24)) {
        fail(table.get("rate_window")->source(), "limits.rate_window", "must be from 1s to 24h");
      }
      l.rateWindow = *window;
    }
    if (auto delay = getDuration(table, "greeting_delay", "limits", true)) {
      if (*delay > std::chrono::seconds(30)) {
        fail(table.get("greeting_delay")->source(), "limits.greeting_delay",
             "must be at most 30s (postscreen's greet wait is 6s)");
      }
      l.greetingDelay = *delay;
    }
    if (table.get("exempt_networks") != nullptr) {
      l.exemptNetworks = cidrArray(table, "exempt_networks", "limits");
    }
  }

  std::string origin_;
  std::filesystem::path baseDir_;
};

}  // namespace

Config parse(const std::string& text, const std::filesystem::path& origin) {
  return Loader(origin).run(text, {});
}

Config parse(const std::string& text, const std::filesystem::path& origin,
             const EnvironmentVariables& environment) {
  return Loader(origin).run(text, environment);
}

Config load(const std::filesystem::path& file) {
  std::string text;
  std::string error;
  if (!readWholeFile(file, text, error)) {
    throw ConfigError(error);
  }
  return parse(text, file, certrelayEnvironment());
}

}  // namespace certrelay::config
