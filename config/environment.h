#pragma once
// CERTRELAY_<SECTION>_<KEY>=value environment overrides of scalar keys (in a pod, the hostname
// above all: its default would be the pod's name). CERTRELAY_HOSTNAME and CERTRELAY_WORKERS set
// the top-level keys; CERTRELAY_BACKEND_ADDRESS sets [backend] address, CERTRELAY_TLS_MIN_VERSION
// [tls] min_version, and so on. A value is read as a TOML value when it is one (10, true,
// "quoted", [ "a", "b" ]), else as a string (30s, mx.example.com). [[listener]] cannot be set.

#include <toml++/toml.h>

#include <string>
#include <utility>
#include <vector>

namespace certrelay::config {

using EnvironmentVariables = std::vector<std::pair<std::string, std::string>>;

// The process's CERTRELAY_* variables.
EnvironmentVariables certrelayEnvironment();

struct EnvironmentResult {
  std::vector<std::string> applied;  // "backend.address = 127.0.0.1:25 (CERTRELAY_BACKEND_ADDRESS)"
};

// Sets each variable's key in `root` (replacing the file's value). The readers then validate
// the values like any other (messages name the key; an overridden value has no line). Variables
// that name no section certrelay has (CERTRELAY_BIN of a test harness, say) are left alone; an
// unknown key in a known section is the usual "unknown key" error.
EnvironmentResult applyEnvironment(toml::table& root, const EnvironmentVariables& variables);

}  // namespace certrelay::config
