// certrelay-load: STARTTLS SMTP load generator. See bench/load/README.md.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/load/load.h"

namespace {

void usage() {
  std::fprintf(
      stderr,
      "usage: certrelay-load --host IP --port P [--connections N] [--sessions TOTAL]\n"
      "  [--duration S] [--messages M] [--body-size BYTES] [--rcpt ADDR] [--from ADDR]\n"
      "  [--no-starttls] [--cert FILE --key FILE] [--cafile FILE] [--resume]\n"
      "  [--behaviour lockstep|grouped|behind-dot] [--pipelining] [--bdat] [--idle [--hold S]]\n"
      "  [--connect-batch N] [--source-addresses A-B|A,B,..] [--json]\n");
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

[[noreturn]] void badValue(const std::string& option, const std::string& text) {
  std::fprintf(stderr, "certrelay-load: %s: bad value: '%s'\n", option.c_str(), text.c_str());
  std::exit(2);
}

certrelay::load::Behaviour behaviour(const std::string& option, const std::string& text) {
  using certrelay::load::Behaviour;
  if (text == "lockstep") {
    return Behaviour::Lockstep;
  }
  if (text == "grouped") {
    return Behaviour::Grouped;
  }
  if (text == "behind-dot") {
    return Behaviour::BehindDot;
  }
  badValue(option, text);
}

// An IPv4 address in host byte order, so that a range can be counted through.
std::uint32_t ipv4(const std::string& option, const std::string& text) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) {
    badValue(option, text);
  }
  return ntohl(a.s_addr);
}

// "A-B" (inclusive) or "A,B,C" (each item may itself be a range): local addresses to bind.
std::vector<sockaddr_in> sourceAddresses(const std::string& option, const std::string& text) {
  // More addresses than this would not be told apart by anyone: a typo, not a plan.
  constexpr std::uint32_t kMaxAddresses = 65536;
  std::vector<sockaddr_in> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    const std::size_t dash = item.find('-');
    const std::uint32_t first = ipv4(option, item.substr(0, dash));
    const std::uint32_t last =
        dash == std::string::npos ? first : ipv4(option, item.substr(dash + 1));
    if (last < first || last - first >= kMaxAddresses ||
        out.size() + (last - first) >= kMaxAddresses) {
      badValue(option, text);
    }
    for (std::uint32_t a = first;; ++a) {
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = htonl(a);
      out.push_back(sa);
      if (a == last) {
        break;
      }
    }
    start = comma + 1;
  }
  return out;
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
    } else if (a == "--behaviour") {
      o.behaviour = behaviour(a, value());
    } else if (a == "--pipelining") {
      o.behaviour = certrelay::load::Behaviour::Grouped;  // the older name of grouped
    } else if (a == "--bdat") {
      o.bdat = true;
    } else if (a == "--idle") {
      o.idle = true;
    } else if (a == "--hold") {
      o.hold = real(a, value());
    } else if (a == "--connect-batch") {
      o.connectBatch = smallInteger(a, value());
    } else if (a == "--source-addresses") {
      o.sources = sourceAddresses(a, value());
    } else if (a == "--json") {
      o.jsonOnly = true;
    } else {
      usage();
      return 2;
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.connections < 1 || o.sessions < 1 || o.messages < 0 ||
      o.duration <= 0 || (o.cert.empty() != o.key.empty()) || (o.idle && !o.starttls) ||
      o.connectBatch < 0) {
    usage();
    return 2;
  }
  if (o.bdat && o.behaviour == certrelay::load::Behaviour::BehindDot) {
    // BDAT has no dot for the next MAIL to follow.
    std::fprintf(stderr, "certrelay-load: --bdat and --behaviour behind-dot do not combine\n");
    return 2;
  }
  // A server that has already closed a connection (e.g. its handshake timeout in a burst)
  // makes the next write fail with EPIPE; without this the signal ends the whole run.
  std::signal(SIGPIPE, SIG_IGN);
  return certrelay::load::Runner(std::move(o)).run();
}
