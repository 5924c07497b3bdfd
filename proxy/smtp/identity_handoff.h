#pragma once
// How the backend learns who the client is (backend.identity), resolved in one place against
// what the backend offers the proxy: by the start-up probe and by every backend connection.
//
// A hand-off counts only when it carries the client's address (the ADDR attribute): XCLIENT or
// XFORWARD without ADDR would leave the backend judging the proxy's own address.

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
  // When not offered: what is missing ("XCLIENT", "XCLIENT with ADDR", ...).
  std::string missing;

  // "xclient", "xforward (auto)", "none (auto)", ... for the start-up log line.
  std::string describe() const;
};

// An explicit mode the backend does not offer with ADDR is a configuration error; auto takes
// XCLIENT if it offers ADDR, else XFORWARD if it offers ADDR, else none.
HandoffChoice chooseIdentityHandoff(config::IdentityMode mode, const Capabilities& offered);

// What an operator should know about an automatic choice, one sentence for a start-up warning;
// "" when there is nothing to say (XCLIENT with ADDR and LOGIN). `backend` names the address.
// The Postfix setting that grants the commands is named only when the backend greets as
// Postfix: other MTAs have their own words for it.
std::string autoHandoffWarning(const HandoffChoice& choice, const Capabilities& offered,
                               const std::string& backend);

// How to let the proxy use `command` ("XCLIENT" / "XFORWARD") on this backend: Postfix's
// setting when it greets as Postfix, otherwise a neutral sentence.
std::string grantHint(const Capabilities& offered, const std::string& command);

}  // namespace certrelay::smtp
