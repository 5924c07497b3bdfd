#include "proxy/smtp/received_header.h"

#include <cstdint>
#include <cstdio>
#include <string_view>
#include <utility>

#include "common/text.h"

namespace certrelay::smtp {

namespace {

constexpr std::size_t kMaxText = text::kMaxText;  // CN, issuer, identity, HELO, hostname, id
constexpr std::size_t kMaxToken = 64;             // digest name, address
constexpr std::size_t kMaxFingerprint = 128;      // hex digits: 64 bytes (SHA-512) at most
constexpr std::size_t kMaxLine = 998;             // RFC 5322 section 2.1.1, CR LF excluded
constexpr std::string_view kCrlf = "\r\n";

bool printableAscii(unsigned char c) {
  return c >= 0x20 && c < 0x7f;
}

bool holdsNul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

// The verified client name, or "unknown".
std::string nameText(std::string_view name) {
  std::string text = holdsNul(name) ? std::string() : text::sanitizeToken(name, kMaxText);
  return text.empty() ? std::string("unknown") : text;
}

// Without a usable HELO name Postfix writes the client name in its place.
std::string heloText(std::string_view helo, std::string_view name) {
  if (helo.empty() || holdsNul(helo)) {
    return nameText(name);
  }
  return text::sanitizeToken(helo, kMaxText);
}

// "[192.0.2.1]" or "[IPv6:2001:db8::1]"; an IPv4-mapped address as its IPv4 address.
std::string addressLiteral(std::string_view addr) {
  if (addr.empty()) {
    return "[unknown]";
  }
  static constexpr std::string_view kMapped = "::ffff:";
  if (addr.size() > kMapped.size() && addr.find('.') != std::string_view::npos &&
      text::equalsIgnoreCase(addr.substr(0, kMapped.size()), kMapped)) {
    addr.remove_prefix(kMapped.size());
  }
  const std::string literal = text::sanitizeToken(addr, kMaxToken);
  if (literal.find(':') != std::string::npos) {
    return "[IPv6:" + literal + "]";
  }
  return "[" + literal + "]";
}

// CN or issuer: absent, or holding a NUL (a forged name trying to end early), is "".
std::string certName(std::string_view name) {
  return holdsNul(name) ? std::string() : text::sanitizeComment(name);
}

// "AB:CD:..." from "ABCD..." (a-f accepted and upper-cased), at most kMaxFingerprint digits.
std::string colonFingerprint(std::string_view hex) {
  return text::withColons(hex.substr(0, kMaxFingerprint));
}

// Recipient path for the "for" clause: no control bytes; 8-bit only in an SMTPUTF8 message.
std::string recipientText(std::string_view rcpt, bool utf8) {
  std::string out;
  out.reserve(rcpt.size());
  for (char c : rcpt) {
    const auto u = static_cast<unsigned char>(c);
    const bool ok = printableAscii(u) || (utf8 && u >= 0x80);
    out.push_back(ok ? c : '?');
  }
  return out;
}

class HeaderWriter {
 public:
  void line(std::string text) {
    // Every field is cut above, so this cannot trigger; it keeps the promise if that changes.
    if (text.size() > kMaxLine) {
      text.resize(kMaxLine);
    }
    out_ += text;
    out_ += kCrlf;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

void writeTls(const ReceivedInfo& info, HeaderWriter& w) {
  // The words are tls::describeTlsParts()'s (the log line's too); only the line breaks are ours.
  const tls::TlsDescription parts = tls::describeTlsParts(info.tlsSummary);
  std::string current = "\t(using " + parts.cipher;
  bool continued = false;  // `current` is a details line that may take the server signature
  if (!parts.keyExchange.empty()) {
    w.line(std::move(current));
    current = "\t " + parts.keyExchange;
    continued = true;
  }
  if (!parts.serverSignature.empty()) {
    if (continued) {
      current += " " + parts.serverSignature;
    } else {
      w.line(std::move(current));
      current = "\t " + parts.serverSignature;
    }
  }
  if (!parts.clientSignature.empty()) {
    w.line(std::move(current));
    current = "\t " + parts.clientSignature;
  }
  w.line(current + ")");

  if (!info.hasCertificate) {
    w.line("\t(Client did not present a certificate)");
    return;
  }
  w.line("\t(Client CN \"" + certName(info.subjectCn) + "\", Issuer \"" + certName(info.issuerCn) +
         "\" (" + (info.verified ? "verified OK" : "not verified") + "))");
  if (!info.certFingerprint.empty()) {
    std::string line = "\t(Client fingerprint " + text::sanitizeToken(info.digestName, kMaxToken) +
                       " " + colonFingerprint(info.certFingerprint);
    const std::string identity = text::sanitizeComment(info.identity);
    if (info.trusted && !identity.empty()) {
      line += ", identity \"" + identity + "\"";
    }
    w.line(line + ")");
  }
}

}  // namespace

std::string receivedProtocol(bool esmtp, bool utf8, bool tls, bool trusted) {
  if (!esmtp) {
    return "SMTP";  // RFC 3848 defines the S and A suffixes for ESMTP only
  }
  std::string protocol = utf8 ? "UTF8SMTP" : "ESMTP";
  if (tls) {
    protocol += 'S';
  }
  if (trusted) {
    protocol += 'A';
  }
  return protocol;
}

std::string rfc5322Date(std::time_t when) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto t = static_cast<std::int64_t>(when);
  std::int64_t days = t / 86400;
  std::int64_t seconds = t % 86400;
  if (seconds < 0) {  // floor division for times before 1970
    seconds += 86400;
    --days;
  }
  // 1970-01-01 was a Thursday.
  const auto weekday = static_cast<int>(((days % 7) + 7 + 4) % 7);

