#include "proxy/smtp/identity_handoff.h"

namespace certrelay::smtp {
namespace {

bool carriesAddress(bool offered, const std::set<std::string>& attributes) {
  return offered && attributes.contains("ADDR");
}

std::string missingCommand(const char* command, bool offered) {
  return std::string(command) + (offered ? " with ADDR" : "");
}

}  // namespace

std::string HandoffChoice::describe() const {
  const char* name = handoff == IdentityHandoff::Xclient    ? "xclient"
                     : handoff == IdentityHandoff::Xforward ? "xforward"
                                                            : "none";
  return std::string(name) + (automatic ? " (auto)" : "");
}

HandoffChoice chooseIdentityHandoff(config::IdentityMode mode, const Capabilities& offered) {
  const bool xclient = carriesAddress(offered.xclient, offered.xclientAttributes);
  const bool xforward = carriesAddress(offered.xforward, offered.xforwardAttributes);
  HandoffChoice choice;
  switch (mode) {
    case config::IdentityMode::Auto:
      choice.automatic = true;
      choice.handoff = xclient    ? IdentityHandoff::Xclient
                       : xforward ? IdentityHandoff::Xforward
                                  : IdentityHandoff::None;
      return choice;
    case config::IdentityMode::Xclient:
      choice.handoff = IdentityHandoff::Xclient;
      choice.offered = xclient;
      choice.missing = missingCommand("XCLIENT", offered.xclient);
      return choice;
    case config::IdentityMode::Xforward:
      choice.handoff = IdentityHandoff::Xforward;
      choice.offered = xforward;
      choice.missing = missingCommand("XFORWARD", offered.xforward);
      return choice;
    case config::IdentityMode::None:
      return choice;
  }
  return choice;
}

std::string grantHint(const Capabilities& offered, const std::string& command) {
  if (offered.postfix) {
    return "add the proxy's address to the backend's " +
           std::string(command == "XFORWARD" ? "smtpd_authorized_xforward_hosts"
                                             : "smtpd_authorized_xclient_hosts");
  }
  return "allow the proxy's address to use " + command + " on the backend";
}

std::string autoHandoffWarning(const HandoffChoice& choice, const Capabilities& offered,
                               const std::string& backend) {
  const std::string head = "backend.identity = auto: backend " + backend;
  switch (choice.handoff) {
    case IdentityHandoff::None:
      return head +
             " offers neither XCLIENT nor XFORWARD with ADDR to the proxy, so it will see the "
             "proxy's address for every client (only the Received header names the client); " +
             grantHint(offered, "XCLIENT");
    case IdentityHandoff::Xforward:
      return head +
             " offers no XCLIENT with ADDR, so XFORWARD is used: the backend logs the client's "
             "address but judges the proxy's, and gets no LOGIN (the certificate identity); " +
             grantHint(offered, "XCLIENT");
    case IdentityHandoff::Xclient:
      if (!offered.xclientAttributes.contains("LOGIN")) {
        return head +
               " offers XCLIENT without LOGIN: the backend sees the client's address but not "
               "its certificate identity";
      }
      return {};
  }
  return {};
}

}  // namespace certrelay::smtp
