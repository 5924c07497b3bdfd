#pragma once
// OpenSSL version-specific workarounds, kept in one place (style.md: no #ifdef soup elsewhere).

namespace certrelay::tls {

// OpenSSL 3.0 decodes every certificate's public key through a freshly built provider decoder
// context (OSSL_DECODER), about a fifth of the instructions of a full handshake with a client
// certificate (callgrind: 4.99M -> 3.96M per certrelay session). Registering an ENGINE that
// offers OpenSSL's own built-in EC method makes X509_PUBKEY decoding take its direct legacy
// path for EC keys instead. Signatures are still computed and checked by OpenSSL's EC code; the
// ENGINE API is deprecated in 3.0 but present. Process-wide and idempotent. Returns false when
// it could not be installed (nothing changes then). Config: tls.fast_ec_key_decoding, on by
// default. Its one side effect seen in the tests: afterwards, generating a new EC key through
// EVP_PKEY_keygen on an "EC" context fails. certrelay generates no such keys (TLS's own ECDHE
// shares take another path and work over every group: tests/unit/tls/compat_test.cpp); other
// code sharing the process might, and would need the option turned off.
bool installFastEcKeyDecoding();

}  // namespace certrelay::tls
