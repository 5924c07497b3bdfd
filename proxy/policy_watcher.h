#pragma once
// Keeps the fingerprint table current while the proxy runs.
//
// Security role: a revocation must take effect without a restart, and a broken or half-written
// file must never be in force. The *directory* of the table is watched (Kubernetes replaces a
// `..data` symlink; a watch on the file itself misses that), events are debounced, the file is
// read and parsed on the libuv thread pool (workers never wait), its content hash is compared
// with the table in force, and only a complete, valid table is published, by swapping the
// shared_ptr every worker reads at each RCPT. A file that cannot be read or parsed leaves the
// last good table in force and is logged once per distinct problem. SIGHUP reloads at once; a
// slow poll catches what the watch cannot see (NFS, a symlink into another directory).

#include <uv.h>

#include <filesystem>
#include <memory>
#include <string>

#include "policy/relay_policy.h"
#include "proxy/shared_state.h"

namespace certrelay::proxy {

class PolicyWatcher {
 public:
  // `shared.policy` must already hold the table loaded at start-up.
  PolicyWatcher(uv_loop_t* loop, SharedState& shared);
  PolicyWatcher(const PolicyWatcher&) = delete;
  PolicyWatcher& operator=(const PolicyWatcher&) = delete;

  // Starts the directory watch and the poll timer (nothing when no table file is configured).
  // Returns "" or why the watcher cannot run (a start-up error; call stop() to close it). A
  // directory that cannot be watched is not an error: the poll still sees changes.
  [[nodiscard]] std::string start();
  // Re-reads the file now, without waiting for the debounce (SIGHUP).
  void reloadNow(const char* reason);
  // Closes the handles; a read already on the thread pool finishes and is dropped.
  void stop();

 private:
  struct Job;  // one read+parse on the thread pool

  void onDirectoryEvent();
  void startJob(const char* reason);
  void finishJob(Job& job);

  uv_loop_t* loop_;
  SharedState& shared_;
  std::filesystem::path file_;
  bool started_ = false;
  bool stopped_ = false;
  uv_fs_event_t directory_{};
  uv_timer_t debounce_{};
  uv_timer_t poll_{};
  Job* running_ = nullptr;     // at most one job at a time
  std::string pendingReason_;  // a change seen while a job ran: read again after it
  std::string currentHash_;    // content hash of the table in force
  std::string lastFailure_;    // logged once until the problem changes
};

}  // namespace certrelay::proxy
