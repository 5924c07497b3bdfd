#pragma once
// The Received header certrelay prepends to every message it relays (backend.received_header).
//
// Layout: Postfix's smtpd_tls_received_header (protocol.md section 3, smtpd.c), with one line
// Postfix does not write, the client certificate's fingerprint and the relay identity found for
// it. Continuation lines start with a TAB; every line ends with CR LF:
//
//   Received: from <helo> (<name> [<addr>])
//   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
//   	 key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
//   	 client-signature ECDSA (prime256v1) client-digest SHA256)
//   	(Client CN "<cn>", Issuer "<issuer cn>" (verified OK))
//   	(Client fingerprint SHA256 AB:CD:..., identity "<identity>")
//   	by <hostname> (certrelay) with ESMTPSA id <id>
//   	for <rcpt>; Fri, 20 Nov 2026 22:27:49 +0000 (UTC)
//
// Rules, as Postfix writes them:
//  * TLS lines only when TLS is active. The "(using ...)" comment is tls::describeTlsParts(), the
//    description the "TLS connection established" log line carries too, so the rule for which
//    TLS 1.3 details appear is that one rule (tls/tls_summary.h): key-exchange, server-signature
//    and client-signature each when known, independently of one another, none below TLS 1.3.
//    The header only lays the pieces out: the protocol and cipher stay on the "(using" line;
//    "key-exchange G" opens the next line and the server signature follows on it; without a
//    key exchange the server signature opens that line itself; the client signature always has
//    a line of its own. The ")" closes whatever line is last. With TLS 1.2 (or no details) the
//    "(using ...)" comment is one line.
//  * Certificate comment: "(Client CN "..", Issuer ".." (verified OK|not verified))", or
//    "(Client did not present a certificate)". certrelay always asks for one, so Postfix's
//    "(No client certificate requested)" never appears. A CN or issuer that is absent or holds a
//    NUL is written as "" (Postfix: peer_CN is "" then too).
//  * Fingerprint line (certrelay's own): only with a certificate and a non-empty fingerprint,
//    bytes as upper-case hex with ':' between them; ", identity "..."" only when `trusted` and the
//    identity is not empty.
//  * "with" per RFC 3848 / RFC 6531: receivedProtocol().
//  * One recipient: "by ... id X" then "for <rcpt>; <date>". Several (singleRecipient empty):
//    "by ... id X;" then "<date>". A recipient too long for a 998-octet line (only possible with
//    a raised max_line_length) is left out, as with several recipients. An empty id is left out
//    (" id X" disappears).
//
// Sanitising (nothing from the client or its certificate reaches the header unchanged):
//  * CN, issuer, identity: text::sanitizeComment: printable ASCII only; '\\', '"', '(', ')',
//    control bytes (CR, LF, TAB, DEL...) and every non-ASCII byte become '?' (so one UTF-8 'é'
//    becomes "??"); the first 255 bytes are kept (common/text.h's one length rule). (Postfix's
//    comment_sanitize() keeps balanced parentheses; inside our quoted strings any parenthesis is
//    replaced, which is simpler and just as safe.)
//  * HELO: the same, and also space, '<', '>', ';', '@' become '?' (Postfix's NEUTER_CHARACTERS
//    for the HELO name). Empty, or holding a NUL: the client name (Postfix's rule).
//  * Client name: the forward-confirmed name (dns.reverse_lookup), else "unknown"; a token like
//    the HELO name (it passed the host-name check already; sanitized all the same).
//  * Address, TLS names, digest name, hostname, id: the HELO rules (they are tokens); the TLS
//    names (tls::describeTlsParts; a signature detail keeps its spaces) and the digest name cut
//    to 64, address to 64, hostname and id to 255. An IPv4-mapped IPv6 address
//    ("::ffff:192.0.2.7") is written as the IPv4 address, as Postfix and the relay policy see
//    it; other IPv6 addresses as "IPv6:2001:db8::1".
//  * Fingerprint: a-f upper-cased, anything else but hex digits becomes '?', at most 128 digits.
//  * Recipient: control bytes become '?', non-ASCII bytes too unless `utf8` (RFC 6532 allows
//    UTF-8 in the header of an SMTPUTF8 message).
// With these limits no line can exceed 998 octets (the longest possible is the CN line, ~550),
// no bare CR or LF can appear, and the header always ends with CR LF.

#include <ctime>
#include <string>

#include "tls/tls_summary.h"

namespace certrelay::smtp {

struct ReceivedInfo {
  std::string helo;        // client's HELO/EHLO argument, raw (sanitized here)
  std::string clientAddr;  // "192.0.2.1" or "2001:db8::1" (raw; v6 written [IPv6:...])
  std::string clientName;  // forward-confirmed host name; "" = unknown
  bool esmtp = true;       // EHLO (true) or HELO
  bool utf8 = false;       // MAIL ... SMTPUTF8
  bool tls = false;
  tls::TlsSummary tlsSummary;  // when tls: the handshake's (raw; sanitized by describeTlsParts)
  bool hasCertificate = false;
  std::string subjectCn, issuerCn;  // may hold anything: sanitized here; empty = absent
  bool verified = false;
  std::string digestName = "SHA256";  // fingerprint digest name
  std::string certFingerprint;        // upper hex without colons
  bool trusted = false;               // relay identity found
  std::string identity;               // table identity (raw; sanitized here)
  std::string hostname;               // the proxy's name
  std::string id;                     // message id
  std::string singleRecipient;        // "<a@b>" when exactly one recipient, else ""
  std::time_t when = 0;
};

// The complete header, CR LF line ends, ending with CR LF.
std::string buildReceivedHeader(const ReceivedInfo& info);

// "Fri, 20 Nov 2026 22:27:49 +0000 (UTC)", always UTC, English names whatever the locale (no
// strftime). The day of the month is space-padded like Postfix's mail_date() ("%e"):
// "Wed,  4 Aug 2021 19:16:04 +0000 (UTC)" (the extra space is FWS, valid RFC 5322).
std::string rfc5322Date(std::time_t when);

// RFC 3848 / RFC 6531 "with" value, as Postfix writes it: "SMTP" for a HELO session whatever the
// rest; otherwise "ESMTP" (or "UTF8SMTP" when utf8) + "S" when tls + "A" when trusted:
// ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA.
std::string receivedProtocol(bool esmtp, bool utf8, bool tls, bool trusted);

}  // namespace certrelay::smtp
