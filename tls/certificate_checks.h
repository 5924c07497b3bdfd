#pragma once
// Parsing and checking certificates and keys from memory, for Context::create. Internal to tls/.
//
// Every check here turns a mistake an operator makes while renewing (chain out of order, key of
// the previous certificate, encrypted key, expired or not-yet-valid certificate, half-written
// file) into one TlsError that names the file, before the generation can be put in force.

#include <ctime>
#include <string>
#include <vector>

#include "tls/material.h"
#include "tls/ossl_ptr.h"

namespace certrelay::tls {

// A leaf that expires within this long of `now` gets a warning.
inline constexpr std::time_t kExpiryWarningSeconds = std::time_t{7} * 86'400;

// One tls.cert / tls.key pair, parsed and checked.
struct ServerCertificate {
  X509Ptr leaf;
  std::vector<X509Ptr> chain;  // the issuers after the leaf, in file order
  EvpPkeyPtr key;
  std::string certName;  // the files as configured, for messages
  std::string keyName;
  std::time_t notAfter = 0;  // the leaf's
};

// Parses `pair` and checks it: at least one certificate, an unencrypted key, each certificate
// issued by the next one, the key matching the leaf, the leaf valid at `now`. Throws TlsError
// whose message names the file by its setting (`certSetting`, `keySetting`: the server's
// tls.cert / tls.key, or the proxy's client pair backend.tls_cert / backend.tls_key). Appends to
// `warnings` when the leaf expires within kExpiryWarningSeconds.
ServerCertificate loadServerCertificate(const Material::Pair& pair, std::time_t now,
                                        std::vector<std::string>& warnings,
                                        const char* certSetting = "tls.cert",
                                        const char* keySetting = "tls.key");

// Every certificate in a PEM file. Throws TlsError ("<setting> <file>: ...") when it holds none
// or one of them cannot be read (a truncated file, a corrupt block).
std::vector<X509Ptr> readCertificates(const MaterialFile& file, const char* setting);

// The server-certificate slot OpenSSL keeps a key in, as a name: "ECDSA" (every curve shares
// one slot), "RSA", "RSA-PSS", "Ed25519", "Ed448", or OpenSSL's type name.
std::string keyTypeName(const EVP_PKEY* key);

// "CN=mx.example ECDSA P-256 not after 2027-03-01", for the generation's summary.
std::string describeServerCertificate(const ServerCertificate& certificate);

// "CN=<first CN>" (sanitized), or "no CN".
std::string subjectText(X509* cert);

// "2027-03-01 12:00:00 UTC" (withTime) or "2027-03-01".
std::string formatUtc(std::time_t when, bool withTime = true);

// `what`, then ": " and OpenSSL's error queue when it holds anything. Clears the queue.
[[noreturn]] void throwTlsError(const std::string& what);

}  // namespace certrelay::tls
