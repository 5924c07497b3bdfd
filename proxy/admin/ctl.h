#pragma once
// `certrelay ctl drain|reload|health [-c CONFIG]`: one request to the running process's admin
// endpoint, for places without a shell or curl (a Kubernetes preStop exec in a distroless
// image). It reads the same config file as the daemon to find admin.address.
//
// Exit status: 0 the endpoint answered 2xx; 1 it answered something else (the body says why);
// 2 nothing was asked (a usage error, an unreadable config, no [admin] address, or the endpoint
// unreachable or silent for 5 s).

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace certrelay::admin {

inline constexpr std::string_view kDefaultConfigFile = "/etc/certrelay/certrelay.toml";

// `args`: the words after "ctl". The answer's body goes to stdout, messages to stderr.
int runCtl(const std::vector<std::string>& args);

// The same, writing to the given streams (tests).
int runCtl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The ctl part of --help.
void printCtlUsage(std::ostream& out);

}  // namespace certrelay::admin
