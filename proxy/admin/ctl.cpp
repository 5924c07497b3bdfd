#include "proxy/admin/ctl.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>

#include "config/config.h"

namespace certrelay::admin {
namespace {

using Clock = std::chrono::steady_clock;

// preStop hooks have a budget (terminationGracePeriodSeconds): a hung endpoint must not eat it.
constexpr std::chrono::milliseconds kTimeout{5'000};
constexpr std::size_t kMaxAnswer = std::size_t{1024} * 1024;

constexpr int kAnswered2xx = 0;
constexpr int kAnsweredOther = 1;
constexpr int kNotAsked = 2;

struct Command {
  std::string name;  // drain, reload, health
  std::string method;
  std::string target;
};

std::optional<Command> commandNamed(std::string_view name) {
  if (name == "drain") {
    return Command{"drain", "POST", "/drain"};
  }
  if (name == "reload") {
    return Command{"reload", "POST", "/reload"};
  }
  if (name == "health") {
    return Command{"health", "GET", "/readyz?verbose"};
  }
  return std::nullopt;
}

struct Invocation {
  std::optional<Command> command;
  std::string configFile{kDefaultConfigFile};
  bool help = false;
};

// The words after "ctl"; "" on success, else what is wrong with them.
std::string parseArgs(const std::vector<std::string>& args, Invocation& out) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-c" || arg == "--config") {
      if (i + 1 >= args.size()) {
        return arg + " needs a file name";
      }
      out.configFile = args[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      out.configFile = arg.substr(std::strlen("--config="));
    } else if (arg == "-h" || arg == "--help") {
      out.help = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return "unknown option '" + arg + "'";
    } else if (out.command) {
      return "one command at a time (got '" + out.command->name + "' and '" + arg + "')";
    } else if (!(out.command = commandNamed(arg))) {
      return "unknown command '" + arg + "'";
    }
  }
  if (!out.help && !out.command) {
    return "which command? drain, reload or health";
  }
  return {};
}

// Where to connect: a wildcard listen address is reached through loopback.
config::Endpoint reachable(config::Endpoint endpoint) {
  if (endpoint.host == "0.0.0.0") {
    endpoint.host = "127.0.0.1";
  } else if (endpoint.host == "::") {
    endpoint.host = "::1";
  }
  return endpoint;
}

int remainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error (errno).
int waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, remainingMs(deadline));
    if (rc < 0 && errno == EINTR) {
      continue;
    }
    return rc;
  }
}

class Socket {
 public:
  Socket() = default;
  ~Socket() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }
  void reset(int fd) { fd_ = fd; }

 private:
  int fd_ = -1;
};

// What went wrong talking to the endpoint: not asked (exit 2).
struct Failure {
  std::string message;
};

// A connected non-blocking socket, or a Failure.
std::optional<Failure> connectTo(const config::Endpoint& endpoint, Socket& socket,
                                 Clock::time_point deadline) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (::inet_pton(AF_INET, endpoint.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(endpoint.port);
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, endpoint.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(endpoint.port);
    len = sizeof *v6;
  } else {
    return Failure{"admin.address " + endpoint.host + " is not a numeric IP address"};
  }
  socket.reset(::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.fd() < 0) {
    return Failure{std::string("socket: ") + std::strerror(errno)};
  }
  if (::connect(socket.fd(), reinterpret_cast<sockaddr*>(&addr), len) == 0) {
    return std::nullopt;
  }
  if (errno != EINPROGRESS) {
    return Failure{std::strerror(errno)};
  }
  const int ready = waitFor(socket.fd(), POLLOUT, deadline);
  if (ready <= 0) {
    return Failure{ready == 0 ? "no connection within 5 s" : std::strerror(errno)};
  }
  int soError = 0;
  socklen_t soLen = sizeof soError;
  if (::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &soError, &soLen) != 0) {
    return Failure{std::strerror(errno)};
  }
  if (soError != 0) {
    return Failure{std::strerror(soError)};
  }
  return std::nullopt;
}

std::optional<Failure> sendAll(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return Failure{std::string("send: ") + std::strerror(errno)};
    }
    const int ready = waitFor(fd, POLLOUT, deadline);
    if (ready <= 0) {
      return Failure{ready == 0 ? "could not send the request within 5 s" : std::strerror(errno)};
    }
  }
  return std::nullopt;
}

// The answer, parsed with the same parser as the server's requests.
struct Answer {
  unsigned status = 0;
  std::string body;
  bool complete = false;
};

