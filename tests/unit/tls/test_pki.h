#pragma once
// Test PKI generated at run time with the OpenSSL API (nothing checked in that can expire):
// an EC P-256 CA, server certificates (good, expired, expiring, not yet valid, wrong chain
// order, wildcard) and several client certificates, written as PEM files into a per-process
// temporary directory that is removed at exit.

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <filesystem>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>

#include "config/config.h"
#include "tls/ossl_ptr.h"

namespace certrelay::tls::test {

struct Credential {
  EvpPkeyPtr key;
  X509Ptr cert;
  std::filesystem::path certFile;  // PEM: the certificate (the server's also carries the CA)
  std::filesystem::path keyFile;   // PEM: unencrypted private key
};

inline void check(bool ok, const char* what) {
  if (!ok) {
    throw std::runtime_error(std::string("test PKI: ") + what);
  }
}

inline EvpPkeyPtr makeEcKey() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EC keygen");
  return key;
}

// An EC key whose certificate carries the public point in compressed form (0x02/0x03 prefix).
inline EvpPkeyPtr makeCompressedEcKey() {
  EvpPkeyPtr key = makeEcKey();
  check(EVP_PKEY_set_utf8_string_param(key.get(), OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "compressed") == 1,
        "point format");
  return key;
}

inline EvpPkeyPtr makeRsaKey() {
  EvpPkeyPtr key(EVP_RSA_gen(2048));
  check(key != nullptr, "RSA keygen");
  return key;
}

inline EvpPkeyPtr makeEd25519Key() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  check(key != nullptr, "Ed25519 keygen");
  return key;
}

inline EvpPkeyPtr makeEd448Key() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED448"));
  check(key != nullptr, "Ed448 keygen");
  return key;
}

inline EvpPkeyPtr makeP384Key() {
  EvpPkeyPtr key(EVP_EC_gen("P-384"));
  check(key != nullptr, "P-384 keygen");
  return key;
}

// A second owner of `key` (RSA generation is slow; see Pki::rsaServer).
inline EvpPkeyPtr shareKey(EVP_PKEY* key) {
  check(EVP_PKEY_up_ref(key) == 1, "EVP_PKEY_up_ref");
  return EvpPkeyPtr(key);
}

inline void addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "extension");
  check(X509_add_ext(cert, ext, -1) == 1, "add extension");
  X509_EXTENSION_free(ext);
}

// Validity (seconds relative to now) and extensions of a test certificate.
struct CertOptions {
  long notBefore = -3600;
  long notAfter = 86400L * 30;
  const char* subjectAltName = nullptr;  // e.g. "DNS:*.relay.example"; nullptr: none
};

