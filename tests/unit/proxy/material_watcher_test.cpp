// proxy/material_watcher: which directory events wake a read, the debounce, the kubelet swap,
// and that a bad file never replaces the snapshot in force. Real files, a real libuv loop.

#include "proxy/material_watcher.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace certrelay::proxy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kDebounce = 40ms;

void write(const fs::path& file, const std::string& content) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << content;
}

// A temporary directory, a loop, and a watcher whose snapshots are the files' contents joined
// by '|'; content starting with "bad" fails to build, naming the file.
class Fixture {
 public:
  explicit Fixture(const std::vector<std::string>& relativeFiles = {"table"}) {
    char pattern[] = "/tmp/certrelay-watcher-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    dir_ = pattern;
    REQUIRE(uv_loop_init(&loop_) == 0);
    for (const auto& relative : relativeFiles) {
      files_.push_back(dir_ / relative);
      fs::create_directories(files_.back().parent_path());
      write(files_.back(), "one");
    }
  }
  ~Fixture() {
    if (watcher_) {
      watcher_->stop();
      uv_run(&loop_, UV_RUN_DEFAULT);  // the close callbacks
    }
    uv_loop_close(&loop_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  // Builds the watcher over the given files (default: those made by the constructor).
  MaterialWatcher& watch(std::vector<fs::path> files = {}) {
    MaterialWatcher::Spec spec;
    spec.name = "test";
    spec.inForce = "the snapshot";
    spec.files = files.empty() ? files_ : std::move(files);
    spec.build = [](const std::vector<std::string>& contents) -> MaterialWatcher::Snapshot {
      std::string joined;
      for (const auto& content : contents) {
        if (content.rfind("bad", 0) == 0) {
          throw std::runtime_error("file: " + content);
        }
        joined += (joined.empty() ? "" : "|") + content;
      }
      return std::make_shared<const std::string>(joined);
    };
    spec.publish = [this](const MaterialWatcher::Snapshot& snapshot) {
      published_.push_back(*std::static_pointer_cast<const std::string>(snapshot));
    };
    spec.describe = [](const MaterialWatcher::Snapshot& snapshot) {
      return *std::static_pointer_cast<const std::string>(snapshot);
    };
    spec.debounce = kDebounce;
    spec.poll = 1h;  // never, in these tests: the watch alone must see every change
    watcher_ = std::make_unique<MaterialWatcher>(&loop_, std::move(spec));
    return *watcher_;
  }

  // Runs the loop until `done` holds or `limit` passes; returns whether `done` held.
  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    bool expired = false;
    uv_timer_t timer{};
    uv_timer_init(&loop_, &timer);
    timer.data = &expired;
    uv_timer_start(
        &timer, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; },
        static_cast<std::uint64_t>(limit.count()), 0);
    while (!done() && !expired) {
      uv_run(&loop_, UV_RUN_ONCE);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    return done();
  }
  // Lets the loop run for `period` (a bound on "nothing happens": several debounce periods).
  void runFor(std::chrono::milliseconds period) {
    runUntil([] { return false; }, period);
  }
  bool finished(std::size_t reads) const {
    const auto& c = watcher_->counts();
    return c.published + c.unchanged + c.failed >= reads;
  }

  const fs::path& dir() const { return dir_; }
  const fs::path& file(std::size_t i = 0) const { return files_.at(i); }
  const std::vector<std::string>& published() const { return published_; }

 private:
  fs::path dir_;
  uv_loop_t loop_{};
  std::vector<fs::path> files_;
  std::unique_ptr<MaterialWatcher> watcher_;
  std::vector<std::string> published_;
};

TEST_SUITE("proxy") {
  TEST_CASE("material watcher: events about the watched files and kubelet entries only") {
    const std::vector<std::string> names = {"tls.crt", "tls.key"};
    CHECK(eventConcerns("tls.crt", names));
    CHECK(eventConcerns("tls.key", names));
    CHECK(eventConcerns("..data", names));
    CHECK(eventConcerns("..data_tmp", names));
    CHECK(eventConcerns("..2026_12_02_10_00_00.123456789", names));
    CHECK(eventConcerns("", names));  // no name: anything may have changed
    CHECK_FALSE(eventConcerns("certrelay.log", names));
    CHECK_FALSE(eventConcerns(".tls.crt.swp", names));
    CHECK_FALSE(eventConcerns("tls.crt~", names));
    CHECK_FALSE(eventConcerns("ca.crt", names));
  }

  TEST_CASE("material watcher: the hash is the file's SHA-256, and covers every file") {
    CHECK(materialHash({"abc"}) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const std::string both = materialHash({"abc", "def"});
    CHECK(both.size() == 64);
    CHECK(both != materialHash({"abc", "deg"}));
    CHECK(both != materialHash({"def", "abc"}));
  }

  TEST_CASE("material watcher: loadNow publishes, or names the problem and publishes nothing") {
    Fixture f;
    CHECK(f.watch().loadNow().empty());
    CHECK(f.published() == std::vector<std::string>{"one"});
    Fixture bad;
    write(bad.file(), "bad start");
    CHECK(bad.watch().loadNow() == "file: bad start");
    CHECK(bad.published().empty());
    Fixture missing;
    fs::remove(missing.file());
    CHECK(missing.watch().loadNow().find(missing.file().string() + ": cannot read") == 0);
  }

  TEST_CASE("material watcher: writes to another file in the directory read nothing") {
    Fixture f;
    MaterialWatcher& w = f.watch();
    REQUIRE(w.loadNow().empty());
    REQUIRE(w.start().empty());
    for (int i = 0; i < 20; ++i) {
      write(f.dir() / "certrelay.log", "line " + std::to_string(i) + "\n");
    }
    f.runFor(kDebounce * 5);
    CHECK(w.counts().started == 0);
    write(f.file(), "two");
    REQUIRE(f.runUntil([&] { return f.finished(1); }));
    CHECK(w.counts().started == 1);
    CHECK(f.published() == std::vector<std::string>{"one", "two"});
  }

  TEST_CASE("material watcher: a burst of writes is one read of the last content") {
    Fixture f;
    MaterialWatcher& w = f.watch();
    REQUIRE(w.loadNow().empty());
    REQUIRE(w.start().empty());
    for (int i = 1; i <= 5; ++i) {
      write(f.file(), "v" + std::to_string(i));
    }
    REQUIRE(f.runUntil([&] { return f.finished(1); }));
    f.runFor(kDebounce * 3);
    CHECK(w.counts().started == 1);
    CHECK(f.published() == std::vector<std::string>{"one", "v5"});
  }

  TEST_CASE("material watcher: a kubelet ..data swap of two files is one generation") {
    Fixture f({"..2026_a/tls.crt", "..2026_a/tls.key"});
    fs::create_symlink("..2026_a", f.dir() / "..data");
    fs::create_symlink("..data/tls.crt", f.dir() / "tls.crt");
    fs::create_symlink("..data/tls.key", f.dir() / "tls.key");
    MaterialWatcher& w = f.watch({f.dir() / "tls.crt", f.dir() / "tls.key"});
    REQUIRE(w.loadNow().empty());
    REQUIRE(w.start().empty());
    // What kubelet's atomic writer does: a new timestamped directory, then one rename.
    fs::create_directory(f.dir() / "..2026_b");
    write(f.dir() / "..2026_b" / "tls.crt", "cert2");
    write(f.dir() / "..2026_b" / "tls.key", "key2");
    fs::create_symlink("..2026_b", f.dir() / "..data_tmp");
    fs::rename(f.dir() / "..data_tmp", f.dir() / "..data");
    REQUIRE(f.runUntil([&] { return f.finished(1); }));
    CHECK(f.published() == std::vector<std::string>{"one|one", "cert2|key2"});
    CHECK(w.counts().started == 1);
  }

  TEST_CASE("material watcher: bad content keeps the snapshot in force until fixed") {
    Fixture f;
    MaterialWatcher& w = f.watch();
    REQUIRE(w.loadNow().empty());
    REQUIRE(w.start().empty());
    write(f.file(), "bad half-written");
    REQUIRE(f.runUntil([&] { return f.finished(1); }));
    CHECK(w.counts().failed == 1);
    CHECK(f.published() == std::vector<std::string>{"one"});
    write(f.file(), "fixed");
    REQUIRE(f.runUntil([&] { return f.finished(2); }));
    CHECK(f.published() == std::vector<std::string>{"one", "fixed"});
  }

  TEST_CASE("material watcher: reloadNow reads at once, and unchanged content publishes nothing") {
    Fixture f;
    MaterialWatcher& w = f.watch();
    REQUIRE(w.loadNow().empty());
    REQUIRE(w.start().empty());
    w.reloadNow("SIGHUP");
    CHECK(w.counts().started == 1);  // queued at once, no debounce
    REQUIRE(f.runUntil([&] { return f.finished(1); }));
    CHECK(w.counts().unchanged == 1);
    CHECK(f.published() == std::vector<std::string>{"one"});
  }

  TEST_CASE("material watcher: files in two directories are both watched") {
    Fixture f({"certs/tls.crt", "tickets/current.key"});
    MaterialWatcher& w = f.watch();
    REQUIRE(w.loadNow().empty());
    REQUIRE(w.start().empty());
    write(f.file(1), "rotated");
    REQUIRE(f.runUntil([&] { return f.finished(1); }));
    CHECK(f.published() == std::vector<std::string>{"one|one", "one|rotated"});
  }
}

}  // namespace
}  // namespace certrelay::proxy
