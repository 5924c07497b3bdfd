// Session-ticket keys from files and the OpenSSL callback that uses them. See ticket_keys.h for
// the file formats and the security role.

#include "tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "tls/context.h"

namespace certrelay::tls {

namespace {

// File sizes and the layout of each, as nginx reads them (ngx_ssl_session_ticket_keys; Envoy
// reads 80-byte files the same way): the 80-byte layout puts the HMAC secret before the AES key,
// the 48-byte one the AES key before the HMAC secret. Keeping that order means a key file made
// for (or with the tools of) those servers means the same here.
constexpr std::size_t kLongFileSize = 80;   // name, HMAC-SHA256 secret (32), AES-256 key (32)
constexpr std::size_t kShortFileSize = 48;  // name, AES-128 key (16), HMAC-SHA256 secret (16)
constexpr std::size_t kLongSecretSize = 32;
constexpr std::size_t kShortSecretSize = 16;

TicketKey keyFromFile(const MaterialFile& file) {
  const std::size_t size = file.content.size();
  if (size != kLongFileSize && size != kShortFileSize) {
    // The size and the file name only: never any of the bytes.
    throw TlsError("tls.ticket_keys " + file.name + ": " + std::to_string(size) +
                   " bytes, expected 80 or 48 (generate one with: openssl rand 80 > " + file.name +
                   ")");
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(file.content.data());
  const unsigned char* secrets = bytes + TicketKey::kNameSize;
  TicketKey key;
  std::copy(bytes, secrets, key.name.begin());
  if (size == kLongFileSize) {
    key.hmacSecret.assign(secrets, secrets + kLongSecretSize);
    key.aesKey.assign(secrets + kLongSecretSize, secrets + 2 * kLongSecretSize);
  } else {
    key.aesKey.assign(secrets, secrets + kShortSecretSize);
    key.hmacSecret.assign(secrets + kShortSecretSize, secrets + 2 * kShortSecretSize);
  }
  return key;
}

// The SSL_CTX ex_data slot holding the const TicketKeys* the callback reads. Allocated once per
// process; each context stores its own pointer.
int ticketKeysIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// AES-256-CBC for a 32-byte key, AES-128-CBC for a 16-byte one (parse() makes no other size).
const EVP_CIPHER* cipherFor(const TicketKey& key) {
  return key.aesKey.size() == kLongSecretSize ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
}

// HMAC-SHA256 keyed with the key's secret. OpenSSL's HMAC implementation starts over with the
// new key as soon as it is set, so no separate EVP_MAC_init is needed (the documented use).
bool setHmacKey(EVP_MAC_CTX* hmac, const TicketKey& key) {
  char digest[] = "SHA256";  // OSSL_PARAM wants a non-const pointer; it is only read
  auto* secret = const_cast<unsigned char*>(key.hmacSecret.data());
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, secret, key.hmacSecret.size()),
      OSSL_PARAM_construct_end(),
  };
  return EVP_MAC_CTX_set_params(hmac, params) == 1;
}

// A new ticket: always under the first key, with a fresh IV. -1 makes OpenSSL fail the
// handshake rather than issue a ticket it could not protect properly.
int encryptWith(const TicketKey& key, unsigned char* name, unsigned char* iv,
                EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* hmac) {
  const EVP_CIPHER* algorithm = cipherFor(key);
  const int ivLength = EVP_CIPHER_get_iv_length(algorithm);
  if (ivLength <= 0 || ivLength > EVP_MAX_IV_LENGTH || RAND_bytes(iv, ivLength) != 1) {
    return -1;
  }
  if (EVP_EncryptInit_ex(cipher, algorithm, nullptr, key.aesKey.data(), iv) != 1 ||
      !setHmacKey(hmac, key)) {
    return -1;
  }
  std::memcpy(name, key.name.data(), TicketKey::kNameSize);
  return 1;
}

// A ticket the client presents. Unknown name: 0, OpenSSL runs a full handshake and issues a new
// ticket (keys were rotated out, or another deployment's ticket: not an error). A key other
// than the first: 2, the session resumes and OpenSSL renews the ticket under the first key, so
// that clients move off a key before it is removed.
int decryptWith(const TicketKeys& keys, const unsigned char* name, const unsigned char* iv,
                EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* hmac) {
  std::size_t index = 0;
  const TicketKey* key = keys.find(name, index);
  if (key == nullptr) {
    return 0;
  }
  if (!setHmacKey(hmac, *key) ||
      EVP_DecryptInit_ex(cipher, cipherFor(*key), nullptr, key->aesKey.data(), iv) != 1) {
    return -1;
  }
  return index == 0 ? 1 : 2;
}

int ticketKeyCallback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* hmac, int enc) {
  // OpenSSL calls the session context's callback; certrelay never switches an SSL's context
  // (no SNI callback), so SSL_get_SSL_CTX is that context.
  const auto* keys =
      static_cast<const TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticketKeysIndex()));
  if (keys == nullptr || keys->empty()) {
    return -1;  // installTicketKeys refuses this; never guess a key
  }
  if (enc == 1) {
    return encryptWith(keys->keys().front(), name, iv, cipher, hmac);
  }
  return decryptWith(*keys, name, iv, cipher, hmac);
}

}  // namespace

void TicketKey::wipe() noexcept {
  OPENSSL_cleanse(name.data(), name.size());
  if (!hmacSecret.empty()) {
    OPENSSL_cleanse(hmacSecret.data(), hmacSecret.size());
  }
  if (!aesKey.empty()) {
    OPENSSL_cleanse(aesKey.data(), aesKey.size());
  }
}

// Assigning over a key frees (or reuses) its buffers: they are wiped first so that no secret
// outlives its key in freed memory.
TicketKey& TicketKey::operator=(const TicketKey& other) {
  if (this != &other) {
    wipe();
    name = other.name;
    hmacSecret = other.hmacSecret;
    aesKey = other.aesKey;
  }
  return *this;
}

TicketKey& TicketKey::operator=(TicketKey&& other) noexcept {
  if (this != &other) {
    wipe();
    name = other.name;
    hmacSecret = std::move(other.hmacSecret);
    aesKey = std::move(other.aesKey);
    other.wipe();  // the name stays behind in `other`; the secrets moved with their buffers
  }
  return *this;
}

TicketKeys TicketKeys::parse(const std::vector<MaterialFile>& files) {
  TicketKeys result;
  result.keys_.reserve(files.size());
  for (const MaterialFile& file : files) {
    result.keys_.push_back(keyFromFile(file));
  }
  return result;
}

const TicketKey* TicketKeys::find(const unsigned char* name, std::size_t& index) const {
  // Key names travel in clear in every ticket: a plain comparison leaks nothing.
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (std::memcmp(keys_[i].name.data(), name, TicketKey::kNameSize) == 0) {
      index = i;
      return &keys_[i];
    }
  }
  return nullptr;
}

bool installTicketKeys(SSL_CTX* ctx, const TicketKeys* keys) {
  if (keys == nullptr || keys->empty()) {
    return false;  // nothing could encrypt a ticket; the caller keeps OpenSSL's own keys
  }
  // The callback reads the pointer as const; ex_data stores void*.
  if (SSL_CTX_set_ex_data(ctx, ticketKeysIndex(), const_cast<TicketKeys*>(keys)) != 1 ||
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticketKeyCallback) != 1) {
    return false;
  }
  // Keys from files exist to share stateless tickets (between replicas, across restarts), so a
  // context given them issues tickets whatever tls.session_tickets said.
  SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
  return true;
}

}  // namespace certrelay::tls
