// config::parse of the backend TLS keys (backend.tls, tls_ca, tls_server_name, tls_cert,
// tls_key): defaults, values, path resolution and every refusal with its `file:line: key: reason`
// text. The rest of [backend] is in config_test.cpp and limits_config_test.cpp.

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "config/config.h"
#include "tests/support/config_files.h"

namespace certrelay::config {
namespace {

namespace fs = std::filesystem;

// [backend] is on line 4 and its address on line 5: keys added by backend() start at line 6.
const std::string kHead =
    "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:2525\"\n[backend]\n"
    "address = \"127.0.0.1:10025\"\n";
const std::string kTail = "[tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n";

class Files : public test::ConfigFiles {
 public:
  Files() : ConfigFiles({"backend/ca.pem", "backend/proxy.crt", "backend/proxy.key"}) {}
  Config backend(const std::string& keys) const { return parseText(kHead + keys + kTail); }
  std::string error(const std::string& keys) const { return textError(kHead + keys + kTail); }
};

TEST_SUITE("config backend tls") {
  TEST_CASE("backend.tls: off by default, nothing else set") {
    Files f;
    const BackendTls tls = f.backend("").backend.tls;
    CHECK(tls.mode == BackendTlsMode::None);
    CHECK_FALSE(tls.enabled());
    CHECK(tls.caFile.empty());
    CHECK(tls.serverName.empty());
    CHECK(tls.certFile.empty());
    CHECK(tls.keyFile.empty());
  }

  TEST_CASE("backend.tls: starttls and implicit with a CA, paths relative to the file") {
    Files f;
    const BackendTls starttls =
        f.backend("tls = \"starttls\"\ntls_ca = \"backend/ca.pem\"\n").backend.tls;
    CHECK(starttls.mode == BackendTlsMode::Starttls);
    CHECK(starttls.enabled());
    CHECK(starttls.caFile == f.dir() / "backend/ca.pem");
    const BackendTls implicit =
        f.backend("tls = \"implicit\"\ntls_ca = \"" + (f.dir() / "backend/ca.pem").string() +
                  "\"\ntls_server_name = \"MX.Internal.Example.\"\n"
                  "tls_cert = \"backend/proxy.crt\"\ntls_key = \"backend/proxy.key\"\n")
            .backend.tls;
    CHECK(implicit.mode == BackendTlsMode::Implicit);
    CHECK(implicit.caFile == f.dir() / "backend/ca.pem");
    CHECK(implicit.serverName == "MX.Internal.Example");  // the trailing dot goes
    CHECK(implicit.certFile == f.dir() / "backend/proxy.crt");
    CHECK(implicit.keyFile == f.dir() / "backend/proxy.key");
    CHECK(backendTlsKeyword(implicit.mode) == "implicit");
  }

  TEST_CASE("backend.tls: an unknown mode names the choices") {
    Files f;
    CHECK(
        f.error("tls = \"yes\"\n") ==
        f.at(6, "backend.tls: expected one of \"none\", \"starttls\", \"implicit\", got \"yes\""));
    CHECK(f.error("tls = true\n") == f.at(6, "backend.tls: expected string, got boolean"));
  }

  TEST_CASE("backend.tls: TLS without a CA is refused, never unverified") {
    Files f;
    CHECK(f.error("tls = \"starttls\"\n") ==
          f.at(6,
               "backend.tls: \"starttls\" needs backend.tls_ca, the CA bundle the backend's "
               "certificate is verified against (the system store is not used implicitly; name "
               "it to use it)"));
    CHECK(f.error("max_connections = 5\ntls = \"implicit\"\n") ==
          f.at(7,
               "backend.tls: \"implicit\" needs backend.tls_ca, the CA bundle the backend's "
               "certificate is verified against (the system store is not used implicitly; name "
               "it to use it)"));
  }

  TEST_CASE("backend.tls: TLS material without TLS is refused, not silently plaintext") {
    Files f;
    const std::string plaintext =
        "set, but backend.tls is \"none\": the backend would be spoken to in plaintext; set "
        "backend.tls = \"starttls\" or \"implicit\"";
    CHECK(f.error("tls_ca = \"backend/ca.pem\"\n") == f.at(6, "backend.tls_ca: " + plaintext));
    CHECK(f.error("tls = \"none\"\ntls_cert = \"backend/proxy.crt\"\n") ==
          f.at(7, "backend.tls_cert: " + plaintext));
    CHECK(f.error("tls_server_name = \"mx.example\"\n") ==
          f.at(6,
               "backend.tls_server_name: set, but backend.tls is \"none\"; set backend.tls = "
               "\"starttls\" or \"implicit\""));
  }

  TEST_CASE("backend.tls: files must be readable, the pair complete, the name a host name") {
    Files f;
    const std::string tls = "tls = \"starttls\"\ntls_ca = \"backend/ca.pem\"\n";  // lines 6, 7
    const fs::path missing = f.dir() / "backend/missing.pem";
    CHECK(f.error("tls = \"starttls\"\ntls_ca = \"backend/missing.pem\"\n") ==
          f.at(7, "backend.tls_ca: cannot read '" + missing.string() +
                      "': No such file or directory"));
    CHECK(f.error(tls + "tls_ca_file = \"x\"\n") == f.at(8, "backend.tls_ca_file: unknown key"));
    CHECK(f.error(tls + "tls_cert = \"backend/proxy.crt\"\n") ==
          f.at(8,
               "backend.tls_cert: backend.tls_cert and backend.tls_key go together; give both "
               "or neither"));
    CHECK(f.error(tls + "tls_key = \"backend/proxy.key\"\n") ==
          f.at(8,
               "backend.tls_key: backend.tls_cert and backend.tls_key go together; give both "
               "or neither"));
    CHECK(f.error(tls + "tls_key = \"\"\n") ==
          f.at(8, "backend.tls_key: must not be empty (leave the key out instead)"));
    CHECK(f.error(tls + "tls_server_name = \"mx.example\\r\\nRSET\"\n") ==
          f.at(8, "backend.tls_server_name: 'mx.example\r\nRSET' is not a valid host name"));
    CHECK(f.error(tls + "tls_server_name = \"\"\n") ==
          f.at(8, "backend.tls_server_name: '' is not a valid host name"));
  }

  TEST_CASE("backend.tls: environment overrides reach the new keys") {
    Files f;
    const Config c = config::parse(kHead + kTail, f.dir() / "certrelay.toml",
                                   {{"CERTRELAY_BACKEND_TLS", "implicit"},
                                    {"CERTRELAY_BACKEND_TLS_CA", "backend/ca.pem"},
                                    {"CERTRELAY_BACKEND_TLS_SERVER_NAME", "mx.example"}});
    CHECK(c.backend.tls.mode == BackendTlsMode::Implicit);
    CHECK(c.backend.tls.caFile == f.dir() / "backend/ca.pem");
    CHECK(c.backend.tls.serverName == "mx.example");
  }
}

}  // namespace
}  // namespace certrelay::config
