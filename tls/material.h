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
  std::vector<Pair> pairs;                // tls.cert[i] with tls.key[i]; never empty
  std::optional<MaterialFile> clientCa;   // tls.client_ca
  std::vector<MaterialFile> ticketKeys;   // tls.ticket_keys, first encrypts
};

// Every file `settings` names, in the order materialFromContents() expects: cert 0, key 0,
// cert 1, key 1, ..., then the client CA (when set), then the ticket keys.
std::vector<std::filesystem::path> materialPaths(const config::Tls& settings);

// Pairs `contents` (one per materialPaths() entry, in that order) with their file names.
Material materialFromContents(const config::Tls& settings, std::vector<std::string> contents);

// Reads every file now (start-up, --check-config, tests). Throws TlsError naming the file that
// cannot be read.
Material readMaterial(const config::Tls& settings);

}  // namespace certrelay::tls
