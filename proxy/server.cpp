#include "proxy/server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "common/assert.h"
#include "policy/relay_policy.h"
#include "proxy/backend_connection.h"
#include "proxy/capability_probe.h"
#include "proxy/descriptor_budget.h"
#include "proxy/log.h"
#include "proxy/material_watcher.h"
#include "proxy/metrics.h"
#include "proxy/net_util.h"
#include "proxy/process_admin.h"
#include "proxy/reverse_dns.h"
#include "proxy/service_notify.h"
#include "proxy/shared_state.h"
#include "proxy/supervisor.h"
#include "proxy/watched_material.h"
#include "proxy/worker.h"
#include "tls/client_context.h"
#include "tls/context.h"

namespace certrelay::proxy {
namespace {

class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A listening socket (the caller owns it), or StartupError. `sharePort`: SO_REUSEPORT, so that
// every worker gets its own socket on the port and the kernel spreads connections between them.
[[nodiscard]] int bindListener(const config::Listener& listener, std::uint16_t port,
                               bool sharePort) {
  config::Endpoint endpoint = listener.address;
  endpoint.port = port;
  sockaddr_storage addr{};
  if (!toSockaddr(endpoint, addr)) {
    throw StartupError("listener " + listener.name + ": address " + endpoint.host +
                       " is not a numeric IP address");
  }
  const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw StartupError("listener " + listener.name + ": socket: " + std::strerror(errno));
  }
  const auto fail = [&](const char* what) {
    const int saved = errno;
    ::close(fd);
    throw StartupError("listener " + listener.name + ": " + what + " " + endpoint.toString() +
                       ": " + (saved == EADDRINUSE ? "address in use" : std::strerror(saved)));
  };
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    fail("SO_REUSEADDR on");
  }
  if (sharePort && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    fail("SO_REUSEPORT on");
  }
  if (addr.ss_family == AF_INET6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    fail("IPV6_V6ONLY on");
  }
  const socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    fail("cannot listen on");
  }
  if (sharePort && ::listen(fd, 1024) != 0) {
    fail("cannot listen on");
  }
  return fd;
}

// The port a bound socket got (the kernel's choice for port 0), or StartupError.
[[nodiscard]] std::uint16_t boundPort(const config::Listener& listener, int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw StartupError("listener " + listener.name + ": getsockname: " + std::strerror(errno));
  }
  return fromSockaddr(addr).port;
}

// SO_REUSEPORT would let a second certrelay (same user) bind the same address silently and take
// part of the traffic. A plain bind first proves that nobody serves it: it fails with
// EADDRINUSE against any listening socket, shared or not. Returns the port (the kernel's choice
// for port 0), which the workers' sockets then share.
[[nodiscard]] std::uint16_t claimAddress(const config::Listener& listener) {
  const int fd = bindListener(listener, listener.address.port, false);
  try {
    const std::uint16_t port = boundPort(listener, fd);
    ::close(fd);
    return port;
  } catch (const StartupError&) {
    ::close(fd);
    throw;
  }
}

// A libuv call the server cannot run without: its failure is a StartupError naming it.
void uvCheck(int rc, const char* what) {
  if (rc != 0) {
    throw StartupError(std::string(what) + ": " + uv_strerror(rc));
  }
}

struct MainLoop {
  uv_loop_t loop{};
  uv_timer_t probeTimer{};
  CapabilityProbe* probe = nullptr;
  std::unique_ptr<admin::AdminServer> admin;  // when [admin] is configured
  // Everything read from files that reloads live (the table, the TLS generation).
  std::vector<std::unique_ptr<MaterialWatcher>>* watchers = nullptr;
};

// Closes the main loop's own handles, those that were initialised (a zeroed handle has no loop)
// and are not closing already.
void closeHandles(MainLoop& main) {
  auto* timer = reinterpret_cast<uv_handle_t*>(&main.probeTimer);
  if (timer->loop != nullptr && uv_is_closing(timer) == 0) {
    uv_close(timer, nullptr);
  }
}

// uv_loop_close fails (UV_EBUSY) only when a handle is still open: a bug, since the handle then
// outlives the loop it points to.
void closeLoop(uv_loop_t& loop) {
  const int rc = uv_loop_close(&loop);
  if (!CERTRELAY_ASSERT(rc == 0)) {
    log::error(std::string("main loop: uv_loop_close: ") + uv_strerror(rc));
  }
}

// Everything on the main loop but the supervisor: the probe and its timer, the watchers. Called
// once the workers are done (or when start-up fails after they were started).
void stopBackground(MainLoop& main) {
  if (main.admin) {
    main.admin->stop();  // joins the admin thread: no request reaches the supervisor after this
  }
  main.probe->stop();
  for (auto& watcher : *main.watchers) {
    watcher->stop();
  }
  closeHandles(main);
}

