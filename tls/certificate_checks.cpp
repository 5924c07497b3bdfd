// Certificates and keys from memory, and the checks a generation must pass. See
// certificate_checks.h.

#include "tls/certificate_checks.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <climits>
#include <string_view>

#include "common/text.h"
#include "tls/context.h"
#include "tls/internal.h"

namespace certrelay::tls {

namespace {

// A key file with a passphrase must fail to load, not block the process on a terminal prompt
// (OpenSSL's default password callback reads from the tty).
int refusePassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) {
  return 0;
}

BioPtr memoryBio(const MaterialFile& file, const char* setting) {
  if (file.content.size() > static_cast<std::size_t>(INT_MAX)) {
    throw TlsError(std::string(setting) + " " + file.name + ": file too large");
  }
  BioPtr bio(BIO_new_mem_buf(file.content.data(), static_cast<int>(file.content.size())));
  if (!bio) {
    throwTlsError(std::string(setting) + " " + file.name);
  }
  return bio;
}

// True when the last error says "no further PEM block": how a read loop ends at the file's end.
bool endOfPem() {
  const unsigned long last = ERR_peek_last_error();
  return ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
}

// Both PEM forms of an encrypted key: PKCS#8 ("ENCRYPTED PRIVATE KEY") and the traditional
// OpenSSL form ("Proc-Type: 4,ENCRYPTED" header inside "RSA/EC PRIVATE KEY").
bool looksEncrypted(std::string_view pem) {
  return pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string_view::npos ||
         pem.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos;
}

[[noreturn]] void throwEncrypted(const MaterialFile& file, const char* setting) {
  ERR_clear_error();  // OpenSSL's lines would only say that decoding failed
  throw TlsError(std::string(setting) + " " + file.name +
                 ": the private key is encrypted; certrelay needs it unencrypted (it reads keys "
                 "without a passphrase)");
}

EvpPkeyPtr readPrivateKey(const MaterialFile& file, const char* setting) {
  if (looksEncrypted(file.content)) {
    throwEncrypted(file, setting);
  }
  BioPtr bio = memoryBio(file, setting);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refusePassphrase, nullptr));
  if (key) {
    ERR_clear_error();  // decoders that were tried and did not match leave entries behind
    return key;
  }
  const unsigned long last = ERR_peek_last_error();
  if (ERR_GET_LIB(last) == ERR_LIB_PEM && (ERR_GET_REASON(last) == PEM_R_BAD_PASSWORD_READ ||
                                           ERR_GET_REASON(last) == PEM_R_BAD_DECRYPT)) {
    throwEncrypted(
        file, setting);  // a form the text check does not know, but OpenSSL asked for a password
  }
  if (file.content.find("PRIVATE KEY-----") == std::string::npos) {
    ERR_clear_error();
    throw TlsError(std::string(setting) + " " + file.name +
                   ": holds no private key (expected PEM \"-----BEGIN PRIVATE KEY-----\")");
  }
  throwTlsError(std::string(setting) + " " + file.name + ": the private key cannot be read");
}

// Each certificate must be issued by the next one: OpenSSL sends the file's order as it is, and
// a client that cannot build the path from it fails the handshake, far from the cause.
void checkChainOrder(const std::vector<X509Ptr>& certs, const char* setting,
                     const std::string& certName) {
  for (std::size_t i = 0; i + 1 < certs.size(); ++i) {
    if (X509_check_issued(certs[i + 1].get(), certs[i].get()) != X509_V_OK) {
      ERR_clear_error();
      throw TlsError(std::string(setting) + " " + certName + ": certificate " +
                     std::to_string(i + 2) + " (" + subjectText(certs[i + 1].get()) +
                     ") did not issue certificate " + std::to_string(i + 1) + " (" +
                     subjectText(certs[i].get()) + "); put the leaf first, then its issuer");
    }
  }
}

bool toTime(const ASN1_TIME* asn1, std::time_t& out) {
  std::tm tm{};
  if (asn1 == nullptr || ASN1_TIME_to_tm(asn1, &tm) != 1) {
    return false;
  }
  out = timegm(&tm);
  return true;
}

// "in 3 days", "in 1 day", "in less than a day".
std::string remainingText(std::time_t seconds) {
  const std::time_t days = seconds / 86'400;
  if (days == 0) {
    return "in less than a day";
  }
  return "in " + std::to_string(days) + (days == 1 ? " day" : " days");
}

// The leaf must be valid now: an expired certificate fails every client that checks dates, and
// a notBefore in the future usually means a clock or issuance mistake.
std::time_t checkValidity(X509* leaf, const char* setting, const std::string& certName,
                          std::time_t now, std::vector<std::string>& warnings) {
  const std::string file = std::string(setting) + " " + certName;
  std::time_t notBefore = 0;
  std::time_t notAfter = 0;
  if (!toTime(X509_get0_notBefore(leaf), notBefore) ||
      !toTime(X509_get0_notAfter(leaf), notAfter)) {
    throwTlsError(file + ": the certificate's validity dates cannot be read");
  }
  if (notAfter < now) {
    throw TlsError(file + ": certificate expired on " + formatUtc(notAfter));
  }
  if (notBefore > now) {
    throw TlsError(file + ": certificate is not valid before " + formatUtc(notBefore));
  }
  if (notAfter - now < kExpiryWarningSeconds) {
    warnings.push_back(file + ": certificate expires " + remainingText(notAfter - now) + " (" +
                       formatUtc(notAfter) + ")");
  }
  return notAfter;
}

