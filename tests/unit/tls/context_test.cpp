// Context::create: what it configures on the SSL_CTX and how it reports bad files.

#include "tls/context.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "tests/unit/tls/test_pki.h"

namespace certrelay::tls {
namespace {

using test::pki;

// The TlsError message of Context::create(settings), or "" when it did not throw.
std::string createError(const config::Tls& settings) {
  try {
    Context::create(settings);
  } catch (const TlsError& e) {
    return e.what();
  }
  return {};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
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
    // Ask for a certificate, never require one.
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
    CHECK(SSL_CTX_get_session_cache_mode(ctx) == SSL_SESS_CACHE_SERVER);
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

  TEST_CASE("context: missing certificate file is named in the error") {
    config::Tls settings = pki().settings(false);
    settings.cert = pki().dir / "does-not-exist.pem";
    const std::string error = createError(settings);
    CHECK(contains(error, "tls.cert"));
    CHECK(contains(error, settings.cert.string()));
    CHECK(contains(error, "No such file"));
  }

  TEST_CASE("context: missing key file is named in the error") {
    config::Tls settings = pki().settings(false);
    settings.key = pki().dir / "no-such.key";
    const std::string error = createError(settings);
    CHECK(contains(error, "tls.key"));
    CHECK(contains(error, settings.key.string()));
  }

  TEST_CASE("context: a key that does not match the certificate") {
    config::Tls settings = pki().settings(false);
    settings.key = pki().client.keyFile;
    const std::string error = createError(settings);
    CHECK(contains(error, "does not match"));
    CHECK(contains(error, pki().client.keyFile.string()));
    CHECK(contains(error, "values mismatch"));  // OpenSSL's reason
  }

  TEST_CASE("context: a certificate file that is not PEM") {
    const auto file = pki().dir / "garbage.pem";
    std::ofstream(file) << "this is not a certificate\n";
    config::Tls settings = pki().settings(false);
    settings.cert = file;
    const std::string error = createError(settings);
    CHECK(contains(error, file.string()));
    CHECK(contains(error, "no start line"));
  }

  TEST_CASE("context: an encrypted key fails instead of prompting for a passphrase") {
    config::Tls settings = pki().settings(false);
    settings.key = pki().encryptedKey;
    const std::string error = createError(settings);
    CHECK(contains(error, "tls.key"));
    CHECK(contains(error, pki().encryptedKey.string()));
  }

  TEST_CASE("context: missing client CA file is named in the error") {
    config::Tls settings = pki().settings(false);
    settings.clientCa = pki().dir / "no-ca.pem";
    const std::string error = createError(settings);
    CHECK(contains(error, "tls.client_ca"));
    CHECK(contains(error, settings.clientCa.string()));
  }

  TEST_CASE("context: a failed create leaves no error on the thread's queue") {
    config::Tls settings = pki().settings(false);
    settings.cert = pki().dir / "does-not-exist.pem";
    CHECK_FALSE(createError(settings).empty());
    CHECK(ERR_peek_error() == 0);
  }
}

}  // namespace
}  // namespace certrelay::tls
