#pragma once
// Every reply the proxy writes on its own, in one place (design.md, "Errors a client sees").
// Texts follow Postfix's where Postfix has one, so existing scripts and alerts keep matching.

#include <string>
#include <string_view>

namespace certrelay::smtp::replies {

inline std::string greeting(std::string_view host) {
  return "220 " + std::string(host) + " ESMTP certrelay\r\n";
}
inline std::string heloOk(std::string_view host) {
  return "250 " + std::string(host) + "\r\n";
}
inline std::string timeout(std::string_view host) {
  return "421 4.4.2 " + std::string(host) + " Error: timeout exceeded\r\n";
}
inline std::string tooManyErrors(std::string_view host) {
  return "421 4.7.0 " + std::string(host) + " Error: too many errors\r\n";
}
inline std::string tooManyConnections(std::string_view host) {
  return "421 4.7.0 " + std::string(host) + " Error: too many connections\r\n";
}
// Postfix's anvil refusals (smtpd_client_connection_count_limit and _rate_limit share the 421).
inline std::string tooManyConnectionsFrom(std::string_view host, std::string_view client) {
  return "421 4.7.0 " + std::string(host) + " Error: too many connections from " +
         std::string(client) + "\r\n";
}
inline std::string tooMuchMailFrom(std::string_view client) {
  return "450 4.7.1 Error: too much mail from " + std::string(client) + "\r\n";
}
inline std::string tooManyRecipientsFrom(std::string_view client) {
  return "450 4.7.1 Error: too many recipients from " + std::string(client) + "\r\n";
}
inline std::string tooManyMessages(std::string_view host) {
  return "421 4.7.0 " + std::string(host) + " Error: too many messages in this session\r\n";
}
inline std::string shuttingDown(std::string_view host) {
  return "421 4.3.2 " + std::string(host) + " Service shutting down\r\n";
}
inline std::string backendConfiguration(std::string_view host) {
  return "421 4.3.0 " + std::string(host) + " Error: backend configuration error\r\n";
}
// The backend wants the proxy to authenticate (530): it is not set up to trust the proxy.
inline std::string backendRefusedProxy(std::string_view host) {
  return "421 4.3.5 " + std::string(host) +
         " Error: backend refused the proxy (system incorrectly configured)\r\n";
}

inline constexpr std::string_view kOk = "250 2.0.0 Ok\r\n";
inline constexpr std::string_view kBye = "221 2.0.0 Bye\r\n";
inline constexpr std::string_view kReadyTls = "220 2.0.0 Ready to start TLS\r\n";
inline constexpr std::string_view kTlsActive = "554 5.5.1 Error: TLS already active\r\n";
inline constexpr std::string_view kStarttlsSyntax = "501 5.5.4 Syntax: STARTTLS\r\n";
inline constexpr std::string_view kTlsUnavailable =
    "454 4.7.0 TLS not available due to local problem\r\n";
inline constexpr std::string_view kMustStarttls =
    "530 5.7.0 Must issue a STARTTLS command first\r\n";
inline constexpr std::string_view kLineTooLong = "500 5.5.2 Error: line too long\r\n";
inline constexpr std::string_view kBadSyntax = "500 5.5.2 Error: bad syntax\r\n";
inline constexpr std::string_view kUnknownCommand = "502 5.5.2 Error: command not recognized\r\n";
// Postfix's reply to smtpd_forbidden_commands (an HTTP request line, a message header), and the
// session ends at once.
inline constexpr std::string_view kForbiddenCommand =
    "221 2.7.0 Error: I can break rules, too. Goodbye.\r\n";
inline constexpr std::string_view kNotImplemented = "521 5.5.1 Error: command not implemented\r\n";
inline constexpr std::string_view kBdatSyntax = "501 5.5.4 Syntax: BDAT count [LAST]\r\n";
inline constexpr std::string_view kDataAfterBdat = "503 5.5.1 Error: DATA after BDAT\r\n";
inline constexpr std::string_view kNotAuthorized =
    "550 5.7.0 Error: insufficient authorization\r\n";
inline constexpr std::string_view kAuthNotEnabled =
    "503 5.5.1 Error: authentication not enabled\r\n";
inline constexpr std::string_view kEhloSyntax = "501 5.5.4 Syntax: EHLO hostname\r\n";
inline constexpr std::string_view kHeloSyntax = "501 5.5.4 Syntax: HELO hostname\r\n";
inline constexpr std::string_view kSendHeloFirst = "503 5.5.1 Error: send HELO/EHLO first\r\n";
inline constexpr std::string_view kNestedMail = "503 5.5.1 Error: nested MAIL command\r\n";
inline constexpr std::string_view kNeedMail = "503 5.5.1 Error: need MAIL command\r\n";
inline constexpr std::string_view kNeedRcpt = "503 5.5.1 Error: need RCPT command\r\n";
inline constexpr std::string_view kMailSyntax = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n";
inline constexpr std::string_view kRcptSyntax = "501 5.5.4 Syntax: RCPT TO:<address>\r\n";
inline constexpr std::string_view kDataSyntax = "501 5.5.4 Syntax: DATA\r\n";
inline constexpr std::string_view kBadSender = "501 5.1.7 Bad sender address syntax\r\n";
inline constexpr std::string_view kUtf8Sender =
    "553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n";
inline constexpr std::string_view kTooManyRecipients = "452 4.5.3 Error: too many recipients\r\n";
inline constexpr std::string_view kNoValidRecipients = "554 5.5.1 Error: no valid recipients\r\n";
inline constexpr std::string_view kSizeExceeded = "552 5.3.4 Message size exceeds fixed limit\r\n";
inline constexpr std::string_view kSyncError = "554 5.5.0 Error: SMTP protocol synchronization\r\n";
inline constexpr std::string_view kVrfy =
    "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n";
inline constexpr std::string_view kHelp =
    "214 2.0.0 Commands: EHLO HELO STARTTLS MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n";
inline constexpr std::string_view kTooManyBackendConnections =
    "451 4.3.2 Error: too many backend connections, try again later\r\n";
inline constexpr std::string_view kBackendUnavailable =
    "451 4.3.0 Error: backend unavailable, try again later\r\n";
inline constexpr std::string_view kOutcomeUnknown =
    "451 4.3.0 Error: backend reply lost after end of data, message status unknown, try again "
    "later\r\n";
inline constexpr std::string_view kDataLost =
    "451 4.3.0 Error: backend connection lost during DATA, message not delivered\r\n";

inline std::string unsupportedParameter(std::string_view keyword) {
  return "555 5.5.4 Unsupported option: " + std::string(keyword) + "\r\n";
}

}  // namespace certrelay::smtp::replies
