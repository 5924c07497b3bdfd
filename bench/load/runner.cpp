// certrelay-load: the run (slots, deadline, idle hold) and the report.

#include <openssl/err.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "bench/load/load.h"

namespace certrelay::load {

std::uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

Runner::Runner(Options options) : options_(std::move(options)) {
  // A body of 76-character lines: no line starts with '.', so DATA needs no stuffing and BDAT
  // can send the very same bytes.
  body_ = "Subject: certrelay-load\r\n\r\n";
  while (body_.size() < options_.bodySize) {
    const std::size_t room = options_.bodySize - body_.size();
    const std::size_t len = room > 78 ? 76 : (room > 2 ? room - 2 : 1);
    body_.append(len, 'x');
    body_ += "\r\n";
  }
}

bool Runner::mayStartSession() {
  if (stopping_) {
    return false;
  }
  if (options_.idle) {
    return stats_.sessionsStarted < options_.connections;
  }
  return stats_.sessionsStarted < options_.sessions;
}

void Runner::launch(Slot& slot) {
  ++stats_.sessionsStarted;  // reserved now: a queued session counts against --sessions
  slot.queue();
  queued_.push_back(&slot);
  startQueued();
}

void Runner::setupEnded() {
  --settingUp_;
  startQueued();
}

void Runner::startQueued() {
  // A session that fails at once ends its setup from inside startSession(); the outer loop
  // goes on instead of recursing once per queued slot.
  if (startingQueued_) {
    return;
  }
  startingQueued_ = true;
  while (!stopping_ && !queued_.empty() &&
         (options_.connectBatch == 0 || settingUp_ < options_.connectBatch)) {
    Slot* slot = queued_.front();
    queued_.pop_front();
    ++settingUp_;
    slot->startSession();
  }
  startingQueued_ = false;
}

const sockaddr_in* Runner::nextSource() {
  if (options_.sources.empty()) {
    return nullptr;
  }
  const sockaddr_in* source = &options_.sources[nextSource_];
  nextSource_ = (nextSource_ + 1) % options_.sources.size();
  return source;
}

void Runner::slotIdle() {
  ++stats_.idleOpen;
  maybeHold();
}

void Runner::maybeHold() {
  // Every slot is either holding an open session or has failed (counted as an error).
  if (idleAnnounced_ || stats_.idleOpen + stats_.sessionsDone < options_.connections) {
    return;
  }
  idleAnnounced_ = true;
  std::printf("idle: %ld sessions open\n", stats_.idleOpen);
  std::fflush(stdout);
  uv_timer_start(
      &holdTimer_,
      [](uv_timer_t* t) {
        auto* runner = static_cast<Runner*>(t->data);
        for (auto& slot : runner->slots_) {
          slot->quitIdle();
        }
      },
      static_cast<std::uint64_t>(options_.hold * 1000), 0);
}

void Runner::slotFinished() {
  if (options_.idle && !stopping_) {
    maybeHold();
  }
  for (const auto& slot : slots_) {
    if (slot->busy()) {
      return;
    }
  }
  stop();
}

void Runner::stop() {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  queued_.clear();  // those slots are still busy: shutdown() counts them as "stopped"
  for (auto& slot : slots_) {
    slot->shutdown();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&holdTimer_), nullptr);
}

namespace {

// The most the soft limit may be raised to: the hard limit, or fs.nr_open when that is
// "unlimited" (setrlimit refuses more than nr_open).
rlim_t descriptorCeiling(rlim_t hard) {
  if (hard != RLIM_INFINITY) {
    return hard;
  }
  std::ifstream in("/proc/sys/fs/nr_open");
  unsigned long nrOpen = 1024UL * 1024UL;
  in >> nrOpen;
  return static_cast<rlim_t>(nrOpen);
}

}  // namespace

bool Runner::raiseDescriptorLimit() {
  // One descriptor per connection, plus the loop's own (epoll, eventfd, signal pipe) and the
  // standard streams, with room to spare.
  constexpr rlim_t kHeadroom = 64;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    std::perror("certrelay-load: getrlimit(RLIMIT_NOFILE)");
    return false;
  }
  const rlim_t ceiling = descriptorCeiling(limit.rlim_max);
  if (limit.rlim_cur < ceiling) {
    limit.rlim_cur = ceiling;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      std::perror("certrelay-load: setrlimit(RLIMIT_NOFILE)");
      (void)getrlimit(RLIMIT_NOFILE, &limit);
    }
  }
  const auto needed = static_cast<rlim_t>(options_.connections) + kHeadroom;
  if (limit.rlim_cur < needed) {
    std::fprintf(stderr,
                 "certrelay-load: --connections %d needs %lu descriptors (one per connection "
                 "plus %lu spare) but RLIMIT_NOFILE allows %lu (hard limit %lu); raise it, "
                 "e.g. ulimit -n %lu or prlimit --nofile=%lu:%lu\n",
                 options_.connections, static_cast<unsigned long>(needed),
                 static_cast<unsigned long>(kHeadroom), static_cast<unsigned long>(limit.rlim_cur),
                 static_cast<unsigned long>(limit.rlim_max), static_cast<unsigned long>(needed),
                 static_cast<unsigned long>(needed), static_cast<unsigned long>(needed));
    return false;
  }
  return true;
}

