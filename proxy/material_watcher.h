#pragma once
// Keeps what the proxy reads from files current while it runs: the fingerprint table, and the
// TLS generation (certificates, keys, client CA, ticket keys). One mechanism for all of them.
//
// Security role: a revocation or a renewed certificate must take effect without a restart, and a
// broken, half-written or mismatched set of files must never be in force. For each material:
// - the *directories* of its files are watched (Kubernetes replaces a `..data` symlink; a watch
//   on the file itself misses that), and only events about its own files (or kubelet's `..*`
//   entries) count: a log file written next to a certificate wakes nothing;
// - events are debounced (writers and kubelet touch several entries in a row);
// - all files of the material are read together on the libuv thread pool, their content hash is
//   compared with the one in force, and the new snapshot is built and fully validated there
//   (workers never wait);
// - only a complete, valid snapshot is published, by the material's publish() on the loop
//   thread (an atomic pointer swap: sessions keep what they started with);
// - a failure keeps the last good snapshot and is logged once per distinct content and problem.
// SIGHUP reloads at once; a slow poll catches what a watch cannot see (NFS, a symlink into
// another directory).

#include <uv.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace certrelay::proxy {

// Whether a directory event naming `name` may concern one of `watchedNames` (the base names of
// the watched files in that directory): one of them, or a kubelet atomic-writer entry (`..data`,
// `..data_tmp`, `..<timestamp>`). An event without a name concerns everything.
[[nodiscard]] bool eventConcerns(std::string_view name,
                                 const std::vector<std::string>& watchedNames);

// The hash compared between reads: SHA-256 (hex) of the content of a single file, and of the
// concatenated per-file SHA-256 digests for several, so a change in any file changes it.
[[nodiscard]] std::string materialHash(const std::vector<std::string>& contents);

class MaterialWatcher {
 public:
  using Snapshot = std::shared_ptr<const void>;
  struct Spec {
    std::string name;     // log prefix: "policy", "tls"
    std::string subject;  // what the lines name before the description ("" or the table path)
    std::string inForce;  // "the table", "the certificates": "keeping <inForce> in force"
    std::vector<std::filesystem::path> files;
    // Thread pool: builds and validates a snapshot from the files' contents (same order as
    // `files`). Throws std::exception whose message names the file. Must touch no shared state.
    std::function<Snapshot(std::vector<std::string> contents)> build;
    // Loop thread: puts a built snapshot in force (and logs what it wants to add).
    std::function<void(const Snapshot& snapshot)> publish;
    // A short description for log lines ("3 entries", "1 certificate (...)").
    std::function<std::string(const Snapshot& snapshot)> describe;
    // Loop thread, optional: a load ended, put in force (true) or refused (false); an unchanged
    // read is neither. For the reload metrics.
    std::function<void(bool ok)> loaded;
    std::chrono::milliseconds debounce{200};
    std::chrono::milliseconds poll{30'000};
  };

  MaterialWatcher(uv_loop_t* loop, Spec spec);
  ~MaterialWatcher();
  MaterialWatcher(const MaterialWatcher&) = delete;
  MaterialWatcher& operator=(const MaterialWatcher&) = delete;

  // Reads, builds and publishes on the calling thread (start-up). Returns "" or why it failed;
  // nothing is published then.
  [[nodiscard]] std::string loadNow();
  // Starts the directory watches and the poll timer. Returns "" or why the watcher cannot run (a
  // start-up error; call stop() to close it). A directory that cannot be watched is not an error:
  // the poll still sees changes.
  [[nodiscard]] std::string start();
  // Re-reads now, without waiting for the debounce (SIGHUP, an operator's reload).
  void reloadNow(const char* reason);
  // Closes the handles; a read already on the thread pool finishes and is dropped.
  void stop();

  // What happened to the reads since start() (loadNow() excluded): tests count these to prove
  // the filtering and the debounce; they are also what a reload metric reports.
  struct Counts {
    std::size_t started = 0;    // reads queued
    std::size_t published = 0;  // new snapshots put in force
    std::size_t unchanged = 0;  // same content as the snapshot in force
    std::size_t failed = 0;     // unreadable or invalid: the snapshot in force was kept
  };

  const std::string& name() const { return spec_.name; }
  const Counts& counts() const { return counts_; }

 private:
  struct Job;        // one read+build on the thread pool
  struct Directory;  // one watched directory

  void onDirectoryEvent(const Directory& directory, const char* name);
  void startJob(const char* reason);
  void finishJob(Job& job);
  std::string inForceText() const;

  uv_loop_t* loop_;
  Spec spec_;
  bool started_ = false;
  bool stopped_ = false;
  std::vector<std::unique_ptr<Directory>> directories_;
  uv_timer_t debounce_{};
  uv_timer_t poll_{};
  Job* running_ = nullptr;     // at most one job at a time
  std::string pendingReason_;  // a change seen while a job ran: read again after it
  Snapshot current_;           // the snapshot in force (what describe() is asked about)
  std::string currentHash_;    // its content hash
  std::string lastFailure_;    // logged once until the problem or the content changes
  Counts counts_;
};

}  // namespace certrelay::proxy
