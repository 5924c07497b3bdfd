// The ENGINE API is deprecated in OpenSSL 3.0; this file is the only user (see compat.h).
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "tls/compat.h"

#include <openssl/engine.h>
#include <openssl/evp.h>

#include <mutex>

namespace certrelay::tls {
namespace {

const int kEcOnly[] = {EVP_PKEY_EC};

int builtInEcMethod(ENGINE*, EVP_PKEY_METHOD** method, const int** nids, int nid) {
  if (method == nullptr) {
    *nids = kEcOnly;
    return 1;
  }
  *method =
      nid == EVP_PKEY_EC ? const_cast<EVP_PKEY_METHOD*>(EVP_PKEY_meth_find(EVP_PKEY_EC)) : nullptr;
  return *method != nullptr ? 1 : 0;
}

}  // namespace

bool installFastEcKeyDecoding() {
#ifdef OPENSSL_NO_ENGINE
  return false;
#else
  static std::once_flag once;
  static bool installed = false;
  std::call_once(once, [] {
    ENGINE* engine = ENGINE_new();
    if (engine == nullptr) {
      return;
    }
    // ENGINE_add keeps the engine in OpenSSL's list for the life of the process.
    installed = ENGINE_set_id(engine, "certrelay-ec") == 1 &&
                ENGINE_set_name(engine, "certrelay: OpenSSL built-in EC method") == 1 &&
                ENGINE_set_pkey_meths(engine, builtInEcMethod) == 1 && ENGINE_add(engine) == 1 &&
                ENGINE_register_pkey_meths(engine) == 1;
    ENGINE_free(engine);
  });
  return installed;
#endif
}

}  // namespace certrelay::tls
