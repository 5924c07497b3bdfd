// Session: the client dialogue. Every command gets exactly one reply slot, in order.

#include <cstdlib>

#include "common/text.h"
#include "policy/address.h"
#include "proxy/log.h"
#include "proxy/smtp/replies.h"
#include "proxy/session.h"
#include "proxy/smtp/capabilities.h"
#include "proxy/smtp/received_header.h"
#include "proxy/worker.h"
#include "tls/peer_facts.h"

namespace certrelay::proxy {
namespace {

// Replies owed by the backend before the proxy stops parsing more pipelined commands: bounds
// the memory one client can make the session hold.
constexpr std::size_t kMaxUnfilledReplies = 256;

bool isGroupEnd(smtp::Verb verb) {
  return verb == smtp::Verb::Ehlo || verb == smtp::Verb::Helo || verb == smtp::Verb::Starttls ||
         verb == smtp::Verb::Quit;
}

using text::equalsIgnoreCase;  // common/text.h

bool allDigits(std::string_view s) {
  if (s.empty() || s.size() > 19) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

// MAIL/RCPT parameters: only those of an extension the client was offered pass, re-serialised.
// Returns "" when all are fine (and `wire` holds them), else the reply to send.
std::string filterParameters(const smtp::PathArgument& path, const smtp::Capabilities* caps,
                             bool mail, std::string& wire, bool& utf8) {
  std::vector<std::string> seen;
  for (const auto& [key, value] : path.params) {
    for (const auto& s : seen) {
      if (s == key) {
        return "555 5.5.4 Duplicate option: " + key + "\r\n";
      }
    }
    seen.push_back(key);
    bool ok = false;
    if (mail && key == "SIZE" && caps != nullptr && caps->size) {
      if (!allDigits(value)) {
        return "501 5.5.4 Bad message size syntax\r\n";
      }
      if (*caps->size > 0 && std::strtoull(value.c_str(), nullptr, 10) > *caps->size) {
        return std::string(replies::kSizeExceeded);
      }
      ok = true;
    } else if (mail && key == "BODY" && caps != nullptr && caps->eightBitMime) {
      ok = equalsIgnoreCase(value, "7BIT") || equalsIgnoreCase(value, "8BITMIME");
    } else if (mail && key == "SMTPUTF8" && caps != nullptr && caps->smtpUtf8) {
      ok = value.empty();
      utf8 = true;
    } else if (mail && (key == "RET" || key == "ENVID") && caps != nullptr && caps->dsn) {
      ok = !value.empty();
    } else if (!mail && (key == "NOTIFY" || key == "ORCPT") && caps != nullptr && caps->dsn) {
      ok = !value.empty();
    } else if (mail && key == "AUTH") {
      continue;  // AUTH is not offered: an AUTH= claim from the client is dropped, not passed
    }
    if (!ok) {
      return replies::unsupportedParameter(key);
    }
    wire += " " + key;
    if (!value.empty()) {
      wire += "=" + value;
    }
  }
  return {};
}

}  // namespace

bool Session::inputBlocked() const {
  return awaitingDataReply_ || deferredLine_.has_value() || phase_ == Phase::Closing ||
         replies_.unfilled() >= kMaxUnfilledReplies;
}

void Session::processInput() {
  std::string line;
  while (!tornDown_) {
    if (chunkRemaining_ > 0 && phase_ == Phase::Command) {
      // A BDAT chunk is counted bytes, never lines: it bypasses the command parser.
      if (lines_.buffered() == 0) {
        return;
      }
      std::string chunk;
      lines_.takeBytes(
          static_cast<std::size_t>(std::min<std::uint64_t>(chunkRemaining_, lines_.buffered())),
          chunk);
      consumeChunk(chunk);
      continue;
    }
    if (phase_ == Phase::Data || phase_ == Phase::DataDiscard) {
      if (lines_.buffered() == 0) {
        return;
      }
      const std::string rest = lines_.takeRemainder();
      consumeData(rest);
      continue;
    }
    if (phase_ != Phase::Command || inputBlocked()) {
      return;
    }
    const auto result = lines_.next(line);
    if (result == smtp::LineReader::Result::NeedMore) {
      return;
    }
    // The command deadline restarts per complete command, not per read (slowloris).
    armClientTimer(config_.timeouts.command);
    if (result == smtp::LineReader::Result::TooLong) {
      reject(replies::kLineTooLong);
      continue;
    }
    handleLine(line);
  }
}

void Session::resumeInput() {
  if (tornDown_) {
    return;
  }
  if (deferredLine_ && replies_.unfilled() == 0 && phase_ == Phase::Command) {
    const std::string line = std::move(*deferredLine_);
    deferredLine_.reset();
    handleLine(line);
  }
  processInput();
  updateReading();
}

void Session::handleLine(const std::string& line) {
  smtp::Command command;
  if (smtp::parseCommand(line, command) != smtp::CommandError::None) {
    reject(replies::kBadSyntax);
    return;
  }
  if (isGroupEnd(command.verb) && replies_.unfilled() > 0) {
    deferredLine_ = line;
    return;
  }
  if (draining_) {
    reply(replies::shuttingDown(config_.hostname), true);
    return;
  }
  handleCommand(command);
}

void Session::handleCommand(smtp::Command& command) {
  switch (command.verb) {
    case smtp::Verb::Ehlo:
      onEhlo(command, true);
      return;
    case smtp::Verb::Helo:
      onEhlo(command, false);
      return;
    case smtp::Verb::Starttls:
      onStarttls(command);
      return;
    case smtp::Verb::Mail:
      onMail(command);
      return;
    case smtp::Verb::Rcpt:
      onRcpt(command);
      return;
    case smtp::Verb::Data:
      onData(command);
      return;
    case smtp::Verb::Rset:
      onRset(command);
      return;
    case smtp::Verb::Noop:
      reply(replies::kOk);
      return;
    case smtp::Verb::Quit:
      onQuit();
      return;
    case smtp::Verb::Vrfy:
      reply(replies::kVrfy);
      return;
    case smtp::Verb::Help:
      reply(replies::kHelp);
      return;
    case smtp::Verb::Xclient:
    case smtp::Verb::Xforward:
      // Only the proxy speaks for the client; a client's own claim is never forwarded.
      log::line(log::Level::Warning, id_, "refused " + command.verbText + " from " + clientName());
      reject(replies::kNotAuthorized);
      return;
    case smtp::Verb::Auth:
      reject(replies::kAuthNotEnabled);
      return;
    case smtp::Verb::Bdat:
      onBdat(command);
      return;
    case smtp::Verb::Expn:
    case smtp::Verb::Etrn:
    case smtp::Verb::Turn:
    case smtp::Verb::Unknown:
      reject(replies::kUnknownCommand);
      return;
  }
}

void Session::onEhlo(const smtp::Command& command, bool extended) {
  if (command.argument.empty()) {
    reject(extended ? replies::kEhloSyntax : replies::kHeloSyntax);
    return;
  }
  // A new EHLO starts over; the backend knew the old name, so it gets a fresh session.
  dropBackend();
  resetTransaction();
  helo_ = command.argument;
  esmtp_ = extended;
  if (!extended) {
    reply(replies::heloOk(config_.hostname));
    return;
  }
  const auto capabilities = worker_.shared().backendCapabilities.load();
  reply(smtp::clientEhloReply(config_.hostname, capabilities.get(), !tls_));
  if (tls_) {
    // Inside TLS everything the identity hand-off needs (address, HELO, certificate) is known
    // now, and MAIL is what comes next: set the backend up while the client reads this reply
    // instead of after its MAIL (saves the connect+EHLO+XCLIENT round trips, ~0.35 ms).
    ensureBackend();
  }
}

void Session::onStarttls(const smtp::Command& command) {
  if (tls_) {
    reject(replies::kTlsActive);
    return;
  }
  if (!command.argument.empty()) {
    reject(replies::kStarttlsSyntax);
    return;
  }
  reply(replies::kReadyTls);
  // CVE-2011-0411: whatever the client sent before it could have seen the 220 is plaintext
  // injection, not part of the TLS session. Forget it, and everything learned so far.
  lines_.clear();
  dropBackend();
  helo_.clear();
  esmtp_ = false;
  resetTransaction();
  tls_ = std::make_unique<tls::Engine>(tlsContext_);
  phase_ = Phase::TlsHandshake;
  armClientTimer(config_.timeouts.tlsHandshake);
}

void Session::onMail(const smtp::Command& command) {
  if (listener_.requireTls && !tls_) {
    reject(replies::kMustStarttls);
    return;
  }
  if (helo_.empty()) {
    reject(replies::kSendHeloFirst);
    return;
  }
  if (mailOpen_) {
    reject(replies::kNestedMail);
    return;
  }
  smtp::PathArgument path;
  if (smtp::parsePathArgument(command.argument, "FROM:", path) != smtp::PathError::None) {
    reject(replies::kMailSyntax);
    return;
  }
  const auto capabilities = worker_.shared().backendCapabilities.load();
  std::string params;
  bool utf8 = false;
  if (auto refusal = filterParameters(path, capabilities.get(), true, params, utf8);
      !refusal.empty()) {
    reject(refusal);
    return;
  }
  const policy::ParsedAddress sender = policy::parsePath(path.path, utf8);
  if (sender.error != policy::AddressError::None) {
    reject(sender.error == policy::AddressError::NonAscii ? replies::kUtf8Sender
                                                          : replies::kBadSender);
    return;
  }
  mailOpen_ = true;
  utf8_ = utf8;
  mailFrom_ = sender.null ? "<>" : sender.mailbox.canonical();
  rcptTotal_ = 0;
  rcptForwarded_ = 0;
  ensureBackend();
  backend_->sendMail("MAIL FROM:" + mailFrom_ + params, replies_.reserve(), messageId(),
                     protocolName());
}

void Session::onRcpt(const smtp::Command& command) {
  if (!mailOpen_) {
    reject(replies::kNeedMail);
    return;
  }
  smtp::PathArgument path;
  if (smtp::parsePathArgument(command.argument, "TO:", path) != smtp::PathError::None) {
    reject(replies::kRcptSyntax);
    return;
  }
  if (rcptTotal_ >= config_.limits.maxRecipients) {
    reply(replies::kTooManyRecipients);
    return;
  }
  ++rcptTotal_;
  const auto capabilities = worker_.shared().backendCapabilities.load();
  std::string params;
  bool unusedUtf8 = false;
  if (auto refusal = filterParameters(path, capabilities.get(), false, params, unusedUtf8);
      !refusal.empty()) {
    reject(refusal);
    return;
  }
  // The current policy snapshot decides: a revocation counts from the next RCPT on.
  const auto policy = worker_.shared().policy.load();
  std::string identity;
  const bool isTrusted = trusted(&identity);
  const policy::Decision decision = policy::decideRecipient(*policy, isTrusted, path.path, utf8_);
  switch (decision.verdict) {
    case policy::Verdict::Accept:
      if (++rcptForwarded_ == 1) {
        firstRecipient_ = decision.canonical;
      }
      backend_->sendCommand("RCPT TO:" + decision.canonical + params, BackendPurpose::Rcpt,
                            replies_.reserve());
      return;
    case policy::Verdict::RelayDenied:
      log::line(log::Level::Info, id_,
                "NOQUEUE: reject: RCPT from " + clientName() + ": " + decision.reply +
                    rejectLogSuffix(decision.canonical));
      reject(decision.reply + "\r\n");
      return;
    case policy::Verdict::BadAddress:
      reject(decision.reply + "\r\n");
      return;
  }
}

void Session::onData(const smtp::Command& command) {
  // Any DATA refusal: bytes the client already sent behind DATA are message content, and must
  // never be read as commands (Postfix >= 3.9 answers the same and hangs up).
  auto refuse = [this](std::string_view wire) {
    reject(wire);
    if (lines_.buffered() > 0 && phase_ != Phase::Closing) {
      reply(replies::kSyncError, true);
    }
  };
  if (!command.argument.empty()) {
    refuse(replies::kDataSyntax);
    return;
  }
  if (!mailOpen_) {
    refuse(replies::kNeedMail);
    return;
  }
  if (bdatUsed_) {
    refuse(replies::kDataAfterBdat);
    return;
  }
  if (rcptForwarded_ == 0) {
    // Nothing was forwarded, so the backend must not see DATA at all.
    refuse(rcptTotal_ == 0 ? replies::kNeedRcpt : replies::kNoValidRecipients);
    return;
  }
  // DATA ends its group: nothing more is parsed until the backend has answered it.
  awaitingDataReply_ = true;
  dataTicket_ = replies_.reserve();
  backend_->sendCommand("DATA", BackendPurpose::Data, dataTicket_);
}

void Session::onRset(const smtp::Command&) {
  resetTransaction();
  if (backend_ != nullptr) {
    backend_->sendCommand("RSET", BackendPurpose::Rset, replies_.reserve());
  } else {
    reply(replies::kOk);
  }
}

void Session::onQuit() {
  reply(replies::kBye, true);
}

void Session::onBdat(const smtp::Command& command) {
  std::uint64_t size = 0;
  bool last = false;
  if (smtp::parseBdatArgument(command.argument, size, last) != smtp::BdatError::None) {
    // Without a count the chunk cannot be skipped: it must never be read as commands.
    ++errors_;
    reply(replies::kBdatSyntax, true);
    return;
  }
  const auto capabilities = worker_.shared().backendCapabilities.load();
  if (capabilities == nullptr || !capabilities->chunking) {
    // CHUNKING is not offered: the chunk that follows must never be read as commands.
    ++errors_;
    reply(replies::kNotImplemented, true);
    return;
  }
  chunkRemaining_ = size;
  chunkLast_ = last;
  // RFC 3030: a refused BDAT's chunk is still read (and dropped); the session goes on.
  std::string_view refusal;
  if (!mailOpen_) {
    refusal = replies::kNeedMail;
  } else if (rcptForwarded_ == 0) {
    refusal = rcptTotal_ == 0 ? replies::kNeedRcpt : replies::kNoValidRecipients;
  }
  chunkDiscard_ = !refusal.empty();
  if (chunkDiscard_) {
    reject(refusal);
  } else {
    bdatUsed_ = true;
    if (!headerSent_ && config_.backend.receivedHeader) {
      // The proxy's Received header travels as its own leading chunk.
      const std::string header = receivedHeader();
      backend_->sendCommand("BDAT " + std::to_string(header.size()), BackendPurpose::Internal, 0);
      backend_->sendContent(header);
      headerSent_ = true;
    }
    backend_->sendCommand("BDAT " + std::to_string(size) + (last ? " LAST" : ""),
                          last ? BackendPurpose::BdatLast : BackendPurpose::Bdat,
                          replies_.reserve());
    if (last) {
      messageLogs_.push_back("from=" + mailFrom_ + " (BDAT)");
    }
  }
  if (chunkRemaining_ == 0) {
    consumeChunk({});
  }
}

void Session::consumeChunk(std::string_view bytes) {
  if (!chunkDiscard_ && backend_ != nullptr) {
    backend_->sendContent(bytes);
  }
  chunkRemaining_ -= bytes.size();
  if (chunkRemaining_ > 0 || !chunkLast_) {
    return;
  }
  if (!chunkDiscard_) {
    ++messages_;
    log::line(log::Level::Info, id_, "end of BDAT from " + clientName() + ": from=" + mailFrom_);
    resetTransaction();
  }
  chunkLast_ = false;
  chunkDiscard_ = false;
}

void Session::consumeData(std::string_view bytes) {
  scratch_.clear();
  const std::size_t used = data_.feed(bytes, scratch_);
  if (!data_.done()) {
    if (phase_ == Phase::Data && backend_ != nullptr) {
      backend_->sendContent(scratch_);
    }
    return;
  }
  const std::string envelope =
      "from=" + mailFrom_ + " size=" + std::to_string(data_.contentBytes());
  if (phase_ == Phase::Data && backend_ != nullptr) {
    data_.finish(scratch_);
    backend_->endContent(scratch_, replies_.reserve());
    ++messages_;
    // Logged with the backend's verdict: one line per message (onBackendReply).
    messageLogs_.push_back(envelope);
  } else {
    reply(replies::kDataLost);
    log::line(log::Level::Info, id_,
              "end of data from " + clientName() + ": " + envelope + " (discarded: backend lost)");
  }
  resetTransaction();
  phase_ = Phase::Command;
  armClientTimer(config_.timeouts.command);
  if (used < bytes.size()) {
    lines_.feed(bytes.substr(used));  // pipelined commands after the final dot
  }
}

void Session::reply(std::string_view wire, bool closeAfter) {
  replies_.pushReady(wire, closeAfter);
  if (closeAfter) {
    // Decided: nothing the client pipelined behind this reply is processed any more, even
    // while earlier replies are still owed by the backend.
    phase_ = Phase::Closing;
  }
  flushReplies();
}

void Session::reject(std::string_view wire) {
  ++errors_;
  reply(wire);
  if (errors_ >= config_.limits.maxErrors) {
    log::line(log::Level::Info, id_, "too many errors from " + clientName());
    reply(replies::tooManyErrors(config_.hostname), true);
  }
}

void Session::flushReplies() {
  std::string out;
  const bool close = replies_.drain(out);
  if (!out.empty()) {
    sendToClient(out);
  }
  if (close && !closeAfterFlush_) {
    closeAfterFlush();
  }
}

void Session::resetTransaction() {
  mailOpen_ = false;
  utf8_ = false;
  mailFrom_.clear();
  rcptTotal_ = 0;
  rcptForwarded_ = 0;
  awaitingDataReply_ = false;
  firstRecipient_.clear();
  bdatUsed_ = false;
  headerSent_ = false;
}

bool Session::trusted(std::string* identity) const {
  // Always the snapshot current now: a revoked fingerprint stops relaying at the next RCPT,
  // on a resumed TLS session too (nothing about trust is cached in the session).
  const auto policy = worker_.shared().policy.load();
  std::string found;
  const bool allowed = policy->relayAllowed(certificate_, peer_.addr, &found);
  if (identity != nullptr) {
    *identity = std::move(found);
  }
  return allowed;
}

std::string Session::messageId() const {
  return id_ + "M" + std::to_string(messages_ + 1);
}

std::string Session::protocolName() const {
  // "A" (RFC 3848) means an authenticated identity: a listed certificate, not a relay network.
  std::string identity;
  const bool listed = trusted(&identity) && !identity.empty();
  return smtp::receivedProtocol(esmtp_, utf8_, tls_ != nullptr, listed);
}

std::string Session::receivedHeader() const {
  smtp::ReceivedInfo info;
  info.helo = helo_;
  info.clientAddr = peer_.addr;
  info.esmtp = esmtp_;
  info.utf8 = utf8_;
  if (tls_ && tls_->state() == tls::Engine::State::Established) {
    const tls::PeerFacts& facts = tls_->facts();
    info.tls = true;
    info.tlsSummary = facts.summary;
    info.hasCertificate = facts.hasCertificate;
    info.subjectCn = facts.subjectCn;
    info.issuerCn = facts.issuerCn;
    info.verified = facts.verified;
    info.digestName = facts.digestName;
    info.certFingerprint = facts.certFingerprint;
  }
  std::string identity;
  info.trusted = trusted(&identity) && !identity.empty();
  info.identity = identity;
  info.hostname = config_.hostname;
  info.id = messageId();
  info.singleRecipient = rcptForwarded_ == 1 ? firstRecipient_ : std::string();
  info.when = std::time(nullptr);
  return smtp::buildReceivedHeader(info);
}

std::string Session::rejectLogSuffix(const std::string& rcpt) const {
  return "; from=" + mailFrom_ + " to=" + tls::sanitizeComment(rcpt) +
         " proto=" + (esmtp_ ? "ESMTP" : "SMTP") + " helo=<" + tls::sanitizeComment(helo_) + ">";
}

}  // namespace certrelay::proxy
