// Extracts what the handshake told us about the client. Runs once per handshake, so it avoids
// per-call algorithm fetches (OpenSSL 3.0's implicit EVP_sha256() fetch is a measurable cost).

#include "tls/peer_facts.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "common/text.h"
#include "tls/internal.h"

namespace certrelay::tls {

namespace {

std::size_t digestIndex(config::FingerprintDigest digest) {
  switch (digest) {
    case config::FingerprintDigest::Sha1:
      return 1;
    case config::FingerprintDigest::Md5:
      return 2;
    case config::FingerprintDigest::Sha256:
      break;
  }
  return 0;
}

const EVP_MD* fetchDigest(const char* name, const EVP_MD* legacy) {
  const EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  if (md == nullptr) {
    ERR_clear_error();  // the failed fetch must not be blamed on a later OpenSSL call
    return legacy;
  }
  return md;
}

// The first CN of `name` (as Postfix's tls_text_name()), as sanitized text. "" when there is no
// CN, it cannot be converted to UTF-8, or it holds an embedded NUL (CVE-2009-2408 class: C
// string handling elsewhere would see a different name than the certificate carries).
std::string commonName(const X509_NAME* name) {
  if (name == nullptr) {
    return {};
  }
  const int pos = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (pos < 0) {
    return {};
  }
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos));
  if (value == nullptr) {
    return {};
  }
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, value);
  if (len < 0 || utf8 == nullptr) {
    return {};
  }
  std::string_view cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
  // Trailing NULs are padding some encoders add (Postfix strips them too); inner ones are not.
  while (!cn.empty() && cn.back() == '\0') {
    cn.remove_suffix(1);
  }
  std::string result;
  if (cn.find('\0') == std::string_view::npos) {
    result = text::sanitizeComment(cn);
  }
  OPENSSL_free(utf8);
  return result;
}

// "X25519", "P-256", "ffdhe2048": the names Postfix logs ("key-exchange X25519"). Works for
// TLS 1.3 and TLS 1.2 (EC)DHE; an abbreviated TLS 1.2 handshake reports the group of the
// session's original key exchange (OpenSSL keeps it in the session). "" when there is none.
std::string groupName(SSL* ssl) {
  const int nid = SSL_get_negotiated_group(ssl);
  if (nid <= 0) {
    return {};
  }
  if ((nid & TLSEXT_nid_unknown) == 0) {
    if (const char* nist = EC_curve_nid2nist(nid); nist != nullptr) {
      return nist;
    }
    if (const char* sn = OBJ_nid2sn(nid); sn != nullptr && *sn != '\0') {
      return sn;
    }
  }
  // A group without a NID (e.g. from a provider): OpenSSL's own TLS name for it.
  const char* tlsName = SSL_group_to_name(ssl, nid);
  return tlsName != nullptr ? text::sanitizeComment(tlsName) : std::string();
}

// Postfix's name for a TLS 1.3 signer and the size or curve of its key, after
// tls_get_signature_params(): the name comes from the key type, not from the negotiated
// SignatureScheme. An RSA key is "RSA-PSS" (TLS 1.3 allows only PSS for it) with "<n> bits", an
// EC key "ECDSA" with its group name, anything else the OpenSSL short name of its key type
// ("ED25519", "ED448") without detail. Both stay empty for an unknown key.
void describeSigner(const EVP_PKEY* pkey, std::string& name, std::string& detail) {
  if (pkey == nullptr) {
    return;
  }
  const int id = EVP_PKEY_get_id(pkey);
  switch (id) {
    case NID_undef:
      return;
    case EVP_PKEY_KEYMGMT: {
      // A key type only a provider knows: it has no NID, only the provider's name for it.
      const char* type = EVP_PKEY_get0_type_name(pkey);
      if (type != nullptr) {
        name = text::sanitizeComment(type);
      }
      return;
    }
    case EVP_PKEY_RSA: {
      name = "RSA-PSS";
      if (const int bits = EVP_PKEY_get_bits(pkey); bits > 0) {
        detail = std::to_string(bits) + " bits";
      }
      return;
    }
    case EVP_PKEY_EC: {
      name = "ECDSA";
      // OpenSSL's group name ("prime256v1", "secp384r1"): Postfix built with OpenSSL 3 asks
      // EVP_PKEY_get_group_name() too (protocol.md 3.2 shows "ECDSA (prime256v1)"), not the
      // NIST alias "P-256". Fails for explicit curve parameters: then no detail, as in Postfix.
      char group[80];
      if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), nullptr) == 1) {
        detail = text::sanitizeComment(group);
      } else {
        ERR_clear_error();
      }
      return;
    }
    default:
      break;
  }
  if (const int type = EVP_PKEY_type(id); type != NID_undef) {
    if (const char* sn = OBJ_nid2sn(type); sn != nullptr) {
      name = text::sanitizeComment(sn);
    }
  }
}

