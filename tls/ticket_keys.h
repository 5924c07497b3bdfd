#pragma once
// Session-ticket keys loaded from files, so that replicas behind one Service (and a restarted
// process) resume each other's sessions. nginx and Envoy conventions:
//
// - A key file holds 80 bytes: key name (16), HMAC-SHA256 secret (32), AES-256-CBC key (32);
//   or 48 bytes: key name (16), AES-128-CBC key (16), HMAC-SHA256 secret (16), nginx's order.
// - The first key encrypts every new ticket; every key decrypts. A ticket decrypted with a key
//   other than the first resumes and is renewed (a new ticket under the first key).
// - A ticket whose key name is unknown is not an error: the handshake is a full one.
//
// Security role: these keys protect every resumed session's master secret (and the client
// certificate facts the session carries): they are read, never written or logged.

#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <vector>

#include "tls/material.h"

namespace certrelay::tls {

struct TicketKey {
  static constexpr std::size_t kNameSize = 16;

  // The secrets are wiped (OPENSSL_cleanse) when a key is destroyed or assigned over: every
  // copy wipes its own bytes, and a moved-from key holds none.
  TicketKey() = default;
  ~TicketKey() { wipe(); }
  TicketKey(const TicketKey&) = default;
  TicketKey(TicketKey&&) noexcept = default;
  TicketKey& operator=(const TicketKey& other);
  TicketKey& operator=(TicketKey&& other) noexcept;

  std::array<unsigned char, kNameSize> name{};
  std::vector<unsigned char> hmacSecret;  // 32 bytes (80-byte file) or 16 (48-byte file)
  std::vector<unsigned char> aesKey;      // 32 bytes: AES-256-CBC; 16 bytes: AES-128-CBC

 private:
  void wipe() noexcept;
};

class TicketKeys {
 public:
  // Parses every file, in order. Throws TlsError naming the file, e.g.
  // "tls.ticket_keys tickets/current.key: 79 bytes, expected 80 or 48 (generate one with:
  // openssl rand 80 > tickets/current.key)".
  static TicketKeys parse(const std::vector<MaterialFile>& files);

  const std::vector<TicketKey>& keys() const { return keys_; }
  bool empty() const { return keys_.empty(); }
  // The key whose name is `name`, or null; `index` gets its position (0 = the encrypting key).
  const TicketKey* find(const unsigned char* name, std::size_t& index) const;

 private:
  std::vector<TicketKey> keys_;
};

// Makes `ctx` encrypt tickets with keys->keys().front() and decrypt with any of them
// (SSL_CTX_set_tlsext_ticket_key_evp_cb). `keys` must be non-empty and outlive `ctx`.
// Returns false for null or empty `keys`, and when OpenSSL refuses the callback (its error queue
// says why).
[[nodiscard]] bool installTicketKeys(SSL_CTX* ctx, const TicketKeys* keys);

}  // namespace certrelay::tls
