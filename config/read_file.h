#pragma once
// Reads a whole file. The one place that does, for the config, the fingerprint table and its
// reloads, so every "cannot read" message looks the same.

#include <filesystem>
#include <string>

namespace certrelay::config {

// True with the content in `out`; false with `error` = "<file>: cannot read: <reason>".
// A directory is an error (EISDIR), an empty file is not.
bool readWholeFile(const std::filesystem::path& file, std::string& out, std::string& error);

}  // namespace certrelay::config
