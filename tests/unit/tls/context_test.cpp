// Context::create: what it configures on the SSL_CTX, how it checks a generation's material and
// reports bad files, several certificates per context, strict SNI, ticket keys from files, and
// the summary, warnings and fingerprints it gives the logs.

#include "tls/context.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "tests/unit/tls/test_cli.h"
#include "tests/unit/tls/test_peer.h"
#include "tests/unit/tls/test_pki.h"
#include "tls/material.h"

namespace certrelay::tls {
namespace {

using test::ClientOptions;
using test::Credential;
using test::Link;
using test::pki;
using State = Engine::State;
using SessionPtr = OsslPtr<SSL_SESSION, SSL_SESSION_free>;

// The TlsError message of Context::create(settings), or "" when it did not throw.
std::string createError(const config::Tls& settings) {
  try {
    Context::create(settings);
  } catch (const TlsError& e) {
    return e.what();
  }
  return {};
}

// The same from in-memory material.
std::string createError(const config::Tls& settings, const Material& material,
                        std::time_t now = std::time(nullptr)) {
  try {
    Context::create(settings, material, config::FingerprintDigest::Sha256, now);
  } catch (const TlsError& e) {
    return e.what();
  }
  return {};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  REQUIRE(PEM_write_bio_X509(bio.get(), cert) == 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// A certificate's date as the messages print it, computed here from the certificate itself.
std::string utc(const ASN1_TIME* time, const char* format = "%Y-%m-%d %H:%M:%S UTC") {
  std::tm tm{};
  REQUIRE(ASN1_TIME_to_tm(time, &tm) == 1);
  char buf[64];
  return std::string(buf, std::strftime(buf, sizeof(buf), format, &tm));
}

std::time_t timeOf(const ASN1_TIME* time) {
  std::tm tm{};
  REQUIRE(ASN1_TIME_to_tm(time, &tm) == 1);
  return timegm(&tm);
}

// What `openssl x509 -fingerprint -sha256` prints after "=".
std::string cliFingerprint(const Credential& cred) {
  const std::string out =
      test::shell("openssl x509 -in '" + cred.certFile.string() + "' -noout -fingerprint -sha256");
  const std::size_t eq = out.find('=');
  REQUIRE(eq != std::string::npos);
  return out.substr(eq + 1, out.find_last_not_of("\r\n") - eq);
}

// The key type of the leaf the client received.
int serverKeyType(SSL* client) {
  X509* leaf = SSL_get0_peer_certificate(client);
  REQUIRE(leaf != nullptr);
  return EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
}

// 80 bytes, nginx/Envoy layout; `seed` makes the name and secrets differ between files.
std::string ticketKeyBytes(char seed) {
  std::string key(80, '\0');
  for (std::size_t i = 0; i < key.size(); ++i) {
    key[i] = static_cast<char>(seed + static_cast<char>(i));
  }
  return key;
}

TEST_SUITE("tls") {
  TEST_CASE("context: stateless tickets when asked for") {
    config::Tls settings = pki().settings(true);
    settings.sessionTickets = true;
    const ContextPtr context = Context::create(settings);
    CHECK((SSL_CTX_get_options(context->get()) & SSL_OP_NO_TICKET) == 0);
  }

  TEST_CASE("context: security options") {
    const ContextPtr context = Context::create(pki().settings(true));
    SSL_CTX* ctx = context->get();
    REQUIRE(ctx != nullptr);
    const uint64_t options = SSL_CTX_get_options(ctx);
    CHECK((options & SSL_OP_NO_RENEGOTIATION) != 0);
    CHECK((options & SSL_OP_ALLOW_CLIENT_RENEGOTIATION) == 0);
    CHECK((options & SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION) == 0);
    CHECK((options & SSL_OP_NO_COMPRESSION) != 0);
    // Stateless tickets are off by default: TLS 1.3 resumes through stateful tickets (cache).
    CHECK((options & SSL_OP_NO_TICKET) != 0);
    CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
    // Ask for a certificate, never require one (Engine narrows this per listener).
    CHECK(SSL_CTX_get_verify_mode(ctx) == SSL_VERIFY_PEER);
    const bool hasCallback = SSL_CTX_get_verify_callback(ctx) != nullptr;
    CHECK(hasCallback);
  }

  TEST_CASE("context: the fingerprint digest is SHA-256 unless another is given") {
    const ContextPtr byDefault = Context::create(pki().settings(true));
    CHECK(byDefault->digest() == config::FingerprintDigest::Sha256);
    REQUIRE(byDefault->digestMd() != nullptr);
    CHECK(EVP_MD_is_a(byDefault->digestMd(), "SHA2-256") == 1);
    const ContextPtr sha1 = Context::create(pki().settings(true), config::FingerprintDigest::Sha1);
    CHECK(sha1->digest() == config::FingerprintDigest::Sha1);
    REQUIRE(sha1->digestMd() != nullptr);
    CHECK(EVP_MD_is_a(sha1->digestMd(), "SHA1") == 1);
    const ContextPtr md5 = Context::create(pki().settings(false), config::FingerprintDigest::Md5);
    CHECK(md5->digest() == config::FingerprintDigest::Md5);
    REQUIRE(md5->digestMd() != nullptr);
    CHECK(EVP_MD_is_a(md5->digestMd(), "MD5") == 1);
    CHECK(ERR_peek_error() == 0);
  }

  TEST_CASE("context: modes for memory BIOs and idle memory") {
    const ContextPtr context = Context::create(pki().settings(false));
    const long mode = SSL_CTX_get_mode(context->get());
    CHECK((mode & SSL_MODE_RELEASE_BUFFERS) != 0);
    CHECK((mode & SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) != 0);
    CHECK((mode & SSL_MODE_ENABLE_PARTIAL_WRITE) != 0);
  }

  TEST_CASE("context: session cache, timeout, tickets") {
    config::Tls settings = pki().settings(true);
    settings.sessionCacheSize = 123;
    settings.sessionTimeout = std::chrono::seconds(77);
    settings.ticketsPerHandshake = 3;
    const ContextPtr context = Context::create(settings);
    SSL_CTX* ctx = context->get();
    // The byte-bounded cache (session_cache.h) is the only store: OpenSSL's internal one is off.
    CHECK(SSL_CTX_get_session_cache_mode(ctx) ==
          (SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL));
    CHECK(SSL_CTX_sess_get_cache_size(ctx) == 123);
    CHECK(SSL_CTX_get_timeout(ctx) == 77);
    CHECK(SSL_CTX_get_num_tickets(ctx) == 3);
  }

  TEST_CASE("context: cache size 0 turns the cache off, tickets can be turned off") {
    config::Tls settings = pki().settings(true);
    settings.sessionCacheSize = 0;
    settings.sessionTickets = false;
    settings.ticketsPerHandshake = 0;
    const ContextPtr context = Context::create(settings);
    SSL_CTX* ctx = context->get();
    CHECK(SSL_CTX_get_session_cache_mode(ctx) == SSL_SESS_CACHE_OFF);
    CHECK((SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET) != 0);
    CHECK(SSL_CTX_get_num_tickets(ctx) == 0);
  }

  TEST_CASE("context: min version TLSv1.3") {
    config::Tls settings = pki().settings(false);
    settings.minVersion = "TLSv1.3";
    CHECK(SSL_CTX_get_min_proto_version(Context::create(settings)->get()) == TLS1_3_VERSION);
  }

  TEST_CASE("context: unknown min version is refused") {
    config::Tls settings = pki().settings(false);
    settings.minVersion = "TLSv1.0";
    const std::string error = createError(settings);
    CHECK(contains(error, "tls.min_version"));
    CHECK(contains(error, "TLSv1.0"));
  }

  TEST_CASE("context: client CA names are sent as hints only when configured") {
    const ContextPtr with = Context::create(pki().settings(true));
    STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(with->get());
    REQUIRE(names != nullptr);
    REQUIRE(sk_X509_NAME_num(names) == 1);
    CHECK(X509_NAME_cmp(sk_X509_NAME_value(names, 0), X509_get_subject_name(pki().ca.cert.get())) ==
          0);

    const ContextPtr without = Context::create(pki().settings(false));
    STACK_OF(X509_NAME)* none = SSL_CTX_get_client_CA_list(without->get());
    CHECK((none == nullptr || sk_X509_NAME_num(none) == 0));
  }

  TEST_CASE("context: a client CA bundle: every certificate trusted, every subject named once") {
    config::Tls settings = pki().settings(true);
    Material material = readMaterial(settings);
    // The CA twice (a bundle that repeats it) and another CA.
    material.clientCa->content =
        pem(pki().ca.cert.get()) + pem(pki().otherCa.cert.get()) + pem(pki().ca.cert.get());
    const ContextPtr context = Context::create(settings, material);
    STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(context->get());
    REQUIRE(sk_X509_NAME_num(names) == 2);
    CHECK(X509_NAME_cmp(sk_X509_NAME_value(names, 1),
                        X509_get_subject_name(pki().otherCa.cert.get())) == 0);
    CHECK(X509_STORE_get0_objects(SSL_CTX_get_cert_store(context->get())) != nullptr);
    CHECK(contains(context->summary(), ", client CA 3 certificates"));
    // A client signed by the CA verifies against the store built from memory.
    Link link(context, ClientOptions{.cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().verified);
  }

  TEST_CASE("context: a client CA file without a certificate") {
    config::Tls settings = pki().settings(true);
    Material material = readMaterial(settings);
    material.clientCa->content = "# empty bundle\n";
    CHECK(createError(settings, material) ==
          "tls.client_ca " + pki().ca.certFile.string() +
              ": holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")");
  }

  TEST_CASE("context: missing certificate file is named in the error") {
    config::Tls settings = pki().settings(false);
    settings.certificates[0].cert = pki().dir / "does-not-exist.pem";
    const std::string error = createError(settings);
    CHECK(error == "tls.cert " + settings.certificates[0].cert.string() +
                       ": cannot read: No such file or directory");
  }

  TEST_CASE("context: missing key file is named in the error") {
    config::Tls settings = pki().settings(false);
    settings.certificates[0].key = pki().dir / "no-such.key";
    const std::string error = createError(settings);
    CHECK(contains(error, "tls.key"));
    CHECK(contains(error, settings.certificates[0].key.string()));
  }

  TEST_CASE("context: a key that does not match the certificate") {
    config::Tls settings = pki().settings(false);
    settings.certificates[0].key = pki().client.keyFile;
    const std::string error = createError(settings);
    CHECK(contains(error, "tls.key " + pki().client.keyFile.string() + " does not match tls.cert " +
                              pki().server.certFile.string()));
    CHECK(contains(error, "values mismatch"));  // OpenSSL's reason
  }

  TEST_CASE("context: a certificate file that is not PEM") {
    const auto file = pki().dir / "garbage.pem";
    std::ofstream(file) << "this is not a certificate\n";
    config::Tls settings = pki().settings(false);
    settings.certificates[0].cert = file;
    CHECK(createError(settings) ==
          "tls.cert " + file.string() +
              ": holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")");
  }

  TEST_CASE("context: a certificate file holding only a key") {
    config::Tls settings = pki().settings(false);
    settings.certificates[0].cert = pki().server.keyFile;
    CHECK(createError(settings) ==
          "tls.cert " + pki().server.keyFile.string() +
              ": holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")");
  }

  TEST_CASE("context: a key file holding no key") {
    config::Tls settings = pki().settings(false);
    settings.certificates[0].key = pki().ca.certFile;
    CHECK(createError(settings) ==
          "tls.key " + pki().ca.certFile.string() +
              ": holds no private key (expected PEM \"-----BEGIN PRIVATE KEY-----\")");
  }

  TEST_CASE("context: a corrupt key is reported with OpenSSL's reason") {
    config::Tls settings = pki().settings(false);
    Material material = readMaterial(settings);
    std::string& key = material.pairs[0].key.content;
    key.replace(key.find('\n') + 1, 8, "@@@@@@@@");  // the first base64 characters
    const std::string error = createError(settings, material);
    CHECK(contains(error, "tls.key " + pki().server.keyFile.string() +
                              ": the private key cannot be read: error:"));
  }

  TEST_CASE("context: an encrypted key fails in one sentence instead of prompting") {
    for (const auto& file : {pki().encryptedKey, pki().encryptedTraditionalKey}) {
      CAPTURE(file);
      config::Tls settings = pki().settings(false);
      settings.certificates[0].key = file;
      CHECK(createError(settings) == "tls.key " + file.string() +
                                         ": the private key is encrypted; certrelay needs it "
                                         "unencrypted (it reads keys without a passphrase)");
    }
    CHECK(ERR_peek_error() == 0);
  }

  TEST_CASE("context: a truncated certificate file is an error, not a shorter chain") {
    config::Tls settings = pki().settings(false);
    Material material = readMaterial(settings);
    std::string& cert = material.pairs[0].cert.content;
    const std::size_t second = cert.find("-----BEGIN CERTIFICATE-----", 1);
    REQUIRE(second != std::string::npos);
    cert.resize(second + 100);  // the writer stopped inside the CA certificate
    const std::string error = createError(settings, material);
    CHECK(contains(
        error, "tls.cert " + pki().server.certFile.string() + ": certificate 2 cannot be read"));
  }

  TEST_CASE("context: a chain out of order names both certificates") {
    config::Tls settings = pki().settings(false);
    settings.certificates[0].cert = pki().wrongOrderChain;
    CHECK(createError(settings) == "tls.cert " + pki().wrongOrderChain.string() +
                                       ": certificate 2 (CN=mx.certrelay.test) did not issue "
                                       "certificate 1 (CN=certrelay Test CA); put the leaf first, "
                                       "then its issuer");
    // A leaf followed by a CA that did not sign it.
    Material material = readMaterial(pki().settings(false));
    material.pairs[0].cert.content = pem(pki().server.cert.get()) + pem(pki().otherCa.cert.get());
    CHECK(createError(settings, material) ==
          "tls.cert " + pki().server.certFile.string() +
              ": certificate 2 (CN=Other CA) did not issue certificate 1 (CN=mx.certrelay.test); "
              "put the leaf first, then its issuer");
  }

  TEST_CASE("context: an expired certificate") {
    const Credential& cred = pki().expired;
    CHECK(createError(pki().settingsFor(cred)) == "tls.cert " + cred.certFile.string() +
                                                      ": certificate expired on " +
                                                      utc(X509_get0_notAfter(cred.cert.get())));
    // `now` decides: the good certificate, a second after its notAfter.
    const config::Tls settings = pki().settings(false);
    const std::time_t notAfter = timeOf(X509_get0_notAfter(pki().server.cert.get()));
    CHECK(contains(createError(settings, readMaterial(settings), notAfter + 1),
                   ": certificate expired on "));
    CHECK(createError(settings, readMaterial(settings), notAfter).empty());
  }

  TEST_CASE("context: a certificate that is not valid yet") {
    const Credential& cred = pki().notYetValid;
    CHECK(createError(pki().settingsFor(cred)) == "tls.cert " + cred.certFile.string() +
                                                      ": certificate is not valid before " +
                                                      utc(X509_get0_notBefore(cred.cert.get())));
  }

  TEST_CASE("context: a certificate expiring within 7 days is a warning") {
    const Credential& cred = pki().expiringSoon;
    const ContextPtr context = Context::create(pki().settingsFor(cred));
    const std::string date = utc(X509_get0_notAfter(cred.cert.get()));
    REQUIRE(context->warnings().size() == 1);
    CHECK(context->warnings()[0] ==
          "tls.cert " + cred.certFile.string() + ": certificate expires in 3 days (" + date + ")");
    CHECK(context->notAfter() == timeOf(X509_get0_notAfter(cred.cert.get())));

    const config::Tls settings = pki().settings(false);
    const Material material = readMaterial(settings);
    const std::time_t notAfter = timeOf(X509_get0_notAfter(pki().server.cert.get()));
    const std::string prefix = "tls.cert " + pki().server.certFile.string() + ": ";
    constexpr std::time_t kWeek = std::time_t{7} * 86400;
    const std::string serverDate = " (" + utc(X509_get0_notAfter(pki().server.cert.get())) + ")";
    auto warningsAt = [&](std::time_t now) {
      return Context::create(settings, material, config::FingerprintDigest::Sha256, now)
          ->warnings();
    };
    CHECK(warningsAt(notAfter - kWeek).empty());
    CHECK(warningsAt(notAfter - kWeek + 1) ==
          std::vector<std::string>{prefix + "certificate expires in 6 days" + serverDate});
    CHECK(warningsAt(notAfter - 86400) ==
          std::vector<std::string>{prefix + "certificate expires in 1 day" + serverDate});
    CHECK(warningsAt(notAfter - 60) ==
          std::vector<std::string>{prefix + "certificate expires in less than a day" + serverDate});
    CHECK(Context::create(settings)->warnings().empty());
  }

  TEST_CASE("context: two certificates of one key type are refused, naming both files") {
    const config::Tls settings = pki().settingsFor({&pki().server, &pki().wildcard});
    CHECK(createError(settings) == "tls.cert " + pki().wildcard.certFile.string() +
                                       ": a second ECDSA certificate (tls.cert " +
                                       pki().server.certFile.string() +
                                       " is one already); give at most one certificate per key "
                                       "type");
  }

  TEST_CASE("context: no certificate pair at all") {
    config::Tls settings = pki().settings(false);
    settings.certificates.clear();
    CHECK(createError(settings) == "tls.cert: no certificate configured");
  }

  TEST_CASE("context: ECDSA and RSA: each client gets the certificate it can verify") {
    const ContextPtr context =
        Context::create(pki().settingsFor({&pki().server, &pki().rsaServerMx}));
    {
      Link link(context, ClientOptions{});
      link.run();
      REQUIRE(link.established());
      CHECK(serverKeyType(link.client.ssl()) == EVP_PKEY_EC);
    }
    {
      Link link(context, ClientOptions{.sigalgs = "RSA-PSS+SHA256:RSA+SHA256"});
      link.run();
      REQUIRE(link.established());
      CHECK(serverKeyType(link.client.ssl()) == EVP_PKEY_RSA);
      CHECK(X509_cmp(SSL_get0_peer_certificate(link.client.ssl()), pki().rsaServerMx.cert.get()) ==
            0);
    }
    for (const char* sigalgs : {"RSA+SHA256", static_cast<const char*>(nullptr)}) {
      CAPTURE((sigalgs != nullptr ? sigalgs : "default"));
      Link link(context, ClientOptions{.maxVersion = TLS1_2_VERSION, .sigalgs = sigalgs});
      link.run();
      REQUIRE(link.established());
      CHECK(serverKeyType(link.client.ssl()) == (sigalgs != nullptr ? EVP_PKEY_RSA : EVP_PKEY_EC));
    }
  }

  TEST_CASE("context: summary, notAfter and leaf fingerprints") {
    const Credential& ec = pki().server;
    const Credential& rsa = pki().rsaServerMx;
    const std::string ecDate = utc(X509_get0_notAfter(ec.cert.get()), "%Y-%m-%d");
    const std::string rsaDate = utc(X509_get0_notAfter(rsa.cert.get()), "%Y-%m-%d");

    const ContextPtr one = Context::create(pki().settings(false));
    CHECK(one->summary() ==
          "1 certificate (CN=mx.certrelay.test ECDSA P-256 not after " + ecDate + ")");
    CHECK(one->leafFingerprints() == std::vector<std::string>{cliFingerprint(ec)});
    CHECK(one->notAfter() == timeOf(X509_get0_notAfter(ec.cert.get())));

    const ContextPtr two = Context::create(pki().settingsFor({&ec, &rsa}, true));
    CHECK(two->summary() == "2 certificates (CN=mx.certrelay.test ECDSA P-256 not after " + ecDate +
                                ", CN=mx.certrelay.test RSA 2048 not after " + rsaDate +
                                "), client CA 1 certificate");
    CHECK(two->leafFingerprints() ==
          std::vector<std::string>{cliFingerprint(ec), cliFingerprint(rsa)});
    CHECK(two->notAfter() == std::min(timeOf(X509_get0_notAfter(ec.cert.get())),
                                      timeOf(X509_get0_notAfter(rsa.cert.get()))));
    CHECK(two->warnings().empty());

    const ContextPtr ed = Context::create(pki().settingsFor(pki().edServer, false));
    CHECK(contains(ed->summary(), "(CN=mx-ed.certrelay.test Ed25519 not after "));
  }

  TEST_CASE("context: built from memory, the files are not read again") {
    config::Tls settings = pki().settings(true);
    const Material material = readMaterial(settings);
    settings.certificates[0].cert = pki().dir / "gone.pem";  // names only; nothing is opened
    settings.clientCa = pki().dir / "gone-ca.pem";
    const ContextPtr context = Context::create(settings, material);
    Link link(context, ClientOptions{.cert = &pki().client});
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().verified);
  }

  TEST_CASE("context: strict SNI accepts our names and no name, refuses others") {
    config::Tls settings = pki().settingsFor({&pki().wildcard, &pki().rsaServerMx}, false);
    settings.strictSni = true;
    const ContextPtr context = Context::create(settings);
    for (const char* name : {"mx.certrelay.test", "MX.CERTRELAY.TEST", "a.relay.certrelay.test",
                             static_cast<const char*>(nullptr)}) {
      CAPTURE((name != nullptr ? name : "no SNI"));
      Link link(context, ClientOptions{.sni = name});
      link.run();
      CHECK(link.established());
    }
    for (const char* name : {"other.example", "relay.certrelay.test", "a.b.relay.certrelay.test",
                             "mx-wild.certrelay.test"}) {  // the CN does not count next to a SAN
      CAPTURE(name);
      Link link(context, ClientOptions{.sni = name});
      link.run();
      CHECK(link.engine.state() == State::Failed);
      CHECK(contains(link.engine.error(), std::string("(tls.strict_sni: server name ") + name +
                                              " matches none of our certificates)"));
      CHECK(link.client.failed());
      CHECK(contains(link.client.error(), "unrecognized name"));
    }
  }

  TEST_CASE("context: without strict SNI any name is accepted") {
    const ContextPtr context = Context::create(pki().settings(false));
    Link link(context, ClientOptions{.sni = "other.example"});
    link.run();
    CHECK(link.established());
  }

  TEST_CASE("context: ticket keys from files turn stateless tickets on") {
    config::Tls settings = pki().settings(false);
    settings.sessionTickets = false;
    Material material = readMaterial(settings);
    material.ticketKeys = {{"current.key", ticketKeyBytes('a')},
                           {"previous.key", ticketKeyBytes('b')}};
    const ContextPtr context = Context::create(settings, material);
    CHECK((SSL_CTX_get_options(context->get()) & SSL_OP_NO_TICKET) == 0);
    CHECK(contains(context->summary(), "), 2 ticket keys"));
    CHECK_FALSE(contains(Context::create(settings)->summary(), "ticket key"));

    material.ticketKeys = {{"short.key", std::string(79, 'x')}};
    const std::string error = createError(settings, material);
    CHECK(contains(error, "tls.ticket_keys"));
    CHECK(contains(error, "short.key"));
  }

  TEST_CASE("context: two generations with the same ticket keys resume each other's sessions") {
    config::Tls settings = pki().settings(true);
    Material material = readMaterial(settings);
    material.ticketKeys = {{"current.key", ticketKeyBytes('a')}};
    const ContextPtr first = Context::create(settings, material);
    const ContextPtr second = Context::create(settings, material);
    SessionPtr session;
    {
      Link link(first, ClientOptions{.cert = &pki().client});
      link.run();
      REQUIRE(link.established());
      session.reset(SSL_get1_session(link.client.ssl()));
      SSL_shutdown(link.client.ssl());
      link.run();
    }
    REQUIRE(session != nullptr);
    Link link(second, ClientOptions{.cert = &pki().client, .session = session.get()});
    link.run();
    REQUIRE(link.established());
    CHECK(link.engine.facts().summary.resumed);
    CHECK(link.engine.facts().certFingerprint == certificateFingerprint(pki().client.cert.get()));
  }

  TEST_CASE("context: a failed create leaves no error on the thread's queue") {
    config::Tls settings = pki().settings(false);
    settings.certificates[0].cert = pki().dir / "does-not-exist.pem";
    CHECK_FALSE(createError(settings).empty());
    CHECK(ERR_peek_error() == 0);
    CHECK_FALSE(createError(pki().settingsFor(pki().expired)).empty());
    CHECK(ERR_peek_error() == 0);
    settings = pki().settings(false);
    settings.certificates[0].key = pki().client.keyFile;
    CHECK_FALSE(createError(settings).empty());
    CHECK(ERR_peek_error() == 0);
  }
}

}  // namespace
}  // namespace certrelay::tls
