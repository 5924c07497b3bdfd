// Dialogue: reading commands and answering them. Every command gets exactly one reply slot, in
// order. Content (DATA, BDAT) is in dialogue_content.cpp, the backend side in
// dialogue_backend.cpp.

#include "proxy/smtp/dialogue.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

#include "common/assert.h"
#include "common/text.h"
#include "policy/address.h"
#include "proxy/smtp/parameters.h"
#include "proxy/smtp/received_header.h"
#include "proxy/smtp/replies.h"
#include "tls/handshake_log.h"

namespace certrelay::smtp {
namespace {

// The reply's code as a number, 0 when it does not start with three digits.
int replyCode(std::string_view reply) {
  int code = 0;
  const auto [end, error] =
      std::from_chars(reply.data(), reply.data() + std::min<std::size_t>(reply.size(), 3), code);
  return error == std::errc() && end == reply.data() + 3 ? code : 0;
}

bool isGroupEnd(Verb verb) {
  return verb == Verb::Ehlo || verb == Verb::Helo || verb == Verb::Starttls || verb == Verb::Quit;
}

// Postfix's smtpd_forbidden_commands (3.7 default "CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}")
// and its message-header rule ("Label: ..."): a line that is not SMTP from a client that is not
// speaking SMTP, most often an HTTP request sent to the mail port (cross-protocol attacks).
bool isForbiddenCommand(std::string_view line) {
  if (line.empty()) {
    return false;  // a blank line is an ordinary syntax error
  }
  const auto first = static_cast<unsigned char>(line.front());
  if (!((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z'))) {
    return true;
  }
  const std::string_view verb = line.substr(0, line.find(' '));
  if (verb.back() == ':') {
    return true;
  }
  for (const std::string_view http : {"CONNECT", "GET", "POST", "HEAD", "PUT"}) {
    if (text::equalsIgnoreCase(verb, http)) {
      return true;
    }
  }
  return false;
}

}  // namespace

Dialogue::Dialogue(DialogueSettings settings, DialogueHost& host)
    : settings_(std::move(settings)),
      config_(settings_.config),
      host_(host),
      lines_(settings_.config.limits.maxLineLength),
      nameKnown_(!settings_.nameLookup) {}

void Dialogue::start(bool overConnectionLimit, bool draining) {
  const bool implicit = settings_.listener.tlsMode == config::TlsMode::Implicit;
  if (implicit && (overConnectionLimit || draining)) {
    // Nothing can be said before TLS, and a handshake only to refuse would spend the CPU the
    // limit protects: close; SMTP clients treat that as a temporary failure and retry.
    warn(std::string(overConnectionLimit ? "too many connections" : "shutting down") +
         ", closing " + clientName() + " before TLS (implicit TLS listener " +
         settings_.listener.name + ")");
    phase_ = Phase::Closing;
    host_.closeClient();
    return;
  }
  if (overConnectionLimit) {
    warn("too many connections, refusing " + clientName());
    reply(replies::tooManyConnections(config_.hostname), true);
    return;
  }
  if (draining) {
    reply(replies::shuttingDown(config_.hostname), true);
    return;
  }
  if (implicit) {
    // RFC 8314: TLS from the first byte; the greeting follows inside TLS.
    tlsStarted_ = true;
    phase_ = Phase::TlsHandshake;
    host_.startTls();
    host_.armTimer(config_.timeouts.tlsHandshake);
    return;
  }
  if (config_.limits.greetingDelay.count() > 0) {
    // Pregreet test: read, but say nothing until the delay has passed.
    phase_ = Phase::Pregreet;
    host_.armTimer(config_.limits.greetingDelay);
    return;
  }
  reply(replies::greeting(config_.hostname));
  host_.armTimer(commandTimeout());
}

void Dialogue::onClientBytes(std::string_view bytes) {
  if (phase_ == Phase::Closing || phase_ == Phase::TlsHandshake) {
    return;  // nothing more is read once closing; handshake bytes are the host's
  }
  if (phase_ == Phase::Pregreet) {
    onPregreet(bytes);
    return;
  }
  if (inContent() && !contentArrived(bytes.size())) {
    return;  // too slow: closed
  }
  if (lines_.buffered() == 0 && phase_ == Phase::Data) {
    consumeData(bytes);  // fast path: content is not copied into the line buffer first
  } else if (lines_.buffered() == 0 && phase_ == Phase::Chunk) {
    // A BDAT chunk goes straight through; only what follows it is buffered.
    const auto take =
        static_cast<std::size_t>(std::min<std::uint64_t>(chunk_.remaining, bytes.size()));
    consumeChunk(bytes.substr(0, take));
    lines_.feed(bytes.substr(take));
  } else {
    lines_.feed(bytes);
  }
  processInput();
  closeIfDrainedIdle();
}

bool Dialogue::inputBlocked() const {
  return transaction_.awaiting354 || deferredLine_.has_value() ||
         replies_.unfilled() >= kMaxUnfilledReplies;
}

bool Dialogue::wantsInput() const {
  if (phase_ == Phase::Closing) {
    return false;
  }
  // While only a DATA reply is awaited, reading goes on into the line buffer (bounded): nothing
  // is parsed before the reply, but the host need not stop and restart reading per message.
  const bool readAhead = transaction_.awaiting354 && !deferredLine_ &&
                         lines_.buffered() < config_.limits.highWatermark;
  return !inputBlocked() || readAhead;
}

void Dialogue::processInput() {
  std::string line;
  for (;;) {
    if (phase_ == Phase::Chunk) {
      // A BDAT chunk is counted bytes, never lines: it bypasses the command parser.
      if (lines_.buffered() == 0) {
        return;
      }
      std::string chunk;
      lines_.takeBytes(
          static_cast<std::size_t>(std::min<std::uint64_t>(chunk_.remaining, lines_.buffered())),
          chunk);
      consumeChunk(chunk);
      continue;
    }
    if (phase_ == Phase::Data) {
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
    if (result == LineReader::Result::NeedMore) {
      return;
    }
    // The command deadline restarts per complete command, not per read (slowloris).
    host_.armTimer(commandTimeout());
    if (result == LineReader::Result::TooLong) {
      reject(replies::kLineTooLong);
      continue;
    }
    handleLine(line);
  }
}

void Dialogue::handleLine(const std::string& line) {
  if (isForbiddenCommand(line)) {
    onForbidden(line);
    return;
  }
  Command command;
  if (parseCommand(line, command) != CommandError::None) {
    reject(replies::kBadSyntax);
    return;
  }
  if ((isGroupEnd(command.verb) && replies_.unfilled() > 0) ||
      (command.verb == Verb::Mail && !nameKnown_)) {
    // Input stops here until the replies owed are in (resumeInput), or until the client's name
    // is known (onClientName): MAIL opens the backend, which is told the name.
    deferredLine_ = line;
    return;
  }
  // Draining: a transaction in progress runs to its end; anything else ends the session.
  if (draining_ && !transaction_.open && command.verb != Verb::Quit) {
    reply(replies::shuttingDown(config_.hostname), true);
    return;
  }
  handleCommand(command);
}

void Dialogue::onForbidden(const std::string& line) {
  warn("non-SMTP command from " + clientName() + ": " + text::sanitizeComment(line, 100),
       {{"event", "non_smtp_command"}});
  reply(replies::kForbiddenCommand, true);
}

void Dialogue::handleCommand(const Command& command) {
  switch (command.verb) {
    case Verb::Ehlo:
      return onEhlo(command, true);
    case Verb::Helo:
      return onEhlo(command, false);
    case Verb::Starttls:
      return onStarttls(command);
    case Verb::Mail:
      return onMail(command);
    case Verb::Rcpt:
      return onRcpt(command);
    case Verb::Data:
      return onData(command);
    case Verb::Bdat:
      return onBdat(command);
    case Verb::Rset:
      onRset();
      return junk({});
    case Verb::Noop:
      return junk(replies::kOk);
    case Verb::Quit:
      return reply(replies::kBye, true);
    case Verb::Vrfy:
      return junk(replies::kVrfy);
    case Verb::Help:
      return junk(replies::kHelp);
    case Verb::Xclient:
    case Verb::Xforward:
      // Only the proxy speaks for the client; a client's own claim is never forwarded.
      warn("refused " + command.verbText + " from " + clientName());
      return reject(replies::kNotAuthorized);
    case Verb::Auth:
      return reject(replies::kAuthNotEnabled);
    case Verb::Expn:
    case Verb::Etrn:
    case Verb::Turn:
    case Verb::Unknown:
      return reject(replies::kUnknownCommand);
  }
}

void Dialogue::onEhlo(const Command& command, bool extended) {
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
  const auto capabilities = host_.backendCapabilities();
  reply(clientEhloReply(config_.hostname, capabilities.get(), !tlsStarted_));
  if (tls_ != nullptr) {
    // Inside TLS everything the identity hand-off needs (address, HELO, certificate) is known
    // now, and MAIL is what comes next: set the backend up while the client reads this reply
    // instead of after its MAIL (saves the connect+EHLO+XCLIENT round trips, ~0.35 ms). Only
    // while backend connections are plentiful (backend.max_connections): else at MAIL. The
    // client's name goes with the identity: a lookup still running puts this off until it ends.
    if (nameKnown_) {
      ensureBackend(true);
    } else {
      openWhenNamed_ = true;
    }
  }
}

void Dialogue::onStarttls(const Command& command) {
  if (tlsStarted_) {
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
  forgetPreTlsState();
  tlsStarted_ = true;
  phase_ = Phase::TlsHandshake;
  host_.startTls();
  host_.armTimer(config_.timeouts.tlsHandshake);
}

void Dialogue::onMail(const Command& command) {
  if (settings_.listener.requireTls && !tlsStarted_) {
    logReject("MAIL", replies::kMustStarttls, {});
    reject(replies::kMustStarttls);
    return;
  }
  if (helo_.empty()) {
    reject(replies::kSendHeloFirst);
    return;
  }
  if (transaction_.lost) {
    resetTransaction();  // the lost transaction's client moves on: a fresh backend takes this one
  }
  if (transaction_.open) {
    reject(replies::kNestedMail);
    return;
  }
  PathArgument path;
  if (parsePathArgument(command.argument, "FROM:", path) != PathError::None) {
    reject(replies::kMailSyntax);
    return;
  }
  const auto capabilities = host_.backendCapabilities();
  const FilteredParameters params = filterMailParameters(path, capabilities.get());
  if (!params.refusal.empty()) {
    logReject("MAIL", params.refusal, {});
    reject(params.refusal);
    return;
  }
  const policy::ParsedAddress sender = policy::parsePath(path.path, params.utf8);
  if (sender.error != policy::AddressError::None) {
    reject(sender.error == policy::AddressError::NonAscii ? replies::kUtf8Sender
                                                          : replies::kBadSender);
    return;
  }
  const std::size_t maxMessages = config_.limits.maxMessagesPerSession;
  if (maxMessages != 0 && messages_ >= maxMessages) {
    info("too many messages in this session from " + clientName() + " (" +
             std::to_string(messages_) + ")",
         {{"event", "too_many_messages"}, {"messages", messages_}});
    logReject("MAIL", replies::tooManyMessages(config_.hostname), {});
    reply(replies::tooManyMessages(config_.hostname), true);
    return;
  }
  if (!admitRate(RateEvent::Message, {})) {
    return;
  }
  if (!ensureBackend()) {
    // Not the client's fault: a 4xx it retries, not counted as an error.
    warn("backend connection limit reached (backend.max_connections): MAIL from " + clientName() +
             " deferred",
         {{"event", "backend_connections_exceeded"}});
    logReject("MAIL", replies::kTooManyBackendConnections, {});
    reply(replies::kTooManyBackendConnections);
    return;
  }
  junkCommands_ = 0;  // a transaction is progress: the junk count starts over
  transaction_.open = true;
  transaction_.utf8 = params.utf8;
  transaction_.from = sender.null ? "<>" : sender.mailbox.canonical();
  const Ticket ticket = replies_.reserve();
  owed_.push_back(Owed{BackendPurpose::Mail, ticket, transaction_.utf8, false, 0, {}});
  host_.backendMail("MAIL FROM:" + transaction_.from + params.wire, ticket, messageId(),
                    protocolName());
}

void Dialogue::onRcpt(const Command& command) {
  if (!transaction_.open) {
    reject(replies::kNeedMail);
    return;
  }
  PathArgument path;
  if (parsePathArgument(command.argument, "TO:", path) != PathError::None) {
    reject(replies::kRcptSyntax);
    return;
  }
  if (transaction_.lost) {
    reply(replies::kBackendUnavailable);  // the backend that took the MAIL is gone
    return;
  }
  if (transaction_.recipients >= config_.limits.maxRecipients) {
    logReject("RCPT", replies::kTooManyRecipients, path.path);
    reply(replies::kTooManyRecipients);
    return;
  }
  if (!admitRate(RateEvent::Recipient, path.path)) {
    return;
  }
  ++transaction_.recipients;
  const auto capabilities = host_.backendCapabilities();
  const FilteredParameters params = filterRcptParameters(path, capabilities.get());
  if (!params.refusal.empty()) {
    logReject("RCPT", params.refusal, path.path);
    reject(params.refusal);
    return;
  }
  // The current policy snapshot decides, trust and recipient alike: a revocation counts from the
  // next RCPT on, on a resumed TLS session too (nothing about trust is cached in the session).
  const auto policy = host_.policy();
  std::string identity;
  const bool permitted = policy->relayAllowed(certificate_, settings_.peer.addr,
                                              config_.metrics.perIdentity ? &identity : nullptr);
  const policy::Decision decision =
      policy::decideRecipient(*policy, permitted, path.path, transaction_.utf8);
  switch (decision.verdict) {
    case policy::Verdict::Accept: {
      if (++transaction_.forwarded == 1) {
        transaction_.firstRecipient = decision.canonical;
      }
      // For the outcome report only (relayed or local): the decision above is the one that
      // counts. A trusted client's recipient is local when anyone could have sent to it.
      const bool relayed =
          permitted &&
          policy::decideRecipient(*policy, false, path.path, transaction_.utf8).verdict !=
              policy::Verdict::Accept;
      sendToBackend(
          "RCPT TO:" + decision.canonical + params.wire, BackendPurpose::Rcpt,
          Owed{.relayed = relayed, .identity = std::move(identity), .rcpt = decision.canonical});
      return;
    }
    case policy::Verdict::RelayDenied:
      logReject("RCPT", decision.reply, decision.canonical);
      host_.outcome(Outcome::RcptRelayDenied, {}, 0);  // not trusted: no identity to report
      reject(decision.reply + "\r\n");
      return;
    case policy::Verdict::BadAddress:
      reject(decision.reply + "\r\n");
      return;
  }
}

void Dialogue::refuseContentCommand(std::string_view wire) {
  // Bytes the client already sent behind a refused DATA are message content, and must never be
  // read as commands (Postfix >= 3.9 answers the same and hangs up).
  reject(wire);
  if (lines_.buffered() > 0 && phase_ != Phase::Closing) {
    reply(replies::kSyncError, true);
  }
}

void Dialogue::onData(const Command& command) {
  if (!command.argument.empty()) {
    refuseContentCommand(replies::kDataSyntax);
    return;
  }
  if (!transaction_.open) {
    refuseContentCommand(replies::kNeedMail);
    return;
  }
  if (transaction_.lost) {
    // Not the client's fault: a 4xx, not counted as an error. The transaction is over.
    resetTransaction();
    reply(replies::kBackendUnavailable);
    if (lines_.buffered() > 0) {
      reply(replies::kSyncError, true);
    }
    return;
  }
  if (transaction_.bdat) {
    refuseContentCommand(replies::kDataAfterBdat);
    return;
  }
  if (transaction_.forwarded == 0) {
    // Nothing was forwarded, so the backend must not see DATA at all.
    const std::string_view refusal =
        transaction_.recipients == 0 ? replies::kNeedRcpt : replies::kNoValidRecipients;
    logReject("DATA", refusal, {});
    refuseContentCommand(refusal);
    return;
  }
  // DATA ends its group: nothing more is parsed until the backend has answered it.
  transaction_.awaiting354 = true;
  sendToBackend("DATA", BackendPurpose::Data);
}

void Dialogue::onRset() {
  resetTransaction();
  if (backendOpen_) {
    sendToBackend("RSET", BackendPurpose::Rset);
  } else {
    reply(replies::kOk);
  }
}

void Dialogue::reply(std::string_view wire, bool closeAfter) {
  replies_.pushReady(wire, closeAfter);
  if (closeAfter) {
    // Decided: nothing the client pipelined behind this reply is processed any more, even
    // while earlier replies are still owed by the backend.
    phase_ = Phase::Closing;
  }
  flushReplies();
}

void Dialogue::reject(std::string_view wire) {
  reply(wire);
  countError();
}

void Dialogue::junk(std::string_view wire) {
  if (!wire.empty()) {
    reply(wire);
  }
  const std::size_t limit = config_.limits.maxJunkCommands;
  if (limit != 0 && ++junkCommands_ > limit) {
    countError();
  }
}

void Dialogue::countError() {
  ++errors_;
  if (errors_ >= config_.limits.maxErrors && phase_ != Phase::Closing) {
    info("too many errors from " + clientName(), {{"event", "too_many_errors"}});
    reply(replies::tooManyErrors(config_.hostname), true);
  }
}

void Dialogue::fill(Ticket ticket, std::string_view wire, bool closeAfter) {
  if (!CERTRELAY_ASSERT(replies_.fill(ticket, wire, closeAfter))) {
    closeOnBug("a reply for a slot that is not owed");
  }
}

void Dialogue::flushReplies() {
  scratch_.clear();
  const bool close = replies_.drain(scratch_);
  if (!scratch_.empty()) {
    host_.sendToClient(scratch_);
  }
  if (close) {
    phase_ = Phase::Closing;
    dropBackend();
    host_.closeClient();
  }
}

void Dialogue::closeOnBug(const char* what) {
  // Only reached in release builds (CERTRELAY_ASSERT aborts elsewhere): end this one session.
  note(log::Level::Error, std::string("internal error, closing the session: ") + what, {});
  phase_ = Phase::Closing;
  dropBackend();
  host_.closeClient();
}

void Dialogue::forgetPreTlsState() {
  // RFC 3207 section 4.2: everything learned before TLS is forgotten.
  helo_.clear();
  esmtp_ = false;
  resetTransaction();
}

void Dialogue::resetTransaction() {
  transaction_.reset();
  chunkedBytes_ = 0;
}

std::string Dialogue::listedIdentity() const {
  // The identity of a certificate listed in the current table ("" for a client trusted by its
  // network, which has no identity to give, and for an untrusted one).
  std::string identity;
  if (!host_.policy()->relayAllowed(certificate_, settings_.peer.addr, &identity)) {
    return {};
  }
  return identity;
}

std::string Dialogue::reportIdentity() const {
  return config_.metrics.perIdentity ? listedIdentity() : std::string();
}

std::string Dialogue::messageId() const {
  return settings_.id + "M" + std::to_string(messages_ + 1);
}

std::string Dialogue::protocolName() const {
  // "A" (RFC 3848) means an authenticated identity: a listed certificate, not a relay network.
  return receivedProtocol(esmtp_, transaction_.utf8, tlsStarted_, !listedIdentity().empty());
}

void Dialogue::logReject(std::string_view stage, std::string_view reply, const std::string& rcpt) {
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) {
    reply.remove_suffix(1);
  }
  info("NOQUEUE: reject: " + std::string(stage) + " from " + clientName() + ": " +
           text::sanitizeComment(reply) + rejectLogSuffix(rcpt),
       {{"event", "reject"},
        {"stage", stage},
        {"code", replyCode(reply)},
        {"reply", reply},
        {"from", bareAddress(transaction_.from)},
        {"to", bareAddress(rcpt)}});
}

std::string_view Dialogue::bareAddress(const std::string& path) {
  if (path.empty()) {
    return {};  // not known (yet): no field
  }
  const std::string_view view(path);
  if (view.size() >= 2 && view.front() == '<' && view.back() == '>') {
    return view.substr(1, view.size() - 2);  // "" for the null sender <>: a field all the same
  }
  return view;
}

std::string Dialogue::describe(const SentMessage& message) {
  return "from=" + message.from +
         (message.chunked ? std::string(" (BDAT)") : " size=" + std::to_string(message.size));
}

void Dialogue::note(log::Level level, std::string_view message,
                    std::initializer_list<log::Field> event) {
  if (!log::enabled(level)) {
    return;
  }
  if (!log::structured()) {
    host_.log(level, message, {});
    return;
  }
  constexpr std::size_t kSessionFields = 6;
  constexpr std::size_t kEventFields = 10;
  if (!CERTRELAY_ASSERT(event.size() <= kEventFields)) {
    host_.log(level, message, {});
    return;
  }
  const std::string client = clientName();
  const std::string identity = listedIdentity();
  std::array<log::Field, kSessionFields + kEventFields> fields;
  std::size_t n = 0;
  fields[n++] = {"client", client};
  fields[n++] = {"client_address", settings_.peer.addr};
  fields[n++] = {"client_port", settings_.peer.port};
  if (!helo_.empty()) {
    fields[n++] = {"helo", helo_};
  }
  if (!certificate_.certFingerprint.empty()) {
    fields[n++] = {"fingerprint", certificate_.certFingerprint};
  }
  if (!identity.empty()) {
    fields[n++] = {"identity", identity};
  }
  for (const log::Field& field : event) {
    // A null view (not an empty one) is a field the event does not have, e.g. no sender yet.
    if (field.kind != log::Field::Kind::Text || field.text.data() != nullptr) {
      fields[n++] = field;
    }
  }
  host_.log(level, message, std::span<const log::Field>(fields.data(), n));
}

std::string Dialogue::rejectLogSuffix(const std::string& rcpt) const {
  // As Postfix: the envelope known so far (none yet when MAIL itself is refused).
  std::string suffix = ";";
  if (!transaction_.from.empty()) {
    suffix.append(" from=").append(transaction_.from);
  }
  if (!rcpt.empty()) {
    suffix.append(" to=").append(text::sanitizeComment(rcpt));
  }
  return suffix + " proto=" + (esmtp_ ? "ESMTP" : "SMTP") + " helo=<" +
         text::sanitizeComment(helo_) + ">";
}

void Dialogue::drain(bool fast) {
  draining_ = true;
  if (fast && !messageInFlight() && phase_ != Phase::Closing) {
    // A fast stop waits only for a message whose content is on its way or whose final reply is
    // owed; anything else ends now (owed replies get 451 from dropBackend, then the 421).
    dropBackend();
    info("fast stop: closing " + clientName());
    reply(replies::shuttingDown(config_.hostname), true);
    return;
  }
  closeIfDrainedIdle();
}

void Dialogue::onTimer() {
  switch (phase_) {
    case Phase::Closing:
      return;  // the host's own deadline covers closing
    case Phase::TlsHandshake:
      warn("TLS handshake timeout from " + clientName());
      phase_ = Phase::Closing;
      host_.closeClient();
      return;
    case Phase::Pregreet:
      return greet();
    case Phase::Command:
    case Phase::Data:
    case Phase::Chunk:
      break;
  }
  if (replies_.unfilled() > 0) {
    // The client waits for us, and the backend's own deadline covers that wait.
    host_.armTimer(commandTimeout());
    return;
  }
  info("timeout after " + std::string(phase_ == Phase::Command ? "command" : "DATA") + " from " +
       clientName());
  dropBackend();  // an unfinished message is never completed towards the backend
  reply(replies::timeout(config_.hostname), true);
}

void Dialogue::onTlsEstablished(const tls::PeerFacts& facts) {
  if (!CERTRELAY_ASSERT(phase_ == Phase::TlsHandshake && tls_ == nullptr)) {
    return closeOnBug("TLS established twice");
  }
  tls_ = &facts;
  certificate_ = {facts.certFingerprint, facts.pkeyFingerprint};
  logTlsEstablished(facts);
  // Pre-TLS state was forgotten at STARTTLS (RFC 3207 4.2); nothing is read during the handshake.
  phase_ = Phase::Command;
  if (settings_.listener.tlsMode == config::TlsMode::Implicit) {
    if (draining_) {
      reply(replies::shuttingDown(config_.hostname), true);
      return;
    }
    reply(replies::greeting(config_.hostname));
  }
  host_.armTimer(commandTimeout());
}

void Dialogue::logTlsEstablished(const tls::PeerFacts& facts) {
  info(tls::tlsEstablishedLogLine(clientName(), facts), {{"event", "tls_established"},
                                                         {"tls_protocol", facts.summary.version},
                                                         {"tls_cipher", facts.summary.cipher}});
  if (facts.hasCertificate) {
    info(tls::peerCertificateLogLine(clientName(), facts,
                                     host_.policy()->trustedIdentity(certificate_)),
         {{"event", "client_certificate"},
          {"subject_cn", facts.subjectCn},
          {"issuer_cn", facts.issuerCn},
          {"verified", facts.verified}});
  }
}

}  // namespace certrelay::smtp
