#include "tls/tls_summary.h"

#include "common/text.h"

namespace certrelay::tls {

namespace {

// Longest name kept: far above any real TLS name, short enough that the header's longest line
// stays well inside 998 octets.
constexpr std::size_t kMaxName = 64;

std::string name(std::string_view raw) {
  return text::sanitizeToken(raw, kMaxName);
}

// "<label> <name>[ (<detail>)][ <digestLabel> <digest>]", or "" without a name.
std::string signaturePiece(std::string_view label, std::string_view signature,
                           std::string_view detail, std::string_view digestLabel,
                           std::string_view digest) {
  if (signature.empty()) {
    return {};
  }
  std::string out(label);
  out += ' ';
  out += name(signature);
  if (!detail.empty()) {
    // "prime256v1" or "2048 bits": a comment, spaces belong there.
    out += " (" + text::sanitizeComment(detail, kMaxName) + ")";
  }
  if (!digest.empty()) {
    out += ' ';
    out += digestLabel;
    out += ' ';
    out += name(digest);
  }
  return out;
}

}  // namespace

bool carriesTls13Details(std::string_view version) {
  return version != "SSLv2" && version != "SSLv3" && version != "TLSv1" && version != "TLSv1.1" &&
         version != "TLSv1.2";
}

TlsDescription describeTlsParts(const TlsSummary& summary) {
  TlsDescription parts;
  parts.cipher = name(summary.version) + " with cipher " + name(summary.cipher) + " (" +
                 std::to_string(summary.cipherBits) + "/" + std::to_string(summary.cipherAlgBits) +
                 " bits)";
  if (!carriesTls13Details(summary.version)) {
    return parts;
  }
  if (!summary.group.empty()) {
    parts.keyExchange = "key-exchange " + name(summary.group);
  }
  parts.serverSignature =
      signaturePiece("server-signature", summary.serverSignature, summary.serverSignatureDetail,
                     "server-digest", summary.serverDigest);
  parts.clientSignature =
      signaturePiece("client-signature", summary.clientSignature, summary.clientSignatureDetail,
                     "client-digest", summary.clientDigest);
  return parts;
}

std::string describeTls(const TlsSummary& summary) {
  const TlsDescription parts = describeTlsParts(summary);
  std::string out = parts.cipher;
  for (const std::string* piece :
       {&parts.keyExchange, &parts.serverSignature, &parts.clientSignature}) {
    if (!piece->empty()) {
      out += ' ';
      out += *piece;
    }
  }
  return out;
}

}  // namespace certrelay::tls
