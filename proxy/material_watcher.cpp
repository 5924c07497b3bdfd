#include "proxy/material_watcher.h"

#include <algorithm>
#include <exception>
#include <map>
#include <stdexcept>

#include "common/assert.h"
#include "config/read_file.h"
#include "policy/relay_policy.h"
#include "proxy/log.h"

namespace certrelay::proxy {

bool eventConcerns(std::string_view name, const std::vector<std::string>& watchedNames) {
  if (name.empty() || name.substr(0, 2) == "..") {
    return true;
  }
  return std::find(watchedNames.begin(), watchedNames.end(), name) != watchedNames.end();
}

std::string materialHash(const std::vector<std::string>& contents) {
  if (contents.size() == 1) {
    return policy::FingerprintTable::contentHash(contents.front());
  }
  std::string digests;
  for (const auto& content : contents) {
    digests += policy::FingerprintTable::contentHash(content);
  }
  return policy::FingerprintTable::contentHash(digests);
}

struct MaterialWatcher::Directory {
  uv_fs_event_t handle{};
  MaterialWatcher* owner = nullptr;
  std::string path;
  std::vector<std::string> names;  // base names of the watched files in it
};

struct MaterialWatcher::Job {
  uv_work_t request{};
  MaterialWatcher* owner = nullptr;
  std::string reason;
  // Inputs, copied so the thread pool touches nothing the loop thread changes.
  std::vector<std::filesystem::path> files;
  std::function<Snapshot(std::vector<std::string>)> build;
  std::string currentHash;
  // Results.
  std::string hash;
  bool unchanged = false;
  Snapshot snapshot;
  std::string error;

