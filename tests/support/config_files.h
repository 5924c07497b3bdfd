#pragma once
// ConfigFiles: a temporary directory beside a config file that config::parse reads from it, with
// the files the file names (empty: the loader only checks that they open), and the
// `file:line: key: reason` text a refusal should carry. Shared by the config unit tests.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "config/config.h"
#include "config/environment.h"

namespace certrelay::config::test {

class ConfigFiles {
 public:
  // `files`: paths relative to the directory (subdirectories are made); tls.crt and tls.key
  // are always there.
  explicit ConfigFiles(std::initializer_list<const char*> files = {}) {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("certrelay-config-files-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
    std::filesystem::create_directories(dir_);
    for (const char* name : {"tls.crt", "tls.key"}) {
      std::ofstream(dir_ / name) << "";
    }
    for (const char* name : files) {
      std::filesystem::create_directories((dir_ / name).parent_path());
      std::ofstream(dir_ / name) << "";
    }
  }
  ~ConfigFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ConfigFiles(const ConfigFiles&) = delete;
  ConfigFiles& operator=(const ConfigFiles&) = delete;

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
  [[nodiscard]] std::filesystem::path origin() const { return dir_ / "certrelay.toml"; }

  [[nodiscard]] Config parseText(const std::string& text,
                                 const EnvironmentVariables& environment = {}) const {
    return config::parse(text, origin(), environment);
  }
  // The refusal's message, or "" when the text loads.
  [[nodiscard]] std::string textError(const std::string& text) const {
    try {
      static_cast<void>(parseText(text));
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  [[nodiscard]] std::string at(int line, const std::string& rest) const {
    return origin().string() + ":" + std::to_string(line) + ": " + rest;
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace certrelay::config::test
