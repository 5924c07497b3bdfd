#pragma once
// MAIL and RCPT parameters (RFC 5321 esmtp-keyword=value): only those of an extension the
// client was offered pass, re-serialised; anything else gets Postfix's reply.

#include <string>

#include "proxy/smtp/capabilities.h"
#include "proxy/smtp/command.h"

namespace certrelay::smtp {

struct FilteredParameters {
  std::string refusal;  // "" when every parameter is acceptable; else the reply, with CR LF
  std::string wire;     // " KEY=VALUE ..." to append to the forwarded command
  bool utf8 = false;    // MAIL ... SMTPUTF8
};

// `capabilities` is what the backend offers (null: not known yet, nothing is offered).
FilteredParameters filterMailParameters(const PathArgument& path, const Capabilities* capabilities);
FilteredParameters filterRcptParameters(const PathArgument& path, const Capabilities* capabilities);

}  // namespace certrelay::smtp
