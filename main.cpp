// certrelay: a TLS-terminating SMTP proxy that relays for listed client certificates.
//
//   certrelay --config FILE        run in the foreground, log to stdout
//   certrelay --check-config -c F  load and validate everything, print file:line: reason
//   certrelay ctl drain|reload|health [-c F]   ask the running process (admin endpoint)
//   certrelay --version

#include <mimalloc.h>
#include <openssl/crypto.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/admin/ctl.h"
#include "proxy/server.h"

// The build's git revision; the build system defines it when it knows one.
#ifndef CERTRELAY_REVISION
#define CERTRELAY_REVISION "unknown"
#endif

namespace {

const std::string kDefaultConfig(certrelay::admin::kDefaultConfigFile);

void usage(std::FILE* out) {
  std::fprintf(
      out,
      "usage: certrelay [-c|--config FILE] [-t|--check-config] [--version] [-h|--help]\n"
      "       certrelay ctl drain|reload|health [-c|--config FILE]\n"
      "\n"
      "options:\n"
      "  -c, --config FILE    configuration file (default %s)\n"
      "  -t, --check-config   validate the configuration and every file it names, then exit\n"
      "      --version        print the version, the revision and the library versions\n"
      "  -h, --help           print this help\n"
      "\n"
      "ctl: one request to the running process's admin endpoint (admin.address in the\n"
      "config), for a Kubernetes preStop exec in an image without a shell or curl:\n"
      "  ctl drain            POST /drain: graceful drain, as SIGTERM\n"
      "  ctl reload           POST /reload: reload, as SIGHUP\n"
      "  ctl health           GET /readyz?verbose: print every readiness check\n"
      "  ctl exit status: 0 answered 2xx, 1 answered otherwise, 2 not asked (usage, config,\n"
      "  no [admin] address, endpoint unreachable or silent for 5 s)\n"
      "\n"
      "signals:\n"
      "  SIGTERM, SIGQUIT     graceful drain: readiness fails, listeners close, sessions finish\n"
      "  SIGINT, a 2nd SIGTERM  fast exit, once messages in DATA got their reply\n"
      "  SIGHUP               reload the TLS files and the fingerprint table (also while\n"
      "                       draining)\n"
      "\n"
      "exit status: 0 clean, 1 runtime or configuration error, 2 usage error\n"
      "\n"
      "docs: README.md\n",
      kDefaultConfig.c_str());
}

void printVersion() {
  std::printf("certrelay %s (revision %s)\n", CERTRELAY_VERSION, CERTRELAY_REVISION);
  // The libraries actually loaded, which may differ from those built against: what matters
  // when a TLS bug report comes in.
  std::printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
  std::printf("libuv %s\n", uv_version_string());
}

}  // namespace

int main(int argc, char** argv) {
  // Give freed memory back to the OS at once. A full handshake briefly allocates far more than an
  // idle session keeps; with mimalloc's default delay that peak stays resident, and idle
  // connections cost ~44 KiB each instead of ~24 KiB (measured with certrelay-load --idle, 1000
  // connections). No CPU cost was measurable.
  mi_option_set(mi_option_decommit_delay, 0);
  if (argc >= 2 && std::strcmp(argv[1], "ctl") == 0) {
    return certrelay::admin::runCtl(std::vector<std::string>(argv + 2, argv + argc));
  }
  std::string configPath = kDefaultConfig;
  bool checkOnly = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-c" || arg == "--config") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "certrelay: %s needs a file name\n", arg.c_str());
        return 2;
      }
      configPath = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      configPath = arg.substr(std::strlen("--config="));
    } else if (arg == "-t" || arg == "--check-config") {
      checkOnly = true;
    } else if (arg == "--version") {
      printVersion();
      return 0;
    } else if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "certrelay: unknown argument '%s'\n", arg.c_str());
      usage(stderr);
      return 2;
    }
  }

  std::shared_ptr<const certrelay::config::Config> config;
  try {
    config = std::make_shared<const certrelay::config::Config>(certrelay::config::load(configPath));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  if (checkOnly) {
    for (const auto& line : config->environmentOverrides) {
      std::printf("from the environment: %s\n", line.c_str());
    }
    const certrelay::proxy::RuntimeCheck check = certrelay::proxy::checkRuntimeConfig(*config);
    for (const auto& warning : check.warnings) {
      std::fprintf(stderr, "warning: %s\n", warning.c_str());
    }
    if (!check.error.empty()) {
      std::fprintf(stderr, "%s\n", check.error.c_str());
      return 1;
    }
    std::printf("%s: configuration OK\n", config->file.c_str());
    return 0;
  }
  return certrelay::proxy::runServer(config);
}
