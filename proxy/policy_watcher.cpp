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

void PolicyWatcher::start() {
  if (file_.empty()) {
    return;
  }
  started_ = true;
  const auto& settings = shared_.config->policy;
  uv_timer_init(loop_, &debounce_);
  uv_timer_init(loop_, &poll_);
  uv_fs_event_init(loop_, &directory_);
  debounce_.data = poll_.data = directory_.data = this;

  const std::string directory = file_.parent_path().string();
  const int rc = uv_fs_event_start(
      &directory_,
      [](uv_fs_event_t* handle, const char*, int, int) {
        static_cast<PolicyWatcher*>(handle->data)->onDirectoryEvent();
      },
      directory.c_str(), 0);
  if (rc != 0) {
    log::warning("policy: cannot watch " + directory + " (" + uv_strerror(rc) +
                 "); changes are seen by the poll only");
  }
  const auto poll = static_cast<std::uint64_t>(settings.reloadPollInterval.count());
  uv_timer_start(
      &poll_, [](uv_timer_t* t) { static_cast<PolicyWatcher*>(t->data)->startJob("poll"); }, poll,
      poll);
  log::info("policy: watching " + directory + " for changes to " + file_.filename().string() +
            " (poll every " + std::to_string(settings.reloadPollInterval.count()) + " ms)");
}

void PolicyWatcher::onDirectoryEvent() {
  // Writers and kubelet touch several entries in a row: wait until they are quiet.
  uv_timer_start(
      &debounce_, [](uv_timer_t* t) { static_cast<PolicyWatcher*>(t->data)->startJob("change"); },
      static_cast<std::uint64_t>(shared_.config->policy.reloadDebounce.count()), 0);
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
  uv_queue_work(
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
  uv_close(reinterpret_cast<uv_handle_t*>(&directory_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&debounce_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
}

}  // namespace certrelay::proxy
