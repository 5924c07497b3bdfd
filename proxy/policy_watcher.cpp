#include "proxy/policy_watcher.h"

#include "config/read_file.h"
#include "proxy/log.h"

namespace certrelay::proxy {

struct PolicyWatcher::Job {
  uv_work_t request{};
  PolicyWatcher* owner;
  std::string reason;
  // Inputs, copied so the thread pool touches nothing the loop thread changes.
  std::filesystem::path file;
  config::Policy settings;
  std::string currentHash;
  // Results.
  std::string hash;
  bool unchanged = false;
  policy::PolicyPtr policy;
  std::string error;
};

PolicyWatcher::PolicyWatcher(uv_loop_t* loop, SharedState& shared)
    : loop_(loop), shared_(shared), file_(shared.config->policy.fingerprints) {
  currentHash_ = shared_.policy.load()->table.hash();
}

std::string PolicyWatcher::start() {
  if (file_.empty()) {
    return {};
  }
  started_ = true;  // from here on stop() closes whatever was initialised
  const auto& settings = shared_.config->policy;
  const auto failed = [](const char* what, int rc) {
    return std::string("policy: ") + what + ": " + uv_strerror(rc);
  };
  if (const int rc = uv_timer_init(loop_, &debounce_); rc != 0) {
    return failed("uv_timer_init", rc);
  }
  if (const int rc = uv_timer_init(loop_, &poll_); rc != 0) {
    return failed("uv_timer_init", rc);
  }
  if (const int rc = uv_fs_event_init(loop_, &directory_); rc != 0) {
    return failed("uv_fs_event_init", rc);
  }
  debounce_.data = poll_.data = directory_.data = this;

  const std::string directory = file_.parent_path().string();
  const int watched = uv_fs_event_start(
      &directory_,
      [](uv_fs_event_t* handle, const char*, int, int) {
        static_cast<PolicyWatcher*>(handle->data)->onDirectoryEvent();
      },
      directory.c_str(), 0);
  if (watched != 0) {
    log::warning("policy: cannot watch " + directory + " (" + uv_strerror(watched) +
                 "); changes are seen by the poll only");
  }
  const auto poll = static_cast<std::uint64_t>(settings.reloadPollInterval.count());
  if (const int rc = uv_timer_start(
          &poll_, [](uv_timer_t* t) { static_cast<PolicyWatcher*>(t->data)->startJob("poll"); },
          poll, poll);
      rc != 0) {
    return failed("uv_timer_start(poll)", rc);
  }
  log::info("policy: watching " + directory + " for changes to " + file_.filename().string() +
            " (poll every " + std::to_string(settings.reloadPollInterval.count()) + " ms)");
  return {};
}

void PolicyWatcher::onDirectoryEvent() {
  // Writers and kubelet touch several entries in a row: wait until they are quiet.
  if (const int rc = uv_timer_start(
          &debounce_,
          [](uv_timer_t* t) { static_cast<PolicyWatcher*>(t->data)->startJob("change"); },
          static_cast<std::uint64_t>(shared_.config->policy.reloadDebounce.count()), 0);
      rc != 0) {
    // Not expected (the timer is open while the watch is); a change must not be missed.
    log::warning(std::string("policy: debounce timer: ") + uv_strerror(rc) + "; reading now");
    startJob("change");
  }
}

void PolicyWatcher::reloadNow(const char* reason) {
  if (!started_) {
    log::info(std::string(reason) + ": no fingerprint table configured, nothing to reload");
    return;
  }
  startJob(reason);
}

void PolicyWatcher::startJob(const char* reason) {
  if (stopped_) {
    return;
  }
  if (running_ != nullptr) {
    pendingReason_ = reason;  // read again once the running job is done
    return;
  }
  auto* job = new Job;
  job->owner = this;
  job->reason = reason;
  job->file = file_;
  job->settings = shared_.config->policy;
  job->currentHash = currentHash_;
  job->request.data = job;
  running_ = job;
  const int rc = uv_queue_work(
      loop_, &job->request,
      [](uv_work_t* request) {
        // Thread pool: read, hash, parse. Nothing here touches the watcher.
        auto& j = *static_cast<Job*>(request->data);
        std::string content;
        if (!config::readWholeFile(j.file, content, j.error)) {
          return;
        }
        j.hash = policy::FingerprintTable::contentHash(content);
        if (j.hash == j.currentHash) {
          j.unchanged = true;
          return;
        }
        try {
          j.policy = policy::buildPolicy(
              j.settings,
              policy::FingerprintTable::parse(content, j.file.string(), j.settings.digest));
        } catch (const std::exception& e) {
          j.error = e.what();
        }
      },
      [](uv_work_t* request, int) {
        std::unique_ptr<Job> j(static_cast<Job*>(request->data));
        j->owner->finishJob(*j);
      });
  if (rc != 0) {
    // Without this, running_ would stay set and no reload (no revocation) would ever run again.
    running_ = nullptr;
    delete job;
    log::error(std::string("policy: cannot queue the read (") + reason +
               "): uv_queue_work: " + uv_strerror(rc) + "; the table in force is kept");
  }
}

void PolicyWatcher::finishJob(Job& job) {
  running_ = nullptr;
  if (stopped_) {
    return;
  }
  const auto inForce = shared_.policy.load();
  const std::string shortHash = currentHash_.substr(0, 16);
  if (!job.error.empty()) {
    // Once per distinct problem, but always when an operator asked (SIGHUP).
    if (job.error != lastFailure_ || job.reason == "SIGHUP") {
      log::warning("policy: " + job.error + "; keeping the table in force (" +
                   std::to_string(inForce->table.size()) + " entries, sha256 " + shortHash + ")");
      lastFailure_ = job.error;
    }
  } else if (job.unchanged) {
    lastFailure_.clear();
    if (job.reason != "poll" && job.reason != "change") {
      log::info("policy: " + job.reason + ": " + file_.string() + " unchanged (" +
                std::to_string(inForce->table.size()) + " entries, sha256 " + shortHash + ")");
    }
  } else {
    // The swap: from the next RCPT on, every worker decides with the new table.
    shared_.policy.store(job.policy);
    currentHash_ = job.hash;
    lastFailure_.clear();
    log::info("policy: reloaded (" + job.reason + ") " + file_.string() + ": " +
              std::to_string(job.policy->table.size()) + " entries, sha256 " +
              currentHash_.substr(0, 16));
  }
  if (!pendingReason_.empty()) {
    const std::string reason = std::move(pendingReason_);
    pendingReason_.clear();
    startJob(reason == "SIGHUP" ? "SIGHUP" : "change");
  }
}

void PolicyWatcher::stop() {
  if (!started_ || stopped_) {
    return;
  }
  stopped_ = true;
  for (auto* handle :
       {reinterpret_cast<uv_handle_t*>(&directory_), reinterpret_cast<uv_handle_t*>(&debounce_),
        reinterpret_cast<uv_handle_t*>(&poll_)}) {
    if (handle->loop != nullptr) {  // initialised (start() may have failed half-way)
      uv_close(handle, nullptr);
    }
  }
}

}  // namespace certrelay::proxy
