// [dns]: the reverse lookup of the client address (with forward confirmation) and the resolvers
// it asks.

#include "common/text.h"
#include "config/toml_reader.h"

namespace certrelay::config {

namespace {

// A lookup slower than this is not worth waiting for at MAIL: the backend gets [TEMPUNAVAIL].
constexpr std::chrono::milliseconds kMaxTimeout{60'000};
constexpr std::uint16_t kDnsPort = 53;

class DnsSection : public TomlReader {
 public:
  explicit DnsSection(const TomlReader& reader) : TomlReader(reader) {}

  // One resolver: "192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53" or "2001:db8::53".
  // Numeric only: the resolver cannot be found by asking a resolver.
  Endpoint server(const toml::node& node, const std::string& key) const {
    if (!node.is_string()) {
      failType(node, key, "string");
    }
    const std::string& text = node.as_string()->get();
    Endpoint result;
    if (text::isIpAddress(text, false) || text::isIpAddress(text, true)) {
      result.host = text;  // a bare address: the DNS port
      result.port = kDnsPort;
    } else {
      try {
        result = parseEndpoint(text);
      } catch (const std::invalid_argument& e) {
        fail(node.source(), key,
             "expected an address, address:port or [IPv6]:port (" + std::string(e.what()) +
                 "), got \"" + text + "\"");
      }
      const bool v6 = result.host.find(':') != std::string::npos;
      if (!text::isIpAddress(result.host, v6)) {
        fail(node.source(), key, "'" + result.host + "' is not an IPv4 or IPv6 address");
      }
    }
    if (result.port == 0) {
      fail(node.source(), key, "port must be from 1 to 65535");
    }
    return result;
  }

  void readServers(const toml::table& table, Dns& dns) const {
    const toml::node* node = table.get("servers");
    if (node == nullptr) {
      return;
    }
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      failType(*node, "dns.servers", "array of strings");
    }
    if (array->empty()) {
      fail(node->source(), "dns.servers",
           "must not be empty (leave it out to use the system's resolvers)");
    }
    for (size_t i = 0; i < array->size(); ++i) {
      const std::string key = "dns.servers[" + std::to_string(i) + "]";
      Endpoint endpoint = server(*array->get(i), key);
      for (size_t j = 0; j < dns.servers.size(); ++j) {
        if (dns.servers[j] == endpoint) {
          fail(array->get(i)->source(), key,
               "'" + endpoint.toString() + "' is listed twice (also dns.servers[" +
                   std::to_string(j) + "])");
        }
      }
      dns.servers.push_back(std::move(endpoint));
    }
  }

  void readDns(const toml::table& root, Config& config) const {
    const toml::table* table = subTable(root, "dns", false, true, "");
    if (table == nullptr) {
      return;
    }
    checkKeys(*table, "dns", {"reverse_lookup", "servers", "timeout"});
    Dns& dns = config.dns;
    dns.reverseLookup = getBool(*table, "reverse_lookup", "dns").value_or(false);
    readServers(*table, dns);
    if (auto timeout = getDuration(*table, "timeout", "dns")) {
      if (*timeout > kMaxTimeout) {
        fail(table->get("timeout")->source(), "dns.timeout",
             "must be at most 60s: only MAIL waits for the name, but it does wait");
      }
      dns.timeout = *timeout;
    }
  }
};

}  // namespace

void readDnsSection(const TomlReader& reader, const toml::table& root, Config& config) {
  DnsSection(reader).readDns(root, config);
}

}  // namespace certrelay::config
