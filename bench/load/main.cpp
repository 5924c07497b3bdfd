// certrelay-load: STARTTLS SMTP load generator. See bench/load/README.md.

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/load/load.h"

namespace {

void usage() {
  std::fprintf(
      stderr,
      "usage: certrelay-load --host IP --port P [--connections N] [--sessions TOTAL]\n"
      "  [--duration S] [--messages M] [--body-size BYTES] [--rcpt ADDR] [--from ADDR]\n"
      "  [--no-starttls] [--cert FILE --key FILE] [--cafile FILE] [--resume] [--pipelining]\n"
      "  [--bdat] [--idle [--hold S]] [--json]\n");
}

// A numeric option's value: a malformed one is a usage error, not a silent 0 (atoi).
[[noreturn]] void badNumber(const std::string& option, const std::string& text) {
  std::fprintf(stderr, "certrelay-load: %s: not a number: '%s'\n", option.c_str(), text.c_str());
  std::exit(2);
}

long integer(const std::string& option, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0) {
    badNumber(option, text);
  }
  return v;
}

int smallInteger(const std::string& option, const std::string& text) {
  const long v = integer(option, text);
  if (v < INT_MIN || v > INT_MAX) {
    badNumber(option, text);
  }
  return static_cast<int>(v);
}

double real(const std::string& option, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0) {
    badNumber(option, text);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  certrelay::load::Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") {
      o.host = value();
    } else if (a == "--port") {
      o.port = smallInteger(a, value());
    } else if (a == "--connections") {
      o.connections = smallInteger(a, value());
    } else if (a == "--sessions") {
      o.sessions = integer(a, value());
    } else if (a == "--duration") {
      o.duration = real(a, value());
    } else if (a == "--messages") {
      o.messages = smallInteger(a, value());
    } else if (a == "--body-size") {
      o.bodySize = std::strtoul(value().c_str(), nullptr, 10);
    } else if (a == "--rcpt") {
      o.rcpt = value();
    } else if (a == "--from") {
      o.from = value();
    } else if (a == "--no-starttls") {
      o.starttls = false;
    } else if (a == "--cert") {
      o.cert = value();
    } else if (a == "--key") {
      o.key = value();
    } else if (a == "--cafile") {
      o.cafile = value();
    } else if (a == "--resume") {
      o.resume = true;
    } else if (a == "--pipelining") {
      o.pipelining = true;
    } else if (a == "--bdat") {
      o.bdat = true;
    } else if (a == "--idle") {
      o.idle = true;
    } else if (a == "--hold") {
      o.hold = real(a, value());
    } else if (a == "--json") {
      o.jsonOnly = true;
    } else {
      usage();
      return 2;
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.connections < 1 || o.sessions < 1 || o.messages < 0 ||
      o.duration <= 0 || (o.cert.empty() != o.key.empty()) || (o.idle && !o.starttls)) {
    usage();
    return 2;
  }
  return certrelay::load::Runner(std::move(o)).run();
}
