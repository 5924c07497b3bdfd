#pragma once
// How the backend learns who the client is (backend.identity), resolved in one place against
// what the backend offers the proxy: by the start-up probe and by every backend connection.

#include <cstdint>
#include <string>

#include "config/config.h"
#include "proxy/smtp/capabilities.h"

namespace certrelay::smtp {

enum class IdentityHandoff : std::uint8_t { Xclient, Xforward, None };

struct HandoffChoice {
  bool offered = true;  // false: an explicit mode the backend does not offer (fail closed)
  IdentityHandoff handoff = IdentityHandoff::None;
  bool automatic = false;  // chosen by "auto"
  // When not offered: which command is missing and the backend setting that grants it.
  std::string missing;  // "XCLIENT" / "XFORWARD"
  std::string setting;  // "smtpd_authorized_xclient_hosts" / "smtpd_authorized_xforward_hosts"

  // "xclient", "xforward (auto)", "none (auto)", ... for the start-up log line.
  std::string describe() const;
};

// An explicit mode the backend does not offer is a configuration error; auto takes the
// strongest hand-off offered (XCLIENT, then XFORWARD, then none).
HandoffChoice chooseIdentityHandoff(config::IdentityMode mode, const Capabilities& offered);

}  // namespace certrelay::smtp