// The hash of a signature scheme, as returned by SSL_get_signature_nid() or
// SSL_get_peer_signature_nid(): "SHA256". "" when there is none: EdDSA schemes report
// NID_undef, and the call fails when no signature was made in this handshake.
std::string signatureDigest(long ok, int nid) {
  if (ok != 1 || nid == NID_undef) {
    return {};
  }
  const char* sn = OBJ_nid2sn(nid);
  return sn != nullptr ? text::sanitizeComment(sn) : std::string();
}

// The server-signature and client-signature facts (TlsSummary), only for a full TLS 1.3
// handshake, as Postfix's tls_get_signature_params().
void collectSignatureFacts(SSL* ssl, TlsSummary& summary) {
  if (SSL_version(ssl) < TLS1_3_VERSION || summary.resumed) {
    // TLS 1.2 names the signature in the cipher suite; a resumed session signs nothing.
    return;
  }
  // Our signature: the key the SSL signed CertificateVerify with (the context has one).
  describeSigner(SSL_get_privatekey(ssl), summary.serverSignature, summary.serverSignatureDetail);
  if (!summary.serverSignature.empty()) {
    int nid = NID_undef;
    const long ok = SSL_get_signature_nid(ssl, &nid);  // before `nid` is read
    summary.serverDigest = signatureDigest(ok, nid);
  }
  // The client's: a full TLS 1.3 handshake with a certificate always carries its
  // CertificateVerify (OpenSSL fails the handshake otherwise).
  if (X509* cert = SSL_get0_peer_certificate(ssl); cert != nullptr) {
    describeSigner(X509_get0_pubkey(cert), summary.clientSignature, summary.clientSignatureDetail);
    if (!summary.clientSignature.empty()) {
      int nid = NID_undef;
      const long ok = SSL_get_peer_signature_nid(ssl, &nid);
      summary.clientDigest = signatureDigest(ok, nid);
    }
  }
  ERR_clear_error();  // a failed key query must not be blamed on the next SSL call
}

}  // namespace

int fingerprintDigestIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

void* digestSlotValue(config::FingerprintDigest digest) {
  static config::FingerprintDigest values[] = {config::FingerprintDigest::Sha256,
                                               config::FingerprintDigest::Sha1,
                                               config::FingerprintDigest::Md5};
  return &values[digestIndex(digest)];
}

const char* digestName(config::FingerprintDigest digest) {
  static constexpr const char* kNames[] = {"SHA256", "SHA1", "MD5"};
  return kNames[digestIndex(digest)];
}

const EVP_MD* fingerprintMd(config::FingerprintDigest digest) {
  // All three are fetched on first use and live as long as the default provider. A failed fetch
  // (MD5 under a FIPS-only provider) leaves the legacy handle, which then fails at use: that is
  // what Context::create tests and reports.
  static const EVP_MD* const mds[] = {
      fetchDigest("SHA2-256", EVP_sha256()),
      fetchDigest("SHA1", EVP_sha1()),
      fetchDigest("MD5", EVP_md5()),
  };
  return mds[digestIndex(digest)];
}

