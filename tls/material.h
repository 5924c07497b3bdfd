#pragma once
// The bytes of every file one TLS generation is built from, read together.
//
// Security role: a generation is built from one read of all its files, so a certificate and a
// key always come from the same moment (a kubelet `..data` swap changes both at once); a
// half-written pair fails validation in Context::create and is never used.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace certrelay::tls {

struct MaterialFile {
  std::string name;     // the path as configured, for messages
  std::string content;  // the whole file
};

struct Material {
  struct Pair {
    MaterialFile cert;  // leaf then chain, PEM
    MaterialFile key;   // private key, PEM
  };
  std::vector<Pair> pairs;               // tls.cert[i] with tls.key[i]; never empty
  std::optional<MaterialFile> clientCa;  // tls.client_ca
  std::vector<MaterialFile> ticketKeys;  // tls.ticket_keys, first encrypts
};

// Every file `settings` names, in the order materialFromContents() expects: cert 0, key 0,
// cert 1, key 1, ..., then the client CA (when set), then the ticket keys.
std::vector<std::filesystem::path> materialPaths(const config::Tls& settings);

// Pairs `contents` (one per materialPaths() entry, in that order) with their file names.
Material materialFromContents(const config::Tls& settings, std::vector<std::string> contents);

// Reads every file now (start-up, --check-config, tests). Throws TlsError naming the file that
// cannot be read.
Material readMaterial(const config::Tls& settings);

// Overwrites the secrets read with `material` (private keys, ticket keys) once they are parsed,
// so they do not linger in freed memory. The parsed copies live in the Context (ticket keys are
// wiped there when it goes).
void wipeSecrets(Material& material);

// Calls wipeSecrets() when the scope ends, exception or not.
class SecretsWiper {
 public:
  explicit SecretsWiper(Material& material) : material_(material) {}
  ~SecretsWiper() { wipeSecrets(material_); }
  SecretsWiper(const SecretsWiper&) = delete;
  SecretsWiper& operator=(const SecretsWiper&) = delete;

 private:
  Material& material_;
};

}  // namespace certrelay::tls