// "ECDSA P-256", "RSA 2048", "Ed25519".
std::string keyDescription(const EVP_PKEY* key) {
  std::string out = keyTypeName(key);
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_EC) {
    char group[80];
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), nullptr) == 1) {
      const char* nist = EC_curve_nid2nist(OBJ_sn2nid(group));
      out += ' ';
      out += text::sanitizeToken(nist != nullptr ? nist : group);
    }
    ERR_clear_error();
  } else if (type == EVP_PKEY_RSA || type == EVP_PKEY_RSA_PSS) {
    out += ' ' + std::to_string(EVP_PKEY_get_bits(key));
  }
  return out;
}

}  // namespace

void throwTlsError(const std::string& what) {
  const std::string reason = drainErrorQueue();
  throw TlsError(reason.empty() ? what : what + ": " + reason);
}

std::string formatUtc(std::time_t when, bool withTime) {
  std::tm tm{};
  if (gmtime_r(&when, &tm) == nullptr) {
    return "?";
  }
  char buf[32];
  const std::size_t n =
      std::strftime(buf, sizeof(buf), withTime ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d", &tm);
  return std::string(buf, n);
}

std::string subjectText(X509* cert) {
  const X509_NAME* name = X509_get_subject_name(cert);
  const int pos = name != nullptr ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
  if (pos < 0) {
    return "no CN";
  }
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos));
  unsigned char* utf8 = nullptr;
  const int len = value != nullptr ? ASN1_STRING_to_UTF8(&utf8, value) : -1;
  if (len < 0 || utf8 == nullptr) {
    ERR_clear_error();
    return "no CN";
  }
  // Our own files, but the text goes into logs: printable ASCII only.
  std::string out =
      "CN=" + text::sanitizePrintable(std::string_view(reinterpret_cast<const char*>(utf8),
                                                       static_cast<std::size_t>(len)));
  OPENSSL_free(utf8);
  return out;
}

std::string keyTypeName(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
      return "ECDSA";
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_RSA_PSS:
      return "RSA-PSS";
    case EVP_PKEY_ED25519:
      return "Ed25519";
    case EVP_PKEY_ED448:
      return "Ed448";
    default:
      break;
  }
  const char* name = EVP_PKEY_get0_type_name(key);
  return name != nullptr ? text::sanitizeToken(name) : "unknown key type";
}

std::string describeServerCertificate(const ServerCertificate& certificate) {
  return subjectText(certificate.leaf.get()) + " " + keyDescription(certificate.key.get()) +
         " not after " + formatUtc(certificate.notAfter, false);
}

std::vector<X509Ptr> readCertificates(const MaterialFile& file, const char* setting) {
  BioPtr bio = memoryBio(file, setting);
  std::vector<X509Ptr> certs;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, refusePassphrase, nullptr));
    if (!cert) {
      break;
    }
    certs.push_back(std::move(cert));
  }
  if (!endOfPem()) {
    // A truncated or corrupt block: a half-written file must not become a shorter chain.
    throwTlsError(std::string(setting) + " " + file.name + ": certificate " +
                  std::to_string(certs.size() + 1) + " cannot be read");
  }
  ERR_clear_error();
  if (certs.empty()) {
    throw TlsError(std::string(setting) + " " + file.name +
                   ": holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")");
  }
  return certs;
}

ServerCertificate loadServerCertificate(const Material::Pair& pair, std::time_t now,
                                        std::vector<std::string>& warnings, const char* certSetting,
                                        const char* keySetting) {
  ServerCertificate out;
  out.certName = pair.cert.name;
  out.keyName = pair.key.name;
  std::vector<X509Ptr> certs = readCertificates(pair.cert, certSetting);
  out.key = readPrivateKey(pair.key, keySetting);
  // Order first: a chain written issuer-first would otherwise be reported as a key mismatch.
  checkChainOrder(certs, certSetting, out.certName);
  if (X509_check_private_key(certs.front().get(), out.key.get()) != 1) {
    throwTlsError(std::string(keySetting) + " " + out.keyName + " does not match " + certSetting +
                  " " + out.certName);
  }
  out.notAfter = checkValidity(certs.front().get(), certSetting, out.certName, now, warnings);
  out.leaf = std::move(certs.front());
  out.chain.reserve(certs.size() - 1);
  for (std::size_t i = 1; i < certs.size(); ++i) {
    out.chain.push_back(std::move(certs[i]));
  }
  return out;
}

}  // namespace certrelay::tls
