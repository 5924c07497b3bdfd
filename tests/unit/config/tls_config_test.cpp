// config::parse of tls.session_cache_memory (issue 14): the default, the spellings of a size,
// 0 (OpenSSL's internal cache), and every refusal with its `file:line: key: reason` text.

#include <doctest/doctest.h>

#include <string>

#include "config/config.h"
#include "tests/support/config_files.h"

namespace certrelay::config {
namespace {

// The smallest valid file: "[tls]" on line 6, so a key added at the end is on line 9.
const std::string kHead =
    "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:2525\"\n[backend]\n"
    "address = \"127.0.0.1:10025\"\n[tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n";

class Files : public test::ConfigFiles {
 public:
  Config parse(const std::string& tls) const { return parseText(kHead + tls); }
  std::string error(const std::string& tls) const { return textError(kHead + tls); }
  // The refusal of `session_cache_memory = <value>` (value as TOML).
  std::string memoryError(const std::string& value) const {
    return error("session_cache_memory = " + value + "\n");
  }
  std::size_t memory(const std::string& value) const {
    return parse("session_cache_memory = " + value + "\n").tls.sessionCacheMemory;
  }
};

constexpr std::size_t kMiB = std::size_t{1024} * 1024;

TEST_SUITE("config tls") {
  TEST_CASE("session_cache_memory: 16MiB by default, the entry limit kept") {
    const Files f;
    const Config c = f.parse("");
    CHECK(c.tls.sessionCacheMemory == 16 * kMiB);
    CHECK(c.tls.sessionCacheSize == 20480);
  }

  TEST_CASE("session_cache_memory: binary units, nginx letters, plain bytes") {
    const Files f;
    CHECK(f.memory("\"32MiB\"") == 32 * kMiB);
    CHECK(f.memory("\"32 MiB\"") == 32 * kMiB);
    CHECK(f.memory("\"512KiB\"") == 512 * 1024);
    CHECK(f.memory("\"1GiB\"") == 1024 * kMiB);
    CHECK(f.memory("\"8m\"") == 8 * kMiB);
    CHECK(f.memory("\"8M\"") == 8 * kMiB);
    CHECK(f.memory("\"100k\"") == 100 * 1024);
    CHECK(f.memory("\"1g\"") == 1024 * kMiB);
    CHECK(f.memory("\"65536B\"") == 65536);
    CHECK(f.memory("\"65536\"") == 65536);
    CHECK(f.memory("1048576") == kMiB);
  }

  TEST_CASE("session_cache_memory: 0 selects OpenSSL's internal cache") {
    const Files f;
    CHECK(f.memory("0") == 0);
    CHECK(f.memory("\"0MiB\"") == 0);
  }

  TEST_CASE("session_cache_memory: nonsense is refused with the expected forms") {
    const Files f;
    const std::string expected =
        "tls.session_cache_memory: expected a size such as 16777216, \"512KiB\", \"16MiB\" or "
        "\"1GiB\", got ";
    CHECK(f.memoryError("\"0.5 bananas\"") == f.at(9, expected + "\"0.5 bananas\""));
    CHECK(f.memoryError("\"16MB\"") == f.at(9, expected + "\"16MB\""));
    CHECK(f.memoryError("\"MiB\"") == f.at(9, expected + "\"MiB\""));
    CHECK(f.memoryError("\"\"") == f.at(9, expected + "\"\""));
    CHECK(f.memoryError("\"-1MiB\"") == f.at(9, expected + "\"-1MiB\""));
    CHECK(f.memoryError("\"16  MiB\"") == f.at(9, expected + "\"16  MiB\""));
    CHECK(f.memoryError("\"16MiB \"") == f.at(9, expected + "\"16MiB \""));
    CHECK(f.memoryError("1.5") == f.at(9, expected + "float"));
    CHECK(f.memoryError("true") == f.at(9, expected + "boolean"));
  }

  TEST_CASE("session_cache_memory: negative, tiny and huge budgets are refused") {
    const Files f;
    CHECK(f.memoryError("-1") == f.at(9, "tls.session_cache_memory: must not be negative"));
    CHECK(f.memoryError("\"1KiB\"") ==
          f.at(9,
               "tls.session_cache_memory: must be 0 (OpenSSL's internal cache) or at least "
               "64KiB, got 1024 bytes"));
    CHECK(f.memoryError("\"65GiB\"") ==
          f.at(9, "tls.session_cache_memory: must be at most 68719476736 bytes"));
    CHECK(f.memoryError("\"99999999999999999999999GiB\"") ==
          f.at(9, "tls.session_cache_memory: must be at most 68719476736 bytes"));
  }

  TEST_CASE("session_cache_memory: an environment override is read like the file") {
    const Files f;
    const Config c = f.parseText(kHead, {{"CERTRELAY_TLS_SESSION_CACHE_MEMORY", "4MiB"}});
    CHECK(c.tls.sessionCacheMemory == 4 * kMiB);
  }
}

}  // namespace
}  // namespace certrelay::config
