#include "proxy/smtp/parameters.h"

#include <doctest/doctest.h>

namespace certrelay::smtp {
namespace {

PathArgument path(std::vector<std::pair<std::string, std::string>> params) {
  PathArgument p;
  p.path = "<a@b.example>";
  p.params = std::move(params);
  return p;
}

Capabilities everything() {
  Capabilities caps;
  caps.size = 1000;
  caps.eightBitMime = true;
  caps.smtpUtf8 = true;
  caps.dsn = true;
  return caps;
}

TEST_SUITE("smtp") {
  TEST_CASE("MAIL parameters: offered ones pass re-serialised, AUTH is dropped") {
    const Capabilities caps = everything();
    const auto ok = filterMailParameters(path({{"SIZE", "10"},
                                               {"BODY", "8bitmime"},
                                               {"AUTH", "<>"},
                                               {"SMTPUTF8", ""},
                                               {"RET", "HDRS"},
                                               {"ENVID", "x"}}),
                                         &caps);
    CHECK(ok.refusal.empty());
    CHECK(ok.wire == " SIZE=10 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=x");
    CHECK(ok.utf8);
  }

  TEST_CASE("MAIL parameters: Postfix's refusals") {
    const Capabilities caps = everything();
    CHECK(filterMailParameters(path({{"SIZE", "1001"}}), &caps).refusal ==
          "552 5.3.4 Message size exceeds fixed limit\r\n");
    CHECK(filterMailParameters(path({{"SIZE", "1x"}}), &caps).refusal ==
          "501 5.5.4 Bad message size syntax\r\n");
    CHECK(filterMailParameters(path({{"SIZE", "1"}, {"SIZE", "2"}}), &caps).refusal ==
          "555 5.5.4 Duplicate option: SIZE\r\n");
    CHECK(filterMailParameters(path({{"BODY", "BINARYMIME"}}), &caps).refusal ==
          "555 5.5.4 Unsupported option: BODY\r\n");
    CHECK(filterMailParameters(path({{"SMTPUTF8", "x"}}), &caps).refusal ==
          "555 5.5.4 Unsupported option: SMTPUTF8\r\n");
  }

  TEST_CASE("parameters of an extension the backend does not offer are refused") {
    CHECK(filterMailParameters(path({{"SIZE", "10"}}), nullptr).refusal ==
          "555 5.5.4 Unsupported option: SIZE\r\n");
    const Capabilities none;
    CHECK(filterRcptParameters(path({{"NOTIFY", "NEVER"}}), &none).refusal ==
          "555 5.5.4 Unsupported option: NOTIFY\r\n");
    const Capabilities caps = everything();
    CHECK(filterRcptParameters(path({{"NOTIFY", "NEVER"}, {"ORCPT", "rfc822;a@b"}}), &caps).wire ==
          " NOTIFY=NEVER ORCPT=rfc822;a@b");
    CHECK(filterRcptParameters(path({{"SIZE", "1"}}), &caps).refusal ==
          "555 5.5.4 Unsupported option: SIZE\r\n");
  }
}

}  // namespace
}  // namespace certrelay::smtp
