// Dialogue: the backend side. Replies from the backend fill the slots the dialogue reserved, in
// the order the commands went out (owed_). A backend that fails, or answers something that makes
// no sense, turns every owed reply into a 4xx: never a guess, never a 250, never a 5xx it did
// not send.

#include <utility>

#include "common/assert.h"
#include "proxy/smtp/dialogue.h"
#include "proxy/smtp/replies.h"

namespace certrelay::smtp {
namespace {

const char* purposeName(BackendPurpose purpose) {
  switch (purpose) {
    case BackendPurpose::Mail:
      return "MAIL";
    case BackendPurpose::Rcpt:
      return "RCPT";
    case BackendPurpose::Data:
      return "DATA";
    case BackendPurpose::EndOfData:
      return "end of data";
    case BackendPurpose::Bdat:
    case BackendPurpose::BdatLast:
      return "BDAT";
    case BackendPurpose::Rset:
      return "RSET";
    case BackendPurpose::Internal:
      break;
  }
  return "a proxy command";
}

bool isFinal(BackendPurpose purpose) {
  return purpose == BackendPurpose::EndOfData || purpose == BackendPurpose::BdatLast;
}

}  // namespace

bool Dialogue::ensureBackend(bool early) {
  if (backendOpen_) {
    return true;
  }
  ClientIdentity identity;
  identity.addr = settings_.peer.addr;
  identity.port = settings_.peer.port;
  identity.destAddr = settings_.local.addr;
  identity.destPort = settings_.local.port;
  identity.helo = helo_;
  identity.esmtp = esmtp_;
  // LOGIN only for a client whose certificate is listed right now.
  identity.login = listedIdentity();
  identity.name = clientName_;
  backendOpen_ = host_.openBackend(identity, early);
  return backendOpen_;
}

void Dialogue::onClientName(const ClientName& name) {
  if (!CERTRELAY_ASSERT(!nameKnown_)) {
    return;  // one outcome per lookup; a second would change the name under the backend
  }
  nameKnown_ = true;
  clientName_ = name;
  settings_.peer.name = name.verified() ? name.name : std::string();
  logClientName(name);
  if (phase_ == Phase::Closing) {
    return;
  }
  if (std::exchange(openWhenNamed_, false) && phase_ == Phase::Command && tls_ != nullptr) {
    ensureBackend(true);  // what onEhlo() put off
  }
  resumeInput();  // a MAIL that waited for the name
}

void Dialogue::logClientName(const ClientName& name) {
  const std::string_view result = lookupResultKeyword(name.result);
  if (name.result == LookupResult::Confirmed) {
    note(log::Level::Debug, "client name " + clientName() + " (forward-confirmed)",
         {{"event", "client_name"}, {"result", result}});
    return;
  }
  note(name.warning ? log::Level::Warning : log::Level::Debug, name.detail,
       {{"event", "client_name"},
        {"result", result},
        {"ptr_name", name.reverseStatus == NameStatus::Ok ? std::string_view(name.reverseName)
                                                          : std::string_view()}});
}

void Dialogue::dropBackend() {
  openWhenNamed_ = false;  // a backend put off until the name is known is dropped as well
  if (!backendOpen_) {
    return;
  }
  backendOpen_ = false;
  host_.closeBackend();
  // Replies still owed will never come: a closing session may not show them, but every slot
  // gets its answer (and an abandoned end of data its "status unknown" log line).
  failOwed(BackendFailure::Closed);
}

void Dialogue::sendToBackend(std::string_view line, BackendPurpose purpose) {
  sendToBackend(line, purpose, Owed{});
}

void Dialogue::sendToBackend(std::string_view line, BackendPurpose purpose, Owed report) {
  const Ticket ticket = replies_.reserve();
  report.purpose = purpose;
  report.ticket = ticket;
  report.utf8 = transaction_.utf8;
  owed_.push_back(std::move(report));
  host_.backendCommand(line, purpose, ticket);
}

void Dialogue::failOwed(BackendFailure failure) {
  const bool configuration = isConfigurationFailure(failure);
  bool first = true;
  bool dataRefused = false;
  while (!owed_.empty()) {
    const Owed owed = std::move(owed_.front());
    owed_.pop_front();
    if (configuration) {
      if (isFinal(owed.purpose)) {
        report(owed, Outcome::MessageDeferred);  // setup failed: the backend never saw it
      }
      // Never continue under the proxy's own identity: fail closed and hang up.
      fill(owed.ticket,
           first ? replies::backendConfiguration(config_.hostname)
                 : std::string(replies::kBackendUnavailable),
           first);
    } else if (isFinal(owed.purpose)) {
      SentMessage message;
      if (!messageLogs_.empty()) {
        message = std::move(messageLogs_.front());
        messageLogs_.pop_front();
      }
      warn("message status unknown (backend lost after end of data) " + describe(message) +
               "; client told 451",
           {{"event", "message_unknown"},
            {"from", bareAddress(message.from)},
            {"recipients", message.recipients},
            {"size", message.size},
            {"code", 451}});
      report(owed, Outcome::MessageUnknown);
      fill(owed.ticket, replies::kOutcomeUnknown);
    } else {
      dataRefused = dataRefused || owed.purpose == BackendPurpose::Data;
      fill(owed.ticket, replies::kBackendUnavailable);
    }
    first = false;
  }
  messageLogs_.clear();
  if (dataRefused) {
    // DATA was answered 451: the transaction is over, and bytes the client sent behind DATA are
    // content that must never be read as commands.
    resetTransaction();
    if (lines_.buffered() > 0 && phase_ != Phase::Closing) {
      replies_.pushReady(replies::kSyncError, true);
    }
  } else if (transaction_.open || inContent()) {
    transaction_.lost = true;                 // its remaining commands and content get 451
    chunk_.discard = phase_ == Phase::Chunk;  // the rest of this chunk has nowhere to go
  }
}

void Dialogue::refusedProxyLog(const Reply& reply) {
  // Postfix's settings are named only for a backend that greets as Postfix.
  const auto offered = host_.backendCapabilities();
  const bool postfix = offered != nullptr && offered->postfix;
  note(log::Level::Error,
       backendName() + " refused the proxy: " + std::to_string(reply.code) + " " + reply.text() +
           "; the backend must accept the proxy without AUTH" +
           (postfix ? " (check smtpd_authorized_xclient_hosts or mynetworks)" : ""),
       {{"event", "backend_refused_proxy"}, {"code", reply.code}});
}

void Dialogue::lostBackend(BackendFailure failure, std::string_view detail) {
  const bool configuration = isConfigurationFailure(failure);
  note(configuration ? log::Level::Error : log::Level::Warning,
       backendName() + " " + toString(failure) + ": " + std::string(detail),
       {{"event", "backend_lost"}, {"failure", toString(failure)}});
  failOwed(failure);
  flushReplies();
  resumeInput();
}

std::string Dialogue::backendName() const {
  return backendAddress_.empty() ? std::string("backend") : "backend " + backendAddress_;
}

void Dialogue::onBackendReady(const Capabilities&, std::string_view address) {
  backendAddress_ = address;
  // Nothing to do: commands queued before the identity hand-off finished go out now, by the
  // backend connection; what clients are offered comes from the shared, probed capabilities.
}

void Dialogue::onBackendFailure(BackendFailure failure, std::string_view detail,
                                std::string_view address) {
  if (!address.empty()) {
    backendAddress_ = address;
  }
  if (!CERTRELAY_ASSERT(backendOpen_)) {
    return closeOnBug("a failure from a backend that is not open");
  }
  backendOpen_ = false;  // the connection is gone: no closeBackend()
  lostBackend(failure, detail);
}

void Dialogue::onBackendIdle() {
  // Only between transactions with nothing owed either way: the next MAIL sets up a fresh
  // backend session (identity included), so nothing the client did is lost.
  if (phase_ != Phase::Command || transaction_.open || !replies_.empty() || lines_.buffered() > 0 ||
      deferredLine_) {
    return;
  }
  dropBackend();
}

void Dialogue::onBackendReply(BackendPurpose purpose, Ticket ticket, const Reply& reply) {
  if (!CERTRELAY_ASSERT(!owed_.empty() && owed_.front().purpose == purpose &&
                        owed_.front().ticket == ticket)) {
    return closeOnBug("a backend reply out of order");
  }
  const Owed owed = owed_.front();  // a copy: a protocol error fails it with the rest still owed
  switch (classifyBackendReply(purpose, reply, owed.utf8)) {
    case ReplyFit::ProtocolError:
      // Not relayed: the backend's state is unknown from here on. This reply's slot is failed
      // with the others still owed.
      backendOpen_ = false;
      host_.closeBackend();
      lostBackend(BackendFailure::Malformed, std::to_string(reply.code) + " " + reply.text() +
                                                 " in reply to " + purposeName(purpose));
      return;
    case ReplyFit::ProxyRefused:
      owed_.pop_front();
      refusedProxyLog(reply);
      if (isFinal(purpose)) {
        report(owed, Outcome::MessageDeferred);  // the client is told 421
      }
      fill(ticket, replies::backendRefusedProxy(config_.hostname), true);
      dropBackend();
      flushReplies();
      return;
    case ReplyFit::Closing:
      owed_.pop_front();
      warn("backend closing the session: " + std::to_string(reply.code) + " " + reply.text(),
           {{"event", "backend_closing"}, {"code", reply.code}, {"reply", reply.text()}});
      reportReply(owed, reply.code);
      fill(ticket, reply.wire(), true);
      dropBackend();
      flushReplies();
      return;
    case ReplyFit::Relay:
      break;
  }
  owed_.pop_front();
  if (purpose == BackendPurpose::Data) {
    onDataReply(ticket, reply);
  } else {
    if ((purpose == BackendPurpose::Mail || purpose == BackendPurpose::Rcpt) && !reply.positive()) {
      // The backend's refusal, relayed: logged as Postfix logs its own, with its words.
      logReject(purpose == BackendPurpose::Mail ? "MAIL" : "RCPT",
                std::to_string(reply.code) + " " + reply.text(), owed.rcpt);
    }
    if (purpose == BackendPurpose::Mail && !reply.positive()) {
      transaction_.open = false;
    }
    if (isFinal(purpose)) {
      logFinalReply(reply);
    }
    reportReply(owed, reply.code);
    fill(ticket, reply.wire());
  }
  flushReplies();
  resumeInput();
}

void Dialogue::onDataReply(Ticket ticket, const Reply& reply) {
  transaction_.awaiting354 = false;
  if (reply.code != 354) {
    resetTransaction();
    fill(ticket, reply.wire());
    if (lines_.buffered() > 0) {
      // The client sent content without waiting for 354 and DATA failed: those bytes must never
      // be read as commands (Postfix >= 3.9 answers the same and hangs up).
      replies_.pushReady(replies::kSyncError, true);
    }
    return;
  }
  fill(ticket, reply.wire());
  data_.reset();
  phase_ = Phase::Data;
  if (config_.backend.receivedHeader) {
    // The proxy's Received header is the first thing in the message. It waits for the client's
    // first content bytes so that both reach the backend in one write.
    host_.backendContent(receivedHeader(), ContentTiming::WithNextWrite);
    transaction_.headerSent = true;
  }
  startContentClock();
  host_.armTimer(config_.timeouts.data);
}

void Dialogue::reportReply(const Owed& owed, int code) {
  const bool accepted = code / 100 == 2;
  if (owed.purpose == BackendPurpose::Rcpt) {
    report(owed, !accepted      ? Outcome::RcptBackendRejected
                 : owed.relayed ? Outcome::RcptRelayed
                                : Outcome::RcptLocal);
  } else if (isFinal(owed.purpose)) {
    report(owed, accepted          ? Outcome::MessageAccepted
                 : code / 100 == 5 ? Outcome::MessageRejected
                                   : Outcome::MessageDeferred);
  }
}

void Dialogue::logFinalReply(const Reply& reply) {
  SentMessage message;
  if (CERTRELAY_ASSERT(!messageLogs_.empty())) {
    message = std::move(messageLogs_.front());
    messageLogs_.pop_front();
  }
  const std::string text = reply.text();
  info(std::string(reply.positive() ? "message accepted by backend: "
                                    : "message refused by backend: ") +
           describe(message) + ": " + std::to_string(reply.code) + " " + text,
       {{"event", reply.positive() ? "message_accepted" : "message_refused"},
        {"from", bareAddress(message.from)},
        {"recipients", message.recipients},
        {"size", message.size},
        {"code", reply.code},
        {"reply", text}});
}

void Dialogue::resumeInput() {
  if (phase_ == Phase::Command && deferredLine_ && replies_.unfilled() == 0) {
    const std::string line = std::move(*deferredLine_);
    deferredLine_.reset();
    handleLine(line);
  }
  processInput();
  closeIfDrainedIdle();
}

bool Dialogue::messageInFlight() const {
  if (phase_ == Phase::Data || phase_ == Phase::Chunk) {
    return true;
  }
  for (const Owed& owed : owed_) {
    if (isFinal(owed.purpose)) {
      return true;
    }
  }
  return false;
}

void Dialogue::closeIfDrainedIdle() {
  if (draining_ && phase_ == Phase::Pregreet) {
    phase_ = Phase::Command;  // not greeted yet: 421 instead of the greeting
  }
  if (draining_ && phase_ == Phase::Command && replies_.empty() && !transaction_.open &&
      lines_.buffered() == 0 && !deferredLine_) {
    reply(replies::shuttingDown(config_.hostname), true);
  }
}

}  // namespace certrelay::smtp
