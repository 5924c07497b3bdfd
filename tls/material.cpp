// Reading one TLS generation's files. See material.h for why they are read together.

#include "tls/material.h"

#include <openssl/crypto.h>

#include <utility>

#include "config/read_file.h"
#include "tls/context.h"

namespace certrelay::tls {

namespace {

// The setting each materialPaths() entry comes from, for "cannot read" messages.
std::vector<const char*> materialSettings(const config::Tls& settings) {
  std::vector<const char*> out;
  for (std::size_t i = 0; i < settings.certificates.size(); ++i) {
    out.push_back("tls.cert");
    out.push_back("tls.key");
  }
  if (!settings.clientCa.empty()) {
    out.push_back("tls.client_ca");
  }
  out.insert(out.end(), settings.ticketKeys.size(), "tls.ticket_keys");
  return out;
}

}  // namespace

std::vector<std::filesystem::path> materialPaths(const config::Tls& settings) {
  std::vector<std::filesystem::path> paths;
  paths.reserve(settings.certificates.size() * 2 + 1 + settings.ticketKeys.size());
  for (const config::CertificatePair& pair : settings.certificates) {
    paths.push_back(pair.cert);
    paths.push_back(pair.key);
  }
  if (!settings.clientCa.empty()) {
    paths.push_back(settings.clientCa);
  }
  paths.insert(paths.end(), settings.ticketKeys.begin(), settings.ticketKeys.end());
  return paths;
}

Material materialFromContents(const config::Tls& settings, std::vector<std::string> contents) {
  const std::vector<std::filesystem::path> paths = materialPaths(settings);
  if (contents.size() != paths.size()) {
    // A caller bug (the watcher reads materialPaths() itself), not a bad file.
    throw TlsError("tls: " + std::to_string(contents.size()) + " file contents for " +
                   std::to_string(paths.size()) + " configured files");
  }
  std::size_t next = 0;
  auto take = [&]() {
    MaterialFile file{paths[next].string(), std::move(contents[next])};
    ++next;
    return file;
  };
  Material material;
  material.pairs.reserve(settings.certificates.size());
  for (std::size_t i = 0; i < settings.certificates.size(); ++i) {
    Material::Pair pair;
    pair.cert = take();
    pair.key = take();
    material.pairs.push_back(std::move(pair));
  }
  if (!settings.clientCa.empty()) {
    material.clientCa = take();
  }
  material.ticketKeys.reserve(settings.ticketKeys.size());
  while (next < paths.size()) {
    material.ticketKeys.push_back(take());
  }
  return material;
}

Material readMaterial(const config::Tls& settings) {
  const std::vector<std::filesystem::path> paths = materialPaths(settings);
  const std::vector<const char*> names = materialSettings(settings);
  std::vector<std::string> contents(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    std::string error;
    if (!config::readWholeFile(paths[i], contents[i], error)) {
      throw TlsError(std::string(names[i]) + " " + error);  // "tls.cert /x: cannot read: ..."
    }
  }
  return materialFromContents(settings, std::move(contents));
}

void wipeSecrets(Material& material) {
  const auto wipe = [](MaterialFile& file) {
    OPENSSL_cleanse(file.content.data(), file.content.size());
    file.content.clear();
  };
  for (Material::Pair& pair : material.pairs) {
    wipe(pair.key);
  }
  for (MaterialFile& file : material.ticketKeys) {
    wipe(file);
  }
}

}  // namespace certrelay::tls
