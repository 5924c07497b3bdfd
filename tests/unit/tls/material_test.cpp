// tls/material.h: which files a generation is built from, in which order, and how reading them
// fails.

#include "tls/material.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/unit/tls/test_pki.h"
#include "tls/context.h"

namespace certrelay::tls {
namespace {

namespace fs = std::filesystem;
using test::pki;

config::Tls everything() {
  config::Tls settings;
  settings.certificates = {{"/tls/ec.crt", "/tls/ec.key"}, {"/tls/rsa.crt", "/tls/rsa.key"}};
  settings.clientCa = "/tls/ca.pem";
  settings.ticketKeys = {"/tickets/current.key", "/tickets/previous.key"};
  return settings;
}

std::string readError(const config::Tls& settings) {
  try {
    readMaterial(settings);
  } catch (const TlsError& e) {
    return e.what();
  }
  return {};
}

TEST_SUITE("tls") {
  TEST_CASE("material: paths are cert, key per pair, then the client CA, then ticket keys") {
    CHECK(materialPaths(everything()) ==
          std::vector<fs::path>{"/tls/ec.crt", "/tls/ec.key", "/tls/rsa.crt", "/tls/rsa.key",
                                "/tls/ca.pem", "/tickets/current.key", "/tickets/previous.key"});
    config::Tls minimal;
    minimal.certificates = {{"a.crt", "a.key"}};
    CHECK(materialPaths(minimal) == std::vector<fs::path>{"a.crt", "a.key"});
  }

  TEST_CASE("material: contents are paired with their file names") {
    const Material material = materialFromContents(
        everything(), {"ec cert", "ec key", "rsa cert", "rsa key", "ca", "k1", "k2"});
    REQUIRE(material.pairs.size() == 2);
    CHECK(material.pairs[0].cert.name == "/tls/ec.crt");
    CHECK(material.pairs[0].cert.content == "ec cert");
    CHECK(material.pairs[0].key.name == "/tls/ec.key");
    CHECK(material.pairs[0].key.content == "ec key");
    CHECK(material.pairs[1].cert.name == "/tls/rsa.crt");
    CHECK(material.pairs[1].cert.content == "rsa cert");
    CHECK(material.pairs[1].key.content == "rsa key");
    REQUIRE(material.clientCa.has_value());
    CHECK(material.clientCa->name == "/tls/ca.pem");
    CHECK(material.clientCa->content == "ca");
    REQUIRE(material.ticketKeys.size() == 2);
    CHECK(material.ticketKeys[0].name == "/tickets/current.key");
    CHECK(material.ticketKeys[0].content == "k1");
    CHECK(material.ticketKeys[1].content == "k2");
  }

  TEST_CASE("material: no client CA and no ticket keys") {
    config::Tls settings;
    settings.certificates = {{"a.crt", "a.key"}};
    const Material material = materialFromContents(settings, {"c", "k"});
    CHECK(material.pairs.size() == 1);
    CHECK_FALSE(material.clientCa.has_value());
    CHECK(material.ticketKeys.empty());
  }

  TEST_CASE("material: a content count that does not match the paths is refused") {
    CHECK_THROWS_AS(materialFromContents(everything(), {"only", "three", "files"}), TlsError);
  }

  TEST_CASE("material: readMaterial reads every file") {
    const config::Tls settings = pki().settings(true);
    const Material material = readMaterial(settings);
    REQUIRE(material.pairs.size() == 1);
    CHECK(material.pairs[0].cert.name == pki().server.certFile.string());
    CHECK(material.pairs[0].cert.content.find("-----BEGIN CERTIFICATE-----") == 0);
    CHECK(material.pairs[0].key.content.find("PRIVATE KEY-----") != std::string::npos);
    REQUIRE(material.clientCa.has_value());
    CHECK(material.clientCa->name == pki().ca.certFile.string());
  }

  TEST_CASE("material: a file that cannot be read names its setting and path") {
    config::Tls settings = pki().settings(true);
    settings.certificates[0].cert = pki().dir / "missing.crt";
    CHECK(readError(settings) == "tls.cert " + (pki().dir / "missing.crt").string() +
                                     ": cannot read: No such file or directory");
    settings = pki().settings(true);
    settings.certificates[0].key = pki().dir;
    CHECK(readError(settings) == "tls.key " + pki().dir.string() + ": cannot read: Is a directory");
    settings = pki().settings(true);
    settings.clientCa = pki().dir / "missing-ca.pem";
    CHECK(readError(settings) == "tls.client_ca " + (pki().dir / "missing-ca.pem").string() +
                                     ": cannot read: No such file or directory");
    settings = pki().settings(true);
    settings.ticketKeys = {pki().dir / "missing.key"};
    CHECK(readError(settings) == "tls.ticket_keys " + (pki().dir / "missing.key").string() +
                                     ": cannot read: No such file or directory");
  }

  TEST_CASE("material: the private keys and ticket keys are wiped, certificates are kept") {
    Material material;
    material.pairs.push_back({{"c", "certificate"}, {"k", "private key"}});
    material.clientCa = MaterialFile{"ca", "ca bundle"};
    material.ticketKeys.push_back({"t", std::string(80, 'x')});
    { const SecretsWiper wiper(material); }
    CHECK(material.pairs[0].cert.content == "certificate");
    CHECK(material.pairs[0].key.content.empty());
    CHECK(material.clientCa->content == "ca bundle");
    CHECK(material.ticketKeys[0].content.empty());
    CHECK(material.ticketKeys[0].name == "t");
  }
}

}  // namespace
}  // namespace certrelay::tls
