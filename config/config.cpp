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
#include "config/toml_reader.h"

namespace certrelay::config {

namespace {

constexpr int64_t kMaxWorkers = 256;
// Reload debounce: long enough to let a writer finish, short enough that a revocation is not
// noticeably late.
constexpr int64_t kMaxDebounceMs = 10'000;
// Below this a session cache holds a few dozen sessions: a typo, not a budget.
constexpr std::size_t kMinSessionCacheMemory = std::size_t{64} * 1024;

// The sections of the file, read in order; [backend], [timeouts], [limits] and [dns] live beside.
class Loader : public TomlReader {
 public:
  using TomlReader::TomlReader;

  Config run(const std::string& text, const EnvironmentVariables& environment) {
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(origin()));
    } catch (const toml::parse_error& e) {
      throw ConfigError(origin() + ":" + std::to_string(e.source().begin.line) + ": " +
                        std::string(e.description()));
    }
    EnvironmentResult overrides = applyEnvironment(root, environment);

    Config config;
    config.environmentOverrides = std::move(overrides.applied);
    config.file = std::filesystem::absolute(origin()).lexically_normal();
    checkKeys(root, "",
              {"hostname", "workers", "listener", "backend", "tls", "policy", "timeouts", "limits",
               "admin", "log", "shutdown", "dns", "metrics"});

    readHostname(root, config);
    readWorkers(root, config);
    readListeners(root, config);
    readBackendSection(*this, root, config);
    readTls(root, config);
    readPolicy(root, config);
    readLimitsSections(*this, root, config);
    readDnsSection(*this, root, config);
    readOperations(root, config);
    return config;
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
    checkKeys(
        table, "tls",
        {"cert", "key", "client_ca", "min_version", "session_cache_size", "session_cache_memory",
         "session_timeout", "session_tickets", "tickets_per_handshake", "tickets_on_resumption",
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
    // 0 = OpenSSL's internal cache (entries only); 64 GiB is far beyond any sane budget.
    if (auto memory = getSize(table, "session_cache_memory", "tls", std::size_t{64} << 30)) {
      if (*memory != 0 && *memory < kMinSessionCacheMemory) {
        fail(table.get("session_cache_memory")->source(), "tls.session_cache_memory",
             "must be 0 (OpenSSL's internal cache) or at least 64KiB, got " +
                 std::to_string(*memory) + " bytes");
      }
      tls.sessionCacheMemory = *memory;
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