  // Days to civil date (proleptic Gregorian; H. Hinnant's days_from_civil inverse).
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;                                       // [0, 146096]
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const std::int64_t mp = (5 * doy + 2) / 153;                                     // [0, 11]
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;                           // [1, 31]
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;                            // [1, 12]
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);

  // Day space-padded like Postfix's mail_date (%e); year at least four digits.
  char text[80];
  std::snprintf(text, sizeof text, "%s, %2d %s %04lld %02d:%02d:%02d +0000 (UTC)", kDays[weekday],
                static_cast<int>(day), kMonths[month - 1], static_cast<long long>(year),
                static_cast<int>(seconds / 3600), static_cast<int>(seconds / 60 % 60),
                static_cast<int>(seconds % 60));
  return text;
}

std::string buildReceivedHeader(const ReceivedInfo& info) {
  HeaderWriter w;
  w.line("Received: from " + heloText(info.helo, info.clientName) + " (" +
         nameText(info.clientName) + " " + addressLiteral(info.clientAddr) + ")");
  if (info.tls) {
    writeTls(info, w);
  }

  std::string hostname = text::sanitizeToken(info.hostname, kMaxText);
  if (hostname.empty()) {
    hostname = "unknown";
  }
  std::string by = "\tby " + hostname + " (certrelay) with " +
                   receivedProtocol(info.esmtp, info.utf8, info.tls, info.trusted);
  const std::string id = text::sanitizeToken(info.id, kMaxText);
  if (!id.empty()) {
    by += " id " + id;
  }
  const std::string date = rfc5322Date(info.when);
  const std::string rcpt = recipientText(info.singleRecipient, info.utf8);
  const std::string forLine = "\tfor " + rcpt + "; " + date;
  if (!rcpt.empty() && forLine.size() <= kMaxLine) {
    w.line(std::move(by));
    w.line(forLine);
  } else {
    w.line(by + ";");
    w.line("\t" + date);
  }
  return w.take();
}

}  // namespace certrelay::smtp