  // Read, hash, build: runs on the thread pool (and on the loop thread for loadNow()).
  void run() {
    std::vector<std::string> contents(files.size());
    for (std::size_t i = 0; i < files.size(); ++i) {
      if (!config::readWholeFile(files[i], contents[i], error)) {
        return;
      }
    }
    hash = materialHash(contents);
    if (hash == currentHash) {
      unchanged = true;
      return;
    }
    try {
      snapshot = build(std::move(contents));
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
};

MaterialWatcher::MaterialWatcher(uv_loop_t* loop, Spec spec) : loop_(loop), spec_(std::move(spec)) {
  if (!CERTRELAY_ASSERT(!spec_.files.empty() && spec_.build && spec_.publish && spec_.describe)) {
    throw std::logic_error("material " + spec_.name + ": incomplete watcher spec");
  }
}

// The handles must be closed (stop(), then a loop run for their callbacks) before this.
MaterialWatcher::~MaterialWatcher() = default;

std::string MaterialWatcher::loadNow() {
  Job job;
  job.files = spec_.files;
  job.build = spec_.build;
  job.run();
  if (!job.error.empty()) {
    return job.error;
  }
  current_ = job.snapshot;
  currentHash_ = job.hash;
  spec_.publish(current_);
  if (spec_.loaded) {
    spec_.loaded(true);
  }
  log::info(spec_.name + ": loaded " + (spec_.subject.empty() ? "" : spec_.subject + ": ") +
            inForceText());
  return {};
}

std::string MaterialWatcher::inForceText() const {
  return spec_.describe(current_) + ", sha256 " + currentHash_.substr(0, 16);
}

std::string MaterialWatcher::start() {
  started_ = true;  // from here on stop() closes whatever was initialised
  const auto failed = [this](const char* what, int rc) {
    return spec_.name + ": " + what + ": " + uv_strerror(rc);
  };
  if (const int rc = uv_timer_init(loop_, &debounce_); rc != 0) {
    return failed("uv_timer_init", rc);
  }
  if (const int rc = uv_timer_init(loop_, &poll_); rc != 0) {
    return failed("uv_timer_init", rc);
  }
  debounce_.data = poll_.data = this;

  std::map<std::string, std::vector<std::string>> byDirectory;
  for (const auto& file : spec_.files) {
    byDirectory[file.parent_path().string()].push_back(file.filename().string());
  }
  std::string watching;
  for (auto& [path, names] : byDirectory) {
    auto directory = std::make_unique<Directory>();
    directory->owner = this;
    directory->path = path;
    directory->names = names;
    if (const int rc = uv_fs_event_init(loop_, &directory->handle); rc != 0) {
      return failed("uv_fs_event_init", rc);
    }
    directory->handle.data = directory.get();
    const int watched = uv_fs_event_start(
        &directory->handle,
        [](uv_fs_event_t* handle, const char* name, int, int) {
          const auto* d = static_cast<const Directory*>(handle->data);
          d->owner->onDirectoryEvent(*d, name);
        },
        path.c_str(), 0);
    if (watched != 0) {
      log::warning(spec_.name + ": cannot watch " + path + " (" + uv_strerror(watched) +
                   "); changes are seen by the poll only");
    }
    std::string list;
    for (const auto& name : names) {
      list += (list.empty() ? "" : ", ") + name;
    }
    watching.append(watching.empty() ? "" : "; ").append(path).append(" for changes to ");
    watching += list;
    directories_.push_back(std::move(directory));
  }
  const auto poll = static_cast<std::uint64_t>(spec_.poll.count());
  if (const int rc = uv_timer_start(
          &poll_, [](uv_timer_t* t) { static_cast<MaterialWatcher*>(t->data)->startJob("poll"); },
          poll, poll);
      rc != 0) {
    return failed("uv_timer_start(poll)", rc);
  }
  log::info(spec_.name + ": watching " + watching + " (poll every " +
            std::to_string(spec_.poll.count()) + " ms)");
  return {};
}

void MaterialWatcher::onDirectoryEvent(const Directory& directory, const char* name) {
  if (!eventConcerns(name == nullptr ? std::string_view() : std::string_view(name),
                     directory.names)) {
    return;
  }
  // Wait until the writers are quiet: each event restarts the debounce.
  if (const int rc = uv_timer_start(
          &debounce_,
          [](uv_timer_t* t) { static_cast<MaterialWatcher*>(t->data)->startJob("change"); },
          static_cast<std::uint64_t>(spec_.debounce.count()), 0);
      rc != 0) {
    // Not expected (the timer is open while the watch is); a change must not be missed.
    log::warning(spec_.name + ": debounce timer: " + uv_strerror(rc) + "; reading now");
    startJob("change");
  }
}

void MaterialWatcher::reloadNow(const char* reason) {
  startJob(reason);
}

void MaterialWatcher::startJob(const char* reason) {
  if (stopped_ || !started_) {
    return;
  }
  if (running_ != nullptr) {
    // Read again once the running job is done; an operator's reason wins over a change.
    if (pendingReason_.empty() || std::string_view(reason) != "poll") {
      pendingReason_ = reason;
    }
    return;
  }
  auto* job = new Job;
  job->owner = this;
  job->reason = reason;
  job->files = spec_.files;
  job->build = spec_.build;
  job->currentHash = currentHash_;
  job->request.data = job;
  running_ = job;
  ++counts_.started;
  const int rc = uv_queue_work(
      loop_, &job->request, [](uv_work_t* request) { static_cast<Job*>(request->data)->run(); },
      [](uv_work_t* request, int) {
        std::unique_ptr<Job> j(static_cast<Job*>(request->data));
        j->owner->finishJob(*j);
      });
  if (rc != 0) {
    // Without this, running_ would stay set and no reload (no revocation) would ever run again.
    running_ = nullptr;
    delete job;
    ++counts_.failed;
    log::error(spec_.name + ": cannot queue the read (" + reason +
               "): uv_queue_work: " + uv_strerror(rc) + "; keeping " + spec_.inForce + " in force");
  }
}

void MaterialWatcher::finishJob(Job& job) {
  running_ = nullptr;
  if (stopped_) {
    return;
  }
  const bool operatorAsked = job.reason != "poll" && job.reason != "change";
  if (!job.error.empty()) {
    ++counts_.failed;
    if (spec_.loaded) {
      spec_.loaded(false);
    }
    // Once per distinct problem and content, but always when an operator asked.
    const std::string failure = job.hash + " " + job.error;
    if (failure != lastFailure_ || operatorAsked) {
      log::warning(spec_.name + ": " + job.error + "; keeping " + spec_.inForce + " in force (" +
                   inForceText() + ")");
      lastFailure_ = failure;
    }
  } else if (job.unchanged) {
    ++counts_.unchanged;
    lastFailure_.clear();
    if (operatorAsked) {
      log::info(spec_.name + ": " + job.reason + ": " +
                (spec_.subject.empty() ? "" : spec_.subject + " ") + "unchanged (" + inForceText() +
                ")");
    }
  } else {
    // The swap: from the next session (or RCPT) on, every worker uses the new snapshot.
    current_ = job.snapshot;
    currentHash_ = job.hash;
    lastFailure_.clear();
    spec_.publish(current_);
    ++counts_.published;
    if (spec_.loaded) {
      spec_.loaded(true);
    }
    log::info(spec_.name + ": reloaded (" + job.reason + ") " +
              (spec_.subject.empty() ? "" : spec_.subject + ": ") + inForceText());
  }
  if (!pendingReason_.empty()) {
    const std::string reason = std::move(pendingReason_);
    pendingReason_.clear();
    startJob(reason.c_str());
  }
}

void MaterialWatcher::stop() {
  if (!started_ || stopped_) {
    return;
  }
  stopped_ = true;
  for (auto& directory : directories_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&directory->handle), nullptr);
  }
  for (auto* handle :
       {reinterpret_cast<uv_handle_t*>(&debounce_), reinterpret_cast<uv_handle_t*>(&poll_)}) {
    if (handle->loop != nullptr) {  // initialised (start() may have failed half-way)
      uv_close(handle, nullptr);
    }
  }
}

}  // namespace certrelay::proxy