http_parser_settings answerSettings() {
  http_parser_settings settings{};
  http_parser_settings_init(&settings);
  settings.on_body = [](http_parser* parser, const char* at, std::size_t length) {
    auto* answer = static_cast<Answer*>(parser->data);
    answer->body.append(at, std::min(length, kMaxAnswer - answer->body.size()));
    return 0;
  };
  settings.on_message_complete = [](http_parser* parser) {
    auto* answer = static_cast<Answer*>(parser->data);
    answer->status = parser->status_code;
    answer->complete = true;
    return 0;
  };
  return settings;
}

// Reads until the answer is complete (or the server closes after a body without length).
std::optional<Failure> receive(int fd, Answer& answer, Clock::time_point deadline) {
  static const http_parser_settings settings = answerSettings();
  http_parser parser{};
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &answer;
  char buffer[16 * 1024];
  while (!answer.complete) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int ready = waitFor(fd, POLLIN, deadline);
      if (ready <= 0) {
        return Failure{ready == 0 ? "no answer within 5 s" : std::strerror(errno)};
      }
      continue;
    }
    if (n < 0) {
      return Failure{std::string("recv: ") + std::strerror(errno)};
    }
    // n == 0 tells the parser about the end of the stream.
    const auto size = static_cast<std::size_t>(n);
    if (http_parser_execute(&parser, &settings, buffer, size) != size ||
        HTTP_PARSER_ERRNO(&parser) != HPE_OK) {
      return Failure{std::string("not an HTTP answer: ") +
                     http_errno_description(HTTP_PARSER_ERRNO(&parser))};
    }
    if (n == 0 && !answer.complete) {
      return Failure{"the connection closed before the answer was complete"};
    }
  }
  return std::nullopt;
}

std::string requestFor(const Command& command, const config::Endpoint& endpoint) {
  return command.method + " " + command.target + " HTTP/1.1\r\nHost: " + endpoint.toString() +
         "\r\nUser-Agent: certrelay-ctl/" CERTRELAY_VERSION
         "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

// Loads the config and finds the endpoint; nullopt (after saying why) when there is none.
std::optional<config::Endpoint> adminEndpoint(const std::string& file, std::ostream& err) {
  config::Config config;
  try {
    config = config::load(file);
  } catch (const std::exception& e) {
    err << e.what() << "\n";
    return std::nullopt;
  }
  if (!config.admin.enabled) {
    err << "certrelay ctl: " << config.file.string()
        << " has no [admin] address: ctl talks to the admin endpoint, which is off\n";
    return std::nullopt;
  }
  return reachable(config.admin.address);
}

}  // namespace

void printCtlUsage(std::ostream& out) {
  out << "usage: certrelay ctl drain|reload|health [-c|--config FILE]\n"
         "  drain    POST /drain: readiness fails, listeners close, sessions finish, then exit\n"
         "  reload   POST /reload: re-read the TLS files and the fingerprint table\n"
         "  health   GET /readyz?verbose: print every readiness check\n"
         "  The admin endpoint is the config's admin.address (0.0.0.0 and :: mean loopback).\n"
         "  exit: 0 answered 2xx, 1 answered otherwise, 2 not asked (usage, config, no\n"
         "  [admin] address, endpoint unreachable or silent for 5 s)\n";
}

int runCtl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Invocation invocation;
  if (const std::string problem = parseArgs(args, invocation); !problem.empty()) {
    err << "certrelay ctl: " << problem << "\n";
    printCtlUsage(err);
    return kNotAsked;
  }
  if (invocation.help) {
    printCtlUsage(out);
    return kAnswered2xx;
  }
  const std::optional<config::Endpoint> endpoint = adminEndpoint(invocation.configFile, err);
  if (!endpoint) {
    return kNotAsked;
  }
  const Command& command = *invocation.command;
  const Clock::time_point deadline = Clock::now() + kTimeout;
  Socket socket;
  Answer answer;
  std::optional<Failure> failure = connectTo(*endpoint, socket, deadline);
  if (!failure) {
    failure = sendAll(socket.fd(), requestFor(command, *endpoint), deadline);
  }
  if (!failure) {
    failure = receive(socket.fd(), answer, deadline);
  }
  if (failure) {
    err << "certrelay ctl: cannot reach the admin endpoint " << endpoint->toString() << ": "
        << failure->message << "\n";
    return kNotAsked;
  }
  out << answer.body;
  out.flush();
  if (answer.status >= 200 && answer.status < 300) {
    return kAnswered2xx;
  }
  err << "certrelay ctl: " << command.name << ": the admin endpoint answered " << answer.status
      << " " << http_status_str(static_cast<http_status>(answer.status)) << "\n";
  return kAnsweredOther;
}

int runCtl(const std::vector<std::string>& args) {
  return runCtl(args, std::cout, std::cerr);
}

}  // namespace certrelay::admin