int Runner::run() {
  if (uv_ip4_addr(options_.host.c_str(), options_.port, &address_) != 0) {
    std::fprintf(stderr, "certrelay-load: --host must be an IPv4 address\n");
    return 2;
  }
  if (!raiseDescriptorLimit()) {
    return 2;
  }
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx_, options_.cafile.empty() ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
  if (!options_.cafile.empty() &&
      SSL_CTX_load_verify_locations(ctx_, options_.cafile.c_str(), nullptr) != 1) {
    std::fprintf(stderr, "certrelay-load: cannot load %s\n", options_.cafile.c_str());
    return 2;
  }
  if (!options_.cert.empty() &&
      (SSL_CTX_use_certificate_chain_file(ctx_, options_.cert.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx_, options_.key.c_str(), SSL_FILETYPE_PEM) != 1)) {
    std::fprintf(stderr, "certrelay-load: cannot load %s / %s\n", options_.cert.c_str(),
                 options_.key.c_str());
    return 2;
  }
  // The generator keeps sessions itself (per slot), not in OpenSSL's client cache.
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);

  uv_loop_init(&loop_);
  uv_timer_init(&loop_, &deadline_);
  uv_timer_init(&loop_, &holdTimer_);
  deadline_.data = holdTimer_.data = this;
  uv_timer_start(
      &deadline_, [](uv_timer_t* t) { static_cast<Runner*>(t->data)->stop(); },
      static_cast<std::uint64_t>(options_.duration * 1000), 0);
  for (int i = 0; i < options_.connections; ++i) {
    slots_.push_back(std::make_unique<Slot>(*this, i));
  }
  const std::uint64_t start = nowNs();
  for (auto& slot : slots_) {
    if (mayStartSession()) {
      launch(*slot);
    }
  }
  bool anyBusy = false;
  for (auto& slot : slots_) {
    anyBusy = anyBusy || slot->busy();
  }
  if (!anyBusy) {
    stop();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  const double seconds = static_cast<double>(nowNs() - start) / 1e9;
  uv_loop_close(&loop_);
  SSL_CTX_free(ctx_);
  report(seconds);
  long errors = 0;
  for (const auto& [kind, n] : stats_.errors) {
    errors += n;
  }
  return errors == 0 ? 0 : 1;
}

namespace {

double percentile(std::vector<double> values, double q) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const auto index =
      static_cast<std::size_t>(std::llround(q * static_cast<double>(values.size() - 1)));
  return values[std::min(index, values.size() - 1)];
}

std::string latencyJson(const std::vector<double>& v) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f}", percentile(v, 0.5),
                percentile(v, 0.9), percentile(v, 0.99));
  return buf;
}

}  // namespace

void Runner::report(double seconds) {
  const Stats& s = stats_;
  const long ok = static_cast<long>(s.sessionMs.size());
  const long handshakes = s.handshakesFull + s.handshakesResumed;
  if (!options_.jsonOnly) {
    std::printf("%-22s %12s\n", "sessions completed", std::to_string(ok).c_str());
    std::printf("%-22s %12ld\n", "messages", s.messages);
    std::printf("%-22s %12.3f\n", "seconds", seconds);
    std::printf("%-22s %12.1f\n", "sessions/s", ok / seconds);
    std::printf("%-22s %12.1f\n", "messages/s", s.messages / seconds);
    std::printf("%-22s %12.1f  (full %ld, resumed %ld)\n", "handshakes/s", handshakes / seconds,
                s.handshakesFull, s.handshakesResumed);
    std::printf("%-22s %12s %10s %10s\n", "latency ms", "p50", "p90", "p99");
    const std::pair<const char*, const std::vector<double>*> rows[] = {
        {"  session", &s.sessionMs}, {"  handshake", &s.handshakeMs}, {"  message", &s.messageMs}};
    for (const auto& [name, values] : rows) {
      std::printf("%-22s %12.3f %10.3f %10.3f\n", name, percentile(*values, 0.5),
                  percentile(*values, 0.9), percentile(*values, 0.99));
    }
    for (const auto& [kind, n] : s.errors) {
      std::printf("error %-16s %12ld\n", kind.c_str(), n);
    }
  }
  std::string errors = "{";
  for (const auto& [kind, n] : s.errors) {
    errors += (errors.size() > 1 ? ",\"" : "\"") + kind + "\":" + std::to_string(n);
  }
  errors += "}";
  std::printf(
      "{\"sessions\":%ld,\"messages\":%ld,\"errors\":%s,\"seconds\":%.3f,"
      "\"sessions_per_s\":%.1f,\"messages_per_s\":%.1f,\"handshakes_full\":%ld,"
      "\"handshakes_resumed\":%ld,\"handshakes_per_s\":%.1f,\"latency_ms\":{\"session\":%s,"
      "\"handshake\":%s,\"message\":%s}}\n",
      ok, s.messages, errors.c_str(), seconds, ok / seconds, s.messages / seconds, s.handshakesFull,
      s.handshakesResumed, handshakes / seconds, latencyJson(s.sessionMs).c_str(),
      latencyJson(s.handshakeMs).c_str(), latencyJson(s.messageMs).c_str());
  std::fflush(stdout);
}

}  // namespace certrelay::load
