#include "proxy/smtp/xclient.h"

#include <utility>

#include "proxy/smtp/attribute_command.h"

namespace certrelay::smtp {

std::vector<std::string> buildXclientCommands(const ClientIdentity& identity,
                                              const std::set<std::string>& offered) {
  using detail::addressAttribute;
  using detail::kUnavailable;
  using detail::xtextOrUnavailable;

  detail::AttributeCommandPacker packer("XCLIENT");
  auto add = [&](const char* name, const std::string& value) {
    if (offered.count(name) != 0) {
      packer.add(name, value);
    }
  };
  const std::string unavailable(kUnavailable);
  // Attributes that may go in any command first, in this order.
  add("PORT", identity.port != 0 ? std::to_string(identity.port) : unavailable);
  add("PROTO", identity.esmtp ? "ESMTP" : "SMTP");
  add("HELO", xtextOrUnavailable(identity.helo));
  if (!identity.login.empty()) {
    add("LOGIN", xtextOrUnavailable(identity.login));
  }
  add("DESTADDR", addressAttribute(identity.destAddr));
  add("DESTPORT", identity.destPort != 0 ? std::to_string(identity.destPort) : unavailable);

  // NAME and ADDR must travel together in the final command, ADDR last of all. The name is the
  // forward-confirmed one or a status ([UNAVAILABLE], [TEMPUNAVAIL]), never a guess; without a
  // verified name REVERSE_NAME follows it, since Postfix would otherwise keep the reverse name
  // it found for the proxy itself (reject_unknown_reverse_client_hostname would pass everyone).
  std::string tail;
  if (offered.count("NAME") != 0) {
    tail += " NAME=" + xclientName(identity.name);
  }
  if (const auto reverse = xclientReverseName(identity.name);
      reverse && offered.count("REVERSE_NAME") != 0) {
    tail += " REVERSE_NAME=" + *reverse;
  }
  if (offered.count("ADDR") != 0) {
    tail += " ADDR=" + addressAttribute(identity.addr);
  }
  packer.addGroup(tail);
  return packer.finish();
}

}  // namespace certrelay::smtp
