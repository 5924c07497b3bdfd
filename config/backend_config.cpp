// [backend]: where the backends are and how the proxy talks to them.

#include <algorithm>
#include <filesystem>
#include <limits>
#include <string_view>

#include "common/text.h"
#include "config/toml_reader.h"

namespace certrelay::config {

namespace {

class BackendSection : public TomlReader {
 public:
  explicit BackendSection(const TomlReader& reader) : TomlReader(reader) {}

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

  // backend.tls and the files it needs. Every mistake that would leave the backend hop less
  // protected than the operator asked for is an error: TLS without a CA to verify against, a CA
  // or a client certificate given while tls is "none", half a certificate pair.
  void readBackendTls(const toml::table& table, BackendTls& tls) const {
    tls.mode = keyword(table, "tls", "backend",
                       {std::pair{"none", BackendTlsMode::None},
                        {"starttls", BackendTlsMode::Starttls},
                        {"implicit", BackendTlsMode::Implicit}})
                   .value_or(BackendTlsMode::None);
    const auto file = [&](std::string_view name, std::filesystem::path& out) {
      if (auto value = getString(table, name, "backend")) {
        const std::string key = join("backend", name);
        if (value->empty()) {
          fail(table.get(name)->source(), key, "must not be empty (leave the key out instead)");
        }
        if (!tls.enabled()) {
          fail(table.get(name)->source(), key,
               "set, but backend.tls is \"none\": the backend would be spoken to in plaintext; "
               "set backend.tls = \"starttls\" or \"implicit\"");
        }
        out = readableFile(*table.get(name), key, *value);
      }
    };
    file("tls_ca", tls.caFile);
    file("tls_cert", tls.certFile);
    file("tls_key", tls.keyFile);
    if (auto name = getString(table, "tls_server_name", "backend")) {
      if (!tls.enabled()) {
        fail(table.get("tls_server_name")->source(), "backend.tls_server_name",
             "set, but backend.tls is \"none\"; set backend.tls = \"starttls\" or \"implicit\"");
      }
      tls.serverName = hostName(*table.get("tls_server_name"), "backend.tls_server_name", *name);
    }
    if (tls.certFile.empty() != tls.keyFile.empty()) {
      const char* given = tls.certFile.empty() ? "tls_key" : "tls_cert";
      fail(table.get(given)->source(), join("backend", given),
           "backend.tls_cert and backend.tls_key go together; give both or neither");
    }
    if (tls.enabled() && tls.caFile.empty()) {
      fail(table.get("tls")->source(), "backend.tls",
           "\"" + std::string(backendTlsKeyword(tls.mode)) +
               "\" needs backend.tls_ca, the CA bundle the backend's certificate is verified "
               "against (the system store is not used implicitly; name it to use it)");
    }
  }

  void readBackend(const toml::table& root, Config& config) const {
    const toml::table& table = *subTable(root, "backend", true, true, "");
    checkKeys(table, "backend",
              {"address", "addresses", "balance", "helo_name", "probe_interval", "identity",
               "received_header", "max_connections", "tls", "tls_ca", "tls_server_name", "tls_cert",
               "tls_key"});
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
    readBackendTls(table, config.backend.tls);
  }
};

}  // namespace

void readBackendSection(const TomlReader& reader, const toml::table& root, Config& config) {
  BackendSection(reader).readBackend(root, config);
}

}  // namespace certrelay::config