// `cn` is stored as raw UTF8String bytes (V_ASN1_UTF8STRING is not an MBSTRING type, so OpenSSL
// neither validates nor length-limits it): hostile CNs with CR, LF or NUL are possible.
// issuer == nullptr: self-signed.
inline X509Ptr makeCert(EVP_PKEY* key, std::string_view cn, const Credential* issuer, bool isCa,
                        const CertOptions& options = {}) {
  static long serial = 1;
  X509Ptr cert(X509_new());
  check(cert != nullptr, "X509_new");
  X509* c = cert.get();
  check(X509_set_version(c, X509_VERSION_3) == 1, "version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(c), serial++) == 1, "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(c), options.notBefore) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(c), options.notAfter) != nullptr, "notAfter");
  check(X509_set_pubkey(c, key) == 1, "pubkey");
  X509_NAME* name = X509_get_subject_name(c);
  check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("certrelay tests"), -1,
                                   -1, 0) == 1,
        "O");
  check(X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                   reinterpret_cast<const unsigned char*>(cn.data()),
                                   static_cast<int>(cn.size()), -1, 0) == 1,
        "CN");
  X509* issuerCert = issuer != nullptr ? issuer->cert.get() : c;
  EVP_PKEY* issuerKey = issuer != nullptr ? issuer->key.get() : key;
  check(X509_set_issuer_name(c, X509_get_subject_name(issuerCert)) == 1, "issuer");
  addExtension(c, issuerCert, NID_basic_constraints, isCa ? "critical,CA:TRUE" : "CA:FALSE");
  if (isCa) {
    addExtension(c, issuerCert, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  addExtension(c, issuerCert, NID_subject_key_identifier, "hash");
  if (options.subjectAltName != nullptr) {
    addExtension(c, issuerCert, NID_subject_alt_name, options.subjectAltName);
  }
  // Ed25519 and Ed448 sign without a separate digest.
  const int issuerType = EVP_PKEY_get_id(issuerKey);
  const EVP_MD* md =
      issuerType == EVP_PKEY_ED25519 || issuerType == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
  check(X509_sign(c, issuerKey, md) > 0, "sign");
  return cert;
}

inline void writePem(const std::filesystem::path& file, X509* cert, X509* chain = nullptr) {
  BioPtr bio(BIO_new_file(file.c_str(), "w"));
  check(bio != nullptr, "open cert file");
  check(PEM_write_bio_X509(bio.get(), cert) == 1, "write cert");
  if (chain != nullptr) {
    check(PEM_write_bio_X509(bio.get(), chain) == 1, "write chain");
  }
}

inline void writeKeyPem(const std::filesystem::path& file, EVP_PKEY* key,
                        const char* passphrase = nullptr) {
  BioPtr bio(BIO_new_file(file.c_str(), "w"));
  check(bio != nullptr, "open key file");
  const EVP_CIPHER* cipher = passphrase != nullptr ? EVP_aes_256_cbc() : nullptr;
  auto* pass = reinterpret_cast<const unsigned char*>(passphrase);
  const int passLen =
      passphrase != nullptr ? static_cast<int>(std::string_view(passphrase).size()) : 0;
  check(PEM_write_bio_PrivateKey(bio.get(), key, cipher, pass, passLen, nullptr, nullptr) == 1,
        "write key");
}

struct Pki {
  std::filesystem::path dir;
  Credential ca;
  Credential otherCa;       // a CA that signed nothing the server knows about
  Credential server;        // certFile = leaf + CA (leaf then chain)
  Credential client;        // signed by ca
  Credential selfSigned;    // self-signed client
  Credential hostileCn;     // CN "evil\r\nX: y (\"x\")\\", signed by ca
  Credential nulCn;         // CN with an embedded NUL, signed by ca
  Credential longCn;        // 300-character CN, signed by ca
  Credential rsaClient;     // RSA-2048, signed by ca
  Credential edClient;      // Ed25519, self-signed
  Credential compressedEc;  // P-256 with a compressed point in the certificate, signed by ca
  Credential ed448Client;   // Ed448, signed by ca
  Credential p384Client;    // EC P-384, signed by ca
  // Alternative server certificates (leaf + CA, like `server`), for settingsFor().
  Credential rsaServer;  // RSA-2048: rsaClient's key (one RSA keygen per process is enough)
  Credential edServer;   // Ed25519, signed by ca
  // More server certificates, all leaf + CA files. The ones below reuse server's key (a renewal
  // keeps the key) unless said otherwise.
  Credential rsaServerMx;   // RSA (rsaClient's key) with server's CN: the RSA half of a dual pair
  Credential expired;       // expired a day ago
  Credential expiringSoon;  // expires in 3 days and 1 hour
  Credential notYetValid;   // valid from tomorrow
  Credential wildcard;      // CN mx-wild.certrelay.test, SAN DNS:*.relay.certrelay.test
  std::filesystem::path wrongOrderChain;  // CA first, then server's leaf
  std::filesystem::path encryptedKey;     // server key, encrypted with a passphrase (PKCS#8)
  std::filesystem::path encryptedTraditionalKey;  // the same, "Proc-Type: 4,ENCRYPTED" form

  Pki() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "certrelay-tls-XXXXXX").string();
    check(mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
    dir = tmpl;
    make(ca, "ca", makeEcKey(), "certrelay Test CA", nullptr, true);
    make(otherCa, "other-ca", makeEcKey(), "Other CA", nullptr, true);
    make(server, "server", makeEcKey(), "mx.certrelay.test", &ca, false);
    writePem(server.certFile, server.cert.get(), ca.cert.get());
    make(client, "client", makeEcKey(), "client1.lab.example", &ca, false);
    make(selfSigned, "self", makeEcKey(), "client2.lab.example", nullptr, false);
    make(hostileCn, "hostile", makeEcKey(), "evil\r\nX: y (\"x\")\\", &ca, false);
    make(nulCn, "nul", makeEcKey(), std::string_view("good.example\0.evil.example", 26), &ca,
         false);
    make(longCn, "long", makeEcKey(), std::string(300, 'a'), &ca, false);
    make(rsaClient, "rsa", makeRsaKey(), "rsa.lab.example", &ca, false);
    make(edClient, "ed25519", makeEd25519Key(), "ed.lab.example", nullptr, false);
    make(compressedEc, "compressed", makeCompressedEcKey(), "compressed.lab.example", &ca, false);
    make(ed448Client, "ed448", makeEd448Key(), "ed448.lab.example", &ca, false);
    make(p384Client, "p384", makeP384Key(), "p384.lab.example", &ca, false);
    make(rsaServer, "rsa-server", shareKey(rsaClient.key.get()), "mx-rsa.certrelay.test", &ca,
         false);
    writePem(rsaServer.certFile, rsaServer.cert.get(), ca.cert.get());
    make(edServer, "ed-server", makeEd25519Key(), "mx-ed.certrelay.test", &ca, false);
    writePem(edServer.certFile, edServer.cert.get(), ca.cert.get());
    makeServers();
    encryptedKey = dir / "server-encrypted.key";
    writeKeyPem(encryptedKey, server.key.get(), "secret");
    encryptedTraditionalKey = dir / "server-encrypted-traditional.key";
    BioPtr bio(BIO_new_file(encryptedTraditionalKey.c_str(), "w"));
    check(bio != nullptr, "open key file");
    const std::string_view pass = "secret";
    check(
        PEM_write_bio_PrivateKey_traditional(bio.get(), server.key.get(), EVP_aes_256_cbc(),
                                             reinterpret_cast<const unsigned char*>(pass.data()),
                                             static_cast<int>(pass.size()), nullptr, nullptr) == 1,
        "write traditional key");
  }
  ~Pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  Pki(const Pki&) = delete;
  Pki& operator=(const Pki&) = delete;

  // Settings for Context::create with this PKI's server certificate.
  config::Tls settings(bool withClientCa) const { return settingsFor(server, withClientCa); }

  // The same with another server certificate (server, rsaServer, edServer, ...).
  config::Tls settingsFor(const Credential& serverCred, bool withClientCa = true) const {
    config::Tls tls;
    tls.certificates.push_back({serverCred.certFile, serverCred.keyFile});
    if (withClientCa) {
      tls.clientCa = ca.certFile;
    }
    return tls;
  }

  // Settings with several server certificates, in this order.
  config::Tls settingsFor(std::initializer_list<const Credential*> serverCreds,
                          bool withClientCa = true) const {
    config::Tls tls;
    for (const Credential* cred : serverCreds) {
      tls.certificates.push_back({cred->certFile, cred->keyFile});
    }
    if (withClientCa) {
      tls.clientCa = ca.certFile;
    }
    return tls;
  }

 private:
  // A server certificate signed by ca, written as leaf + CA.
  void makeServer(Credential& out, const std::string& stem, EvpPkeyPtr key, std::string_view cn,
                  const CertOptions& options = {}) {
    make(out, stem, std::move(key), cn, &ca, false, options);
    writePem(out.certFile, out.cert.get(), ca.cert.get());
  }

  void makeServers() {
    makeServer(rsaServerMx, "rsa-server-mx", shareKey(rsaClient.key.get()), "mx.certrelay.test");
    makeServer(expired, "expired", shareKey(server.key.get()), "mx.certrelay.test",
               {.notBefore = -86400L * 30, .notAfter = -86400L});
    makeServer(expiringSoon, "expiring", shareKey(server.key.get()), "mx.certrelay.test",
               {.notAfter = 86400L * 3 + 3600});
    makeServer(notYetValid, "not-yet-valid", shareKey(server.key.get()), "mx.certrelay.test",
               {.notBefore = 86400L, .notAfter = 86400L * 30});
    makeServer(wildcard, "wildcard", shareKey(server.key.get()), "mx-wild.certrelay.test",
               {.subjectAltName = "DNS:*.relay.certrelay.test"});
    wrongOrderChain = dir / "wrong-order.pem";
    writePem(wrongOrderChain, ca.cert.get(), server.cert.get());
  }

  void make(Credential& out, const std::string& stem, EvpPkeyPtr key, std::string_view cn,
            const Credential* issuer, bool isCa, const CertOptions& options = {}) {
    out.cert = makeCert(key.get(), cn, issuer, isCa, options);
    out.key = std::move(key);
    out.certFile = dir / (stem + ".pem");
    out.keyFile = dir / (stem + ".key");
    writePem(out.certFile, out.cert.get());
    writeKeyPem(out.keyFile, out.key.get());
  }
};

// One PKI per test process (each TEST_CASE runs as its own ctest process; generation is cheap).
inline const Pki& pki() {
  static const Pki instance;
  return instance;
}

}  // namespace certrelay::tls::test
