#include "proxy/smtp/identity_handoff.h"

#include <doctest/doctest.h>

namespace certrelay::smtp {
namespace {

Capabilities offering(bool xclient, bool xforward) {
  Capabilities caps;
  caps.xclient = xclient;
  caps.xforward = xforward;
  return caps;
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

  TEST_CASE("identity hand-off: an explicit mode not offered fails closed, naming the setting") {
    using config::IdentityMode;
    const auto xclient = chooseIdentityHandoff(IdentityMode::Xclient, offering(false, true));
    CHECK_FALSE(xclient.offered);
    CHECK(xclient.missing == "XCLIENT");
    CHECK(xclient.setting == "smtpd_authorized_xclient_hosts");
    const auto xforward = chooseIdentityHandoff(IdentityMode::Xforward, offering(true, false));
    CHECK_FALSE(xforward.offered);
    CHECK(xforward.setting == "smtpd_authorized_xforward_hosts");
    CHECK(chooseIdentityHandoff(IdentityMode::Xforward, offering(false, true)).describe() ==
          "xforward");
    CHECK(chooseIdentityHandoff(IdentityMode::None, offering(true, true)).describe() == "none");
  }
}

}  // namespace
}  // namespace certrelay::smtp
