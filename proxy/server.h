#pragma once
// The process: binds every listener once per worker (SO_REUSEPORT), probes the backend for its
// capabilities, starts the workers, and turns signals into a graceful stop.
//
// Nothing is half-started: every file, certificate and socket is checked before "ready:" is
// logged, and any failure before that is a non-zero exit with a message naming the cause.

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace certrelay::proxy {

// Builds the shared state, runs until SIGTERM/SIGINT, returns the process exit code.
[[nodiscard]] int runServer(const std::shared_ptr<const config::Config>& config);

struct RuntimeCheck {
  std::string error;                  // "" when everything loads; else `file[:line]: reason`
  std::vector<std::string> warnings;  // fine today, not for long (a certificate near expiry)
};

// --check-config: loads everything runServer would (TLS files, fingerprint table) without
// binding or connecting.
[[nodiscard]] RuntimeCheck checkRuntimeConfig(const config::Config& config);

}  // namespace certrelay::proxy
