// ClientContext: the backend hop's client SSL_CTX built from backend.tls_ca / tls_cert /
// tls_key, every refusal naming the setting and the file, the per-connection SSL (name to
// verify, SNI) and the bound of the session cache. Handshakes against a server: in
// tests/unit/proxy/backend_tls_test.cpp.

#include "tls/client_context.h"

#include <doctest/doctest.h>

#include <openssl/x509v3.h>

#include <fstream>
#include <iterator>
#include <string>

#include "tests/unit/tls/test_pki.h"
#include "tls/context.h"
#include "tls/engine.h"

namespace certrelay::tls {
namespace {

using test::pki;

config::BackendTls settings(const std::filesystem::path& ca,
                            const test::Credential* client = nullptr) {
  config::BackendTls tls;
  tls.mode = config::BackendTlsMode::Starttls;
  tls.caFile = ca;
  if (client != nullptr) {
    tls.certFile = client->certFile;
    tls.keyFile = client->keyFile;
  }
  return tls;
}

std::string createError(const config::BackendTls& tls) {
  try {
    ClientContext::create(tls);
  } catch (const TlsError& e) {
    return e.what();
  }
  return "";
}

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::filesystem::path writeFile(const std::string& name, const std::string& content) {
  std::filesystem::path path = pki().dir / name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// A full handshake in memory between a client Engine from `client` and a server Engine.
bool handshake(const ClientContextPtr& client, const ContextPtr& server,
               const std::string& address) {
  std::string error;
  Engine proxy(client, client->newSsl(address, "mx.certrelay.test", error));
  Engine backend(server);
  for (int round = 0; round < 20; ++round) {
    proxy.pump();
    std::string wire;
    proxy.takeCiphertext(wire);
    backend.feedCiphertext(wire.data(), wire.size());
    backend.pump();
    wire.clear();
    backend.takeCiphertext(wire);
    if (wire.empty()) {
      break;
    }
    proxy.feedCiphertext(wire.data(), wire.size());
  }
  return proxy.state() == Engine::State::Established;
}

TEST_SUITE("tls") {
  TEST_CASE("client context: the files in order, with or without a client certificate") {
    const config::BackendTls caOnly = settings(pki().ca.certFile);
    CHECK(clientMaterialPaths(caOnly) == std::vector<std::filesystem::path>{pki().ca.certFile});
    const config::BackendTls both = settings(pki().ca.certFile, &pki().client);
    CHECK(clientMaterialPaths(both) == std::vector<std::filesystem::path>{pki().ca.certFile,
                                                                          pki().client.certFile,
                                                                          pki().client.keyFile});
    const ClientMaterial material = clientMaterialFromContents(both, {"ca", "cert", "key"});
    CHECK(material.ca.content == "ca");
    REQUIRE(material.pair.has_value());
    CHECK(material.pair->key.name == pki().client.keyFile.string());
    CHECK_THROWS_AS(clientMaterialFromContents(both, {"ca"}), TlsError);
    ClientMaterial wiped = clientMaterialFromContents(both, {"ca", "cert", "secret"});
    wipeSecrets(wiped);
    CHECK(wiped.pair->key.content.empty());
    CHECK(wiped.pair->cert.content == "cert");
  }

  TEST_CASE("client context: the summary names the CA count and the client certificate") {
    CHECK(ClientContext::create(settings(pki().ca.certFile))->summary() ==
          "CA 1 certificate, no client certificate");
    const std::string two = readFile(pki().ca.certFile) + readFile(pki().otherCa.certFile);
    const auto context =
        ClientContext::create(settings(writeFile("two-cas.pem", two), &pki().client));
    CHECK(startsWith(context->summary(),
                     "CA 2 certificates, client certificate CN=client1.lab.example ECDSA P-256 "
                     "not after "));
    CHECK(context->warnings().empty());
    CHECK(context->cachedSessions() == 0);
  }

  TEST_CASE("client context: every refusal names the setting and the file") {
    const std::filesystem::path empty = writeFile("empty-ca.pem", "");
    CHECK(createError(settings(empty)) ==
          "backend.tls_ca " + empty.string() +
              ": holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")");
    const std::filesystem::path missing = pki().dir / "missing-ca.pem";
    CHECK(startsWith(createError(settings(missing)), "backend.tls_ca " + missing.string()));

    test::Credential mismatched;
    mismatched.certFile = pki().client.certFile;
    mismatched.keyFile = pki().selfSigned.keyFile;
    CHECK(startsWith(createError(settings(pki().ca.certFile, &mismatched)),
                     "backend.tls_key " + pki().selfSigned.keyFile.string() +
                         " does not match backend.tls_cert " + pki().client.certFile.string()));

    test::Credential encrypted;
    encrypted.certFile = pki().server.certFile;
    encrypted.keyFile = pki().encryptedKey;
    CHECK(createError(settings(pki().ca.certFile, &encrypted)) ==
          "backend.tls_key " + pki().encryptedKey.string() +
              ": the private key is encrypted; certrelay needs it unencrypted (it reads keys "
              "without a passphrase)");

    CHECK(startsWith(
        createError(settings(pki().ca.certFile, &pki().expired)),
        "backend.tls_cert " + pki().expired.certFile.string() + ": certificate expired on "));
  }

  TEST_CASE("client context: a name is verified and sent as SNI, an address only verified") {
    const auto context = ClientContext::create(settings(pki().ca.certFile));
    std::string error;
    const SslPtr named = context->newSsl("10.0.0.7:25", "mx.example", error);
    REQUIRE(named != nullptr);
    CHECK(std::string(SSL_get_servername(named.get(), TLSEXT_NAMETYPE_host_name)) == "mx.example");
    CHECK(std::string(X509_VERIFY_PARAM_get0_host(SSL_get0_param(named.get()), 0)) == "mx.example");
    CHECK(SSL_get_verify_mode(named.get()) == SSL_VERIFY_PEER);
    for (const char* address : {"10.0.0.7", "2001:db8::7"}) {
      const SslPtr numeric = context->newSsl("10.0.0.7:25", address, error);
      REQUIRE(numeric != nullptr);
      CHECK(SSL_get_servername(numeric.get(), TLSEXT_NAMETYPE_host_name) == nullptr);
      X509_VERIFY_PARAM* param = SSL_get0_param(numeric.get());
      CHECK(X509_VERIFY_PARAM_get0_host(param, 0) == nullptr);
      char* ip = X509_VERIFY_PARAM_get1_ip_asc(param);
      REQUIRE(ip != nullptr);
      CHECK(std::string(ip) ==
            (std::string(address) == "10.0.0.7" ? "10.0.0.7" : "2001:DB8:0:0:0:0:0:7"));
      OPENSSL_free(ip);
    }
  }

  TEST_CASE("client context: the session cache keeps at most kMaxCachedSessions entries") {
    const auto client = ClientContext::create(settings(pki().ca.certFile));
    const auto server = Context::create(pki().settings(false));
    for (std::size_t i = 0; i <= ClientContext::kMaxCachedSessions; ++i) {
      REQUIRE(handshake(client, server, "10.0.0.7:" + std::to_string(1000 + i)));
    }
    CHECK(client->cachedSessions() == ClientContext::kMaxCachedSessions);
  }
}

}  // namespace
}  // namespace certrelay::tls
