// [timeouts] and [limits]: how long and how much each client and session may take.

#include <limits>

#include "common/text.h"
#include "config/toml_reader.h"

namespace certrelay::config {

namespace {

class LimitsSections : public TomlReader {
 public:
  explicit LimitsSections(const TomlReader& reader) : TomlReader(reader) {}

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
      l.maxConnectionsSet = true;
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
};

}  // namespace

void readLimitsSections(const TomlReader& reader, const toml::table& root, Config& config) {
  const LimitsSections sections(reader);
  sections.readTimeouts(root, config);
  sections.readLimits(root, config);
}

}  // namespace certrelay::config
