#include "proxy/admin/admin_routes.h"

#include <http_parser.h>

#include <exception>
#include <functional>

#include "common/text.h"
#include "proxy/log.h"

namespace certrelay::admin {
namespace {

constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

struct Target {
  std::string_view path;
  std::string_view query;
};

// The path and query of a request-target, through http_parser's URL parser (origin form
// "/readyz?verbose" and absolute form "http://host/readyz" alike). false when it is neither.
bool parseTarget(std::string_view target, Target& out) {
  http_parser_url url{};
  http_parser_url_init(&url);
  if (target.empty() || http_parser_parse_url(target.data(), target.size(), 0, &url) != 0 ||
      (url.field_set & (1U << UF_PATH)) == 0) {
    return false;
  }
  const auto field = [&](http_parser_url_fields which) {
    if ((url.field_set & (1U << which)) == 0) {
      return std::string_view();
    }
    return target.substr(url.field_data[which].off, url.field_data[which].len);
  };
  out.path = field(UF_PATH);
  out.query = field(UF_QUERY);
  return true;
}

// Whether the query holds the parameter `name` ("verbose", "verbose=1", "a&verbose").
bool hasParameter(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    item = item.substr(0, item.find('='));
    if (item == name) {
      return true;
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return false;
}

Response text(int status, std::string body) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

Response methodNotAllowed(std::string allow) {
  Response response = text(405, "method not allowed\n");
  response.allow = std::move(allow);
  return response;
}

Response health(const std::vector<Check>& checks, std::string_view endpoint, bool verbose) {
  bool ok = false;
  std::string body = checkReport(checks, endpoint, verbose, ok);
  return text(ok ? 200 : 503, std::move(body));
}

// Runs one handler call; an exception is a 500 and a warning, never the end of the thread.
Response guarded(std::string_view what, const std::function<Response()>& call) {
  try {
    return call();
  } catch (const std::exception& e) {
    log::warning(std::string("admin: ") + std::string(what) +
                 ": handler failed: " + text::sanitizePrintable(e.what()));
  } catch (...) {
    log::warning(std::string("admin: ") + std::string(what) + ": handler failed");
  }
  return text(500, "internal error\n");
}

bool isGetLike(Method method) {
  return method == Method::Get || method == Method::Head;
}

}  // namespace

Response route(Method method, std::string_view target, std::string_view peer,
               AdminHandler& handler) {
  Target parsed;
  if (!parseTarget(target, parsed)) {
    return text(400, "bad request target\n");
  }
  const std::string_view path = parsed.path;
  const bool verbose = hasParameter(parsed.query, "verbose");
  if (path == "/livez" || path == "/healthz" || path == "/readyz") {
    if (!isGetLike(method)) {
      return methodNotAllowed("GET, HEAD");
    }
    const bool ready = path == "/readyz";
    return guarded(path, [&] {
      return health(ready ? handler.readiness() : handler.liveness(), path.substr(1), verbose);
    });
  }
  if (path == "/metrics") {
    if (!isGetLike(method)) {
      return methodNotAllowed("GET, HEAD");
    }
    return guarded(path, [&] {
      Response response = text(200, handler.metrics());
      response.contentType = kMetricsType;
      return response;
    });
  }
  if (path == "/drain" || path == "/reload") {
    if (method != Method::Post) {
      return methodNotAllowed("POST");
    }
    const bool drain = path == "/drain";
    // These change the process: who asked is worth a line (probes are not logged).
    log::info(std::string("admin: ") + (drain ? "drain" : "reload") + " requested by " +
              std::string(peer));
    return guarded(path, [&] {
      if (drain) {
        handler.drain();
        return text(202, "draining\n");
      }
      handler.reload();
      return text(202, "reloading\n");
    });
  }
  return text(404, "not found\n");
}

std::string checkReport(const std::vector<Check>& checks, std::string_view endpoint, bool verbose,
                        bool& ok) {
  ok = true;
  for (const Check& check : checks) {
    ok = ok && (check.ok || check.informational);
  }
  if (ok && !verbose) {
    return "ok\n";
  }
  std::string body;
  for (const Check& check : checks) {
    // The handler's words are untrusted here: one line per check, whatever they hold.
    body += check.ok ? "[+]" : "[-]";
    body += text::sanitizePrintable(check.name);
    if (check.ok) {
      body += " ok\n";
      continue;
    }
    body += check.informational ? " failed (not required)" : " failed";
    if (!check.detail.empty()) {
      body += ": " + text::sanitizePrintable(check.detail, 1024);
    }
    body += '\n';
  }
  body += std::string(endpoint) + (ok ? " check passed\n" : " check failed\n");
  return body;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
#define CERTRELAY_ADMIN_STATUS(num, name, string) \
  case num:                                       \
    return #string;
    HTTP_STATUS_MAP(CERTRELAY_ADMIN_STATUS)
#undef CERTRELAY_ADMIN_STATUS
    default:
      break;
  }
  return "Unknown";
}

std::string serialize(const Response& response, const Framing& framing) {
  std::string out;
  out.reserve(192 + response.body.size());
  out += "HTTP/1.1 " + std::to_string(response.status) + " ";
  out += reasonPhrase(response.status);
  out += "\r\nContent-Type: " + response.contentType;
  out += "\r\nContent-Length: " + std::to_string(response.body.size());
  // Probe and metric answers are facts of one instant: no cache may keep them.
  out += "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff";
  if (!response.allow.empty()) {
    out += "\r\nAllow: " + response.allow;
  }
  if (!framing.keepAlive) {
    out += "\r\nConnection: close";
  } else if (framing.http10) {
    out += "\r\nConnection: keep-alive";  // HTTP/1.0 closes unless told otherwise
  }
  out += "\r\n\r\n";
  if (!framing.head) {
    out += response.body;
  }
  return out;
}

}  // namespace certrelay::admin