// The backend probe timer. Its callback runs only inside uv_run, once every pointer in `main` is
// set.
void startMainHandles(MainLoop& main, std::uint64_t probeInterval) {
  uvCheck(uv_timer_init(&main.loop, &main.probeTimer), "uv_timer_init");
  main.probeTimer.data = &main;
  uvCheck(
      uv_timer_start(
          &main.probeTimer, [](uv_timer_t* t) { static_cast<MainLoop*>(t->data)->probe->start(); },
          probeInterval, probeInterval),
      "uv_timer_start(probe)");
}

}  // namespace

RuntimeCheck checkRuntimeConfig(const config::Config& config) {
  RuntimeCheck check;
  try {
    const auto context = tls::Context::create(config.tls, config.policy.digest);
    check.warnings = context->warnings();
    if (config.backend.tls.enabled()) {
      const auto backend = tls::ClientContext::create(config.backend.tls);
      check.warnings.insert(check.warnings.end(), backend->warnings().begin(),
                            backend->warnings().end());
    }
    policy::buildPolicy(config.policy);
  } catch (const std::exception& e) {
    check.error = e.what();
  }
  return check;
}

namespace {

// Loads every material into `shared` and makes its watcher (started later, with the listeners).
// False on a load error (logged): nothing may start without a valid certificate and table.
bool loadSharedState(uv_loop_t* loop, const std::shared_ptr<const config::Config>& config,
                     SharedState& shared, std::vector<std::unique_ptr<MaterialWatcher>>& watchers) {
  shared.config = config;
  shared.identityInForce.store(config->backend.identity);  // "auto": resolved by the probe
  // Before the first load: the watchers' publications set its gauges.
  shared.metrics = std::make_shared<Metrics>(*config);
  if (config->limits.clientLimitsEnabled()) {
    shared.clientLimits = std::make_unique<ClientLimits>(config->workers, config->limits.rateWindow,
                                                         config->limits.exemptNetworks);
  }
  watchers.push_back(std::make_unique<MaterialWatcher>(loop, tlsMaterial(shared)));
  if (config->backend.tls.enabled()) {
    watchers.push_back(std::make_unique<MaterialWatcher>(loop, backendTlsMaterial(shared)));
  }
  if (config->policy.fingerprints.empty()) {
    shared.policy.store(policy::buildPolicy(config->policy));
  } else {
    watchers.push_back(std::make_unique<MaterialWatcher>(loop, policyMaterial(shared)));
  }
  for (auto& watcher : watchers) {
    if (auto problem = watcher->loadNow(); !problem.empty()) {
      log::error(problem);
      return false;
    }
  }
  return true;
}

// Resolves the backends and learns their capabilities before the first client asks for EHLO. A
// backend that is not up yet (a sidecar starting) or a name that does not resolve yet is not
// fatal: the probe keeps trying (a backend whose certificate does not verify is one that is not
// up). False (logged): an explicit identity mode that no backend that answered offers, or a
// backend that answered without the STARTTLS backend.tls = "starttls" requires: refuse to start.
bool probeBackend(MainLoop& main, CapabilityProbe& probe, const config::Config& config,
                  const SharedState& shared) {
  probe.start();
  // Returns when the round is done (non-zero only after a uv_stop, which nothing calls).
  static_cast<void>(uv_run(&main.loop, UV_RUN_DEFAULT));
  if (!probe.starttlsMissing().empty()) {
    // Never a plaintext hop when TLS was asked for; better not to start than to fail every
    // session with 421.
    log::error("backend.tls = \"starttls\" but " + probe.starttlsMissing() + "; not starting");
    return false;
  }
  if (!probe.answeredOnce()) {
    log::warning(
        "backend not answering yet; EHLO offers only PIPELINING and STARTTLS until it "
        "does");
    return true;
  }
  const auto backends = shared.backends.load();
  if (backends->healthyCount() > 0) {
    return true;
  }
  const auto unfit = std::find_if(
      backends->targets.begin(), backends->targets.end(),
      [](const BackendTarget& target) { return target.health == BackendHealth::Unfit; });
  if (unfit == backends->targets.end()) {
    return true;  // answered once, down since: the probe keeps trying
  }
  const smtp::Capabilities& offered = *unfit->capabilities;
  const smtp::HandoffChoice choice = smtp::chooseIdentityHandoff(config.backend.identity, offered);
  log::error(
      "backend.identity = " + std::string(config::identityModeKeyword(config.backend.identity)) +
      " but backend " + unfit->address.toString() + " does not offer " + choice.missing +
      " to the proxy; " +
      smtp::grantHint(offered,
                      choice.handoff == smtp::IdentityHandoff::Xforward ? "XFORWARD" : "XCLIENT") +
      "; not starting");
  return false;
}

// Binds every listener once per worker and starts the main loop's handles. False on a start-up
// error (logged; everything opened here is closed again).
bool bindListeners(MainLoop& main, const config::Config& config,
                   std::vector<std::vector<ListenerSocket>>& perWorker) {
  try {
    for (const auto& listener : config.listeners) {
      const std::uint16_t port = claimAddress(listener);
      for (unsigned w = 0; w < config.workers; ++w) {
        const int fd = bindListener(listener, port, true);
        perWorker[w].push_back(ListenerSocket{&listener, fd});
      }
      config::Endpoint bound = listener.address;
      bound.port = port;
      log::info("listening: name=" + listener.name + " address=" + bound.toString());
    }
    startMainHandles(main, static_cast<std::uint64_t>(config.backend.probeInterval.count()));
    for (auto& watcher : *main.watchers) {
      if (auto problem = watcher->start(); !problem.empty()) {
        throw StartupError(problem);
      }
    }
    return true;
  } catch (const StartupError& e) {
    log::error(e.what());
    for (auto& watcher : *main.watchers) {
      watcher->stop();
    }
    for (const auto& sockets : perWorker) {
      for (const auto& socket : sockets) {
        ::close(socket.fd);
      }
    }
    closeHandles(main);
    static_cast<void>(uv_run(&main.loop, UV_RUN_DEFAULT));  // the close callbacks
    closeLoop(main.loop);
    return false;
  }
}

// Raises RLIMIT_NOFILE and fits limits.max_connections under it (descriptor_budget.h): the
// configuration to run with, or null when it cannot fit (logged).
std::shared_ptr<const config::Config> fitDescriptors(
    const std::shared_ptr<const config::Config>& loaded) {
  rlim_t soft = 0;
  rlim_t hard = 0;
  const DescriptorBudget budget = applyDescriptorLimit(*loaded, soft, hard);
  if (!budget.error.empty()) {
    log::error(budget.error + "; not starting");
    return nullptr;
  }
  if (budget.warning.empty()) {
    return loaded;
  }
  log::warning(budget.warning);
  auto fitted = std::make_shared<config::Config>(*loaded);
  fitted->limits.maxConnections = budget.maxConnections;
  return fitted;
}

}  // namespace

