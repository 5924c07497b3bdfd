#pragma once
// What the admin endpoint answers, apart from the sockets: the routes, the check report and
// the bytes of a response. Pure functions of their arguments (and of the handler's answers),
// so they are tested without a socket and the server (admin_server.cpp) is only I/O.

#include <string>
#include <string_view>
#include <vector>

#include "proxy/admin/admin_server.h"

namespace certrelay::admin {

enum class Method { Get, Head, Post, Other };

struct Response {
  int status = 200;
  std::string body;
  std::string contentType = "text/plain; charset=utf-8";
  std::string allow;  // the Allow header of a 405; empty otherwise
};

// One request: `target` is the request-target as received ("/readyz?verbose"); `peer` names the
// client in the log lines of the requests that change something (drain, reload). The handler's
// exceptions become a 500 (and a warning): the admin thread must survive a buggy handler.
Response route(Method method, std::string_view target, std::string_view peer,
               AdminHandler& handler);

// The body of a health endpoint, Kubernetes style. `ok` is set to whether every check passed.
// Passing and not verbose: "ok\n". Otherwise one line per check ("[+]certificate ok",
// "[-]backend failed: <detail>") and a last line "<endpoint> check passed|failed".
std::string checkReport(const std::vector<Check>& checks, std::string_view endpoint, bool verbose,
                        bool& ok);

// The status line's text: "OK", "Not Found"...
std::string_view reasonPhrase(int status);

// The bytes on the wire: status line, headers (Content-Length always; Connection when the
// connection closes after it, or for an HTTP/1.0 client that asked to keep it), then the body
// unless `head`.
struct Framing {
  bool head = false;      // a HEAD request: headers of the GET, no body
  bool keepAlive = true;  // false: "Connection: close", the server closes after it
  bool http10 = false;    // the client spoke HTTP/1.0
};
std::string serialize(const Response& response, const Framing& framing);

}  // namespace certrelay::admin