PeerFacts collectPeerFacts(SSL* ssl) {
  PeerFacts facts;
  if (ssl == nullptr) {
    return facts;
  }
  TlsSummary& summary = facts.summary;
  summary.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl); cipher != nullptr) {
    summary.cipher = SSL_CIPHER_get_name(cipher);
    summary.cipherBits = SSL_CIPHER_get_bits(cipher, &summary.cipherAlgBits);
  }
  summary.group = groupName(ssl);
  summary.resumed = SSL_session_reused(ssl) == 1;
  const auto* slot = static_cast<const config::FingerprintDigest*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), fingerprintDigestIndex()));
  const config::FingerprintDigest digest =
      slot != nullptr ? *slot : config::FingerprintDigest::Sha256;
  facts.digestName = digestName(digest);
  collectSignatureFacts(ssl, summary);

  // On a resumed session this is the certificate stored in the session (the client does not
  // send it again), so the facts of a resumed connection are as complete as the original's.
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) {
    return facts;
  }
  facts.hasCertificate = true;
  facts.subjectCn = commonName(X509_get_subject_name(cert));
  facts.issuerCn = commonName(X509_get_issuer_name(cert));
  // Without a client CA the trust store is empty and nothing can verify; checking the marker
  // keeps that true even if OpenSSL's defaults ever load system roots into the store.
  const bool haveClientCa =
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), clientCaMarkerIndex()) != nullptr;
  facts.verified = haveClientCa && SSL_get_verify_result(ssl) == X509_V_OK;
  facts.certFingerprint = certificateFingerprint(cert, digest);
  facts.pkeyFingerprint = publicKeyFingerprint(cert, digest);
  return facts;
}

std::string certificateFingerprint(X509* cert) {
  return certificateFingerprint(cert, config::FingerprintDigest::Sha256);
}

std::string certificateFingerprint(X509* cert, config::FingerprintDigest digest) {
  if (cert == nullptr) {
    return {};
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, fingerprintMd(digest), md, &len) != 1) {
    ERR_clear_error();
    return {};
  }
  return text::upperHex(std::span<const unsigned char>(md, len));
}

std::string publicKeyFingerprint(X509* cert) {
  return publicKeyFingerprint(cert, config::FingerprintDigest::Sha256);
}

std::string publicKeyFingerprint(X509* cert, config::FingerprintDigest digest) {
  if (cert == nullptr) {
    return {};
  }
  // The digest of the DER SubjectPublicKeyInfo, as Postfix's pkey_fingerprint. Not
  // X509_pubkey_digest(): that hashes only the BIT STRING contents and matches nothing Postfix
  // prints (protocol.md 4.5).
  //
  // Postfix encodes with i2d_PUBKEY(X509_get0_pubkey(cert)). In OpenSSL 3.0 that runs the
  // provider encoder machinery and costs ~130 us per call (measured), a sizeable share of a
  // ~600-900 us handshake. i2d_X509_PUBKEY() re-serialises the SubjectPublicKeyInfo already
  // parsed from the certificate (< 1 us) and yields the same bytes; the tests check both
  // encodings and the openssl CLI against each other for EC (plain and compressed points), RSA
  // and Ed25519 keys.
  const X509_PUBKEY* spki = X509_get_X509_PUBKEY(cert);
  if (spki == nullptr) {
    ERR_clear_error();
    return {};
  }
  unsigned char* der = nullptr;
  const int derLen = i2d_X509_PUBKEY(spki, &der);
  if (derLen <= 0 || der == nullptr) {
    ERR_clear_error();
    return {};
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const int ok =
      EVP_Digest(der, static_cast<std::size_t>(derLen), md, &len, fingerprintMd(digest), nullptr);
  OPENSSL_free(der);
  if (ok != 1) {
    ERR_clear_error();
    return {};
  }
  return text::upperHex(std::span<const unsigned char>(md, len));
}

}  // namespace certrelay::tls
