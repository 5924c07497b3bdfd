#include "proxy/smtp/identity_handoff.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace certrelay::smtp {
namespace {

const std::set<std::string> kPostfixXclient = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN"};
const std::set<std::string> kPostfixXforward = {"NAME", "ADDR", "PROTO", "HELO", "IDENT"};

Capabilities offering(bool xclient, bool xforward) {
  Capabilities caps;
  caps.xclient = xclient;
  caps.xforward = xforward;
  if (xclient) {
    caps.xclientAttributes = kPostfixXclient;
  }
  if (xforward) {
    caps.xforwardAttributes = kPostfixXforward;
  }
  return caps;
}

Reply greeting(const std::string& text) {
  Reply reply;
  reply.code = 220;
  reply.lines = {text};
  return reply;
}

TEST_SUITE("smtp") {
  TEST_CASE("identity hand-off: auto takes the strongest offered") {
    using config::IdentityMode;
    CHECK(chooseIdentityHandoff(IdentityMode::Auto, offering(true, true)).describe() ==
          "xclient (auto)");
    CHECK(chooseIdentityHandoff(IdentityMode::Auto, offering(false, true)).describe() ==
          "xforward (auto)");
    const auto none = chooseIdentityHandoff(IdentityMode::Auto, offering(false, false));
    CHECK(none.offered);
    CHECK(none.describe() == "none (auto)");
  }

  TEST_CASE("identity hand-off: auto counts a command only when it offers ADDR") {
    using config::IdentityMode;
    Capabilities caps = offering(true, true);
    caps.xclientAttributes = {"NAME", "HELO", "LOGIN"};
    CHECK(chooseIdentityHandoff(IdentityMode::Auto, caps).describe() == "xforward (auto)");
    caps.xforwardAttributes = {"NAME", "HELO"};
    CHECK(chooseIdentityHandoff(IdentityMode::Auto, caps).describe() == "none (auto)");
    const auto xclient = chooseIdentityHandoff(IdentityMode::Xclient, caps);
    CHECK_FALSE(xclient.offered);
    CHECK(xclient.missing == "XCLIENT with ADDR");
  }

  TEST_CASE("identity hand-off: an explicit mode not offered fails closed") {
    using config::IdentityMode;
    const auto xclient = chooseIdentityHandoff(IdentityMode::Xclient, offering(false, true));
    CHECK_FALSE(xclient.offered);
    CHECK(xclient.missing == "XCLIENT");
    const auto xforward = chooseIdentityHandoff(IdentityMode::Xforward, offering(true, false));
    CHECK_FALSE(xforward.offered);
    CHECK(xforward.missing == "XFORWARD");
    CHECK(chooseIdentityHandoff(IdentityMode::Xforward, offering(false, true)).describe() ==
          "xforward");
    CHECK(chooseIdentityHandoff(IdentityMode::None, offering(true, true)).describe() == "none");
  }

  TEST_CASE(
      "identity hand-off: Postfix's settings are named only for a backend greeting as Postfix") {
    Capabilities caps = offering(false, false);
    CHECK(grantHint(caps, "XCLIENT") == "allow the proxy's address to use XCLIENT on the backend");
    caps.postfix = true;
    CHECK(grantHint(caps, "XCLIENT") ==
          "add the proxy's address to the backend's smtpd_authorized_xclient_hosts");
    CHECK(grantHint(caps, "XFORWARD") ==
          "add the proxy's address to the backend's smtpd_authorized_xforward_hosts");
    CHECK(Capabilities::greetsAsPostfix(greeting("mx.example ESMTP Postfix (Debian/GNU)")));
    CHECK(Capabilities::greetsAsPostfix(greeting("mx.example ESMTP Postfix")));
    CHECK_FALSE(Capabilities::greetsAsPostfix(greeting("mx.example ESMTP Exim 4.96")));
    CHECK_FALSE(Capabilities::greetsAsPostfix(greeting("mx.example ESMTP NotPostfix")));
    CHECK_FALSE(Capabilities::greetsAsPostfix(greeting("mx.example ESMTP OpenSMTPD")));
  }

  TEST_CASE("identity hand-off: auto warns at none, at XFORWARD and at XCLIENT without LOGIN") {
    using config::IdentityMode;
    const auto warn = [](const Capabilities& caps) {
      return autoHandoffWarning(chooseIdentityHandoff(IdentityMode::Auto, caps), caps,
                                "127.0.0.1:25");
    };
    CHECK(warn(offering(true, true)).empty());
    Capabilities noLogin = offering(true, false);
    noLogin.xclientAttributes.erase("LOGIN");
    CHECK(warn(noLogin) ==
          "backend.identity = auto: backend 127.0.0.1:25 offers XCLIENT without LOGIN: the "
          "backend sees the client's address but not its certificate identity");
    Capabilities xforward = offering(false, true);
    CHECK(warn(xforward).find("XFORWARD is used") != std::string::npos);
    CHECK(warn(xforward).find("smtpd_authorized") == std::string::npos);
    xforward.postfix = true;
    CHECK(warn(xforward).find("smtpd_authorized_xclient_hosts") != std::string::npos);
    Capabilities none = offering(false, false);
    CHECK(warn(none) ==
          "backend.identity = auto: backend 127.0.0.1:25 offers neither XCLIENT nor XFORWARD "
          "with ADDR to the proxy, so it will see the proxy's address for every client (only "
          "the Received header names the client); allow the proxy's address to use XCLIENT on "
          "the backend");
  }
}

}  // namespace
}  // namespace certrelay::smtp