int runServer(const std::shared_ptr<const config::Config>& loaded) {
  signal(SIGPIPE, SIG_IGN);
  log::configure(loaded->log);  // before any other thread exists
  const std::shared_ptr<const config::Config> config = fitDescriptors(loaded);
  if (!config) {
    return 1;
  }
  MainLoop main;
  if (const int rc = uv_loop_init(&main.loop); rc != 0) {
    log::error(std::string("uv_loop_init: ") + uv_strerror(rc));
    return 1;
  }
  SharedState shared;
  std::vector<std::unique_ptr<MaterialWatcher>> watchers;
  main.watchers = &watchers;
  if (!loadSharedState(&main.loop, config, shared, watchers)) {
    closeLoop(main.loop);  // nothing ran on it yet
    return 1;
  }
  if (config->dns.reverseLookup) {
    // A resolver the workers could not use is a start-up error, not a silent "unknown" later.
    if (const std::string problem = ReverseDns::check(config->dns); !problem.empty()) {
      log::error("dns.reverse_lookup: " + problem + "; not starting");
      closeLoop(main.loop);  // nothing ran on it yet
      return 1;
    }
  }
  CapabilityProbe probe(&main.loop, shared);
  main.probe = &probe;
  if (!probeBackend(main, probe, *config, shared)) {
    closeLoop(main.loop);  // only the probe ran on it, and it is done
    return 1;
  }

  std::vector<std::vector<ListenerSocket>> perWorker(config->workers);
  if (!bindListeners(main, *config, perWorker)) {
    return 1;
  }

  Supervisor supervisor(&main.loop, shared);
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned w = 0; w < config->workers; ++w) {
    workers.push_back(std::make_unique<Worker>(w, shared, std::move(perWorker[w])));
    workers.back()->startThread([&supervisor] { supervisor.workerFinished(); });
  }
  ProcessAdmin adminHandler(shared, workers, probe, supervisor);
  std::string problem = supervisor.start(workers, watchers, [&main] { stopBackground(main); });
  if (problem.empty() && config->admin.enabled) {
    main.admin = admin::AdminServer::start(config->admin, adminHandler, problem);
  }
  if (!problem.empty()) {
    // Nothing may stay half-started (an admin address in use, a failed signal handle).
    log::error(problem + "; not starting");
    for (auto& worker : workers) {
      worker->requestStop(std::chrono::milliseconds(0), true);
      worker->join();
    }
    stopBackground(main);
    static_cast<void>(uv_run(&main.loop, UV_RUN_DEFAULT));
    return 1;
  }
  log::info("ready: workers=" + std::to_string(config->workers));
  notifyReady();  // systemd Type=notify; a no-op without $NOTIFY_SOCKET
  // Returns once the supervisor and stopBackground() closed every handle (nothing calls uv_stop).
  static_cast<void>(uv_run(&main.loop, UV_RUN_DEFAULT));
  for (auto& worker : workers) {
    worker->join();
  }
  closeLoop(main.loop);
  log::info("stopped");
  return 0;
}

}  // namespace certrelay::proxy
