// The admin routes without sockets: the check report and the bytes of a response.

#include "proxy/admin/admin_routes.h"

#include <doctest/doctest.h>

namespace certrelay::admin {
namespace {

class NullHandler final : public AdminHandler {
 public:
  std::vector<Check> liveness() override { return {}; }
  std::vector<Check> readiness() override { return {}; }
  std::string metrics() override { return ""; }
  void drain() override {}
  void reload() override {}
};

}  // namespace

TEST_CASE("admin routes: checkReport, quiet and verbose") {
  bool ok = false;
  CHECK(checkReport({}, "readyz", false, ok) == "ok\n");
  CHECK(ok);
  CHECK(checkReport({}, "readyz", true, ok) == "readyz check passed\n");
  const std::vector<Check> mixed{{"certificate", true, "ignored when ok"},
                                 {"backend", false, "connect: refused"},
                                 {"table", false, ""}};
  const std::string expected =
      "[+]certificate ok\n[-]backend failed: connect: refused\n[-]table failed\n"
      "readyz check failed\n";
  CHECK(checkReport(mixed, "readyz", false, ok) == expected);
  CHECK_FALSE(ok);
  CHECK(checkReport(mixed, "readyz", true, ok) == expected);
}

TEST_CASE("admin routes: serialize frames the answer") {
  Response response;
  response.status = 405;
  response.body = "method not allowed\n";
  response.allow = "POST";
  Framing framing;
  CHECK(serialize(response, framing) ==
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 19\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        "Allow: POST\r\n\r\nmethod not allowed\n");
  framing.head = true;
  framing.keepAlive = false;
  const std::string head = serialize(response, framing);
  CHECK(head.find("Content-Length: 19\r\n") != std::string::npos);
  CHECK(head.find("Connection: close\r\n\r\n") == head.size() - 21);
  framing.head = false;
  framing.keepAlive = true;
  framing.http10 = true;
  CHECK(serialize(response, framing).find("Connection: keep-alive\r\n") != std::string::npos);
}

TEST_CASE("admin routes: reason phrases and request targets") {
  CHECK(reasonPhrase(200) == "OK");
  CHECK(reasonPhrase(431) == "Request Header Fields Too Large");
  CHECK(reasonPhrase(299) == "Unknown");
  NullHandler handler;
  CHECK(route(Method::Get, "/livez", "", handler).status == 200);
  CHECK(route(Method::Get, "http://pod:9901/livez?verbose", "", handler).body ==
        "livez check passed\n");
  CHECK(route(Method::Get, "livez", "", handler).status == 400);
  CHECK(route(Method::Get, "*", "", handler).status == 404);  // OPTIONS * form: no such path
  CHECK(route(Method::Get, "", "", handler).status == 400);
  CHECK(route(Method::Other, "/nowhere", "", handler).status == 404);
}

}  // namespace certrelay::admin
