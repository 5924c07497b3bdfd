#pragma once
// The process: binds every listener once per worker (SO_REUSEPORT), probes the backend for its
// capabilities, starts the workers, and turns signals into a graceful stop.
//
// Nothing is half-started: every file, certificate and socket is checked before "ready:" is
// logged, and any failure before that is a non-zero exit with a message naming the cause.

#include <memory>

#include "config/config.h"

namespace certrelay::proxy {

// Builds the shared state, runs until SIGTERM/SIGINT, returns the process exit code.
[[nodiscard]] int runServer(const std::shared_ptr<const config::Config>& config);

// --check-config: loads everything runServer would (TLS files, fingerprint table) without
// binding or connecting. Returns "" when fine, else the reason (`file:line: reason`).
[[nodiscard]] std::string checkRuntimeConfig(const config::Config& config);

}  // namespace certrelay::proxy
