#include "tls/handshake_log.h"

#include "common/text.h"
#include "tls/tls_summary.h"

namespace certrelay::tls {

const char* trustWord(const PeerFacts& facts) {
  if (!facts.hasCertificate) {
    return "Anonymous";
  }
  return facts.verified ? "Trusted" : "Untrusted";
}

std::string tlsEstablishedLogLine(std::string_view clientName, const PeerFacts& facts) {
  std::string line = trustWord(facts);
  line += " TLS connection established from ";
  line += clientName;
  line += ": ";
  line += describeTls(facts.summary);
  if (facts.summary.resumed) {
    line += " (resumed)";
  }
  return line;
}

std::string peerCertificateLogLine(std::string_view clientName, const PeerFacts& facts,
                                   const std::optional<std::string>& relayIdentity) {
  std::string line(clientName);
  line += ": subject_CN=" + facts.subjectCn + ", issuer=" + facts.issuerCn +
          ", cert fingerprint=" + text::withColons(facts.certFingerprint) +
          ", pkey fingerprint=" + text::withColons(facts.pkeyFingerprint);
  line += relayIdentity ? ", relay identity=" + *relayIdentity : ", not listed for relay";
  return line;
}

}  // namespace certrelay::tls
