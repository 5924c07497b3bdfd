#include "proxy/smtp/identity_handoff.h"

namespace certrelay::smtp {

std::string HandoffChoice::describe() const {
  const char* name = handoff == IdentityHandoff::Xclient    ? "xclient"
                     : handoff == IdentityHandoff::Xforward ? "xforward"
                                                            : "none";
  return std::string(name) + (automatic ? " (auto)" : "");
}

HandoffChoice chooseIdentityHandoff(config::IdentityMode mode, const Capabilities& offered) {
  HandoffChoice choice;
  switch (mode) {
    case config::IdentityMode::Auto:
      choice.automatic = true;
      choice.handoff = offered.xclient    ? IdentityHandoff::Xclient
                       : offered.xforward ? IdentityHandoff::Xforward
                                          : IdentityHandoff::None;
      return choice;
    case config::IdentityMode::Xclient:
      choice.handoff = IdentityHandoff::Xclient;
      choice.offered = offered.xclient;
      choice.missing = "XCLIENT";
      choice.setting = "smtpd_authorized_xclient_hosts";
      return choice;
    case config::IdentityMode::Xforward:
      choice.handoff = IdentityHandoff::Xforward;
      choice.offered = offered.xforward;
      choice.missing = "XFORWARD";
      choice.setting = "smtpd_authorized_xforward_hosts";
      return choice;
    case config::IdentityMode::None:
      return choice;
  }
  return choice;
}

}  // namespace certrelay::smtp
