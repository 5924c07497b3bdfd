// Session: the backend side. Replies from the backend fill the slots the dialogue reserved; a
// backend that fails turns every owed reply into a 4xx (never a guess, never a 250).

#include <utility>

#include "proxy/log.h"
#include "proxy/smtp/replies.h"
#include "proxy/session.h"
#include "proxy/worker.h"

namespace certrelay::proxy {

void Session::ensureBackend() {
  if (backend_ != nullptr) {
    return;
  }
  smtp::ClientIdentity identity;
  identity.addr = peer_.addr;
  identity.port = peer_.port;
  identity.destAddr = local_.addr;
  identity.destPort = local_.port;
  identity.helo = helo_;
  identity.esmtp = esmtp_;
  // LOGIN only for a client whose certificate is listed right now (a client trusted by its
  // network has no identity to give).
  std::string login;
  if (trusted(&login) && !login.empty()) {
    identity.login = login;
  }
  backend_ = BackendConnection::start(worker_.loop(), config_, this,
                                      BackendConnection::Mode::Session, std::move(identity), id_);
}

void Session::dropBackend() {
  if (backend_ != nullptr) {
    std::exchange(backend_, nullptr)->detachAndClose();
  }
  messageLogs_.clear();  // their replies will never come
}

void Session::onBackendReady(const smtp::Capabilities&) {}

void Session::onBackendIdle() {
  // Only between transactions with nothing owed either way: the next MAIL sets up a fresh
  // backend session (identity included), so nothing the client did is lost. Every reply the
  // backend still owes (DATA's 354, a BDAT chunk's, the end of data's) holds a slot in replies_.
  if (phase_ != Phase::Command || mailOpen_ || !replies_.empty() || lines_.buffered() > 0) {
    return;
  }
  dropBackend();
}

void Session::onBackendReply(BackendPurpose purpose, std::uint64_t tag, smtp::Reply& reply) {
  // 421 from the backend means it is closing: relay it and end the client session too.
  const bool closing = reply.code == 421;
  switch (purpose) {
    case BackendPurpose::Mail:
      if (!reply.positive()) {
        mailOpen_ = false;
      }
      break;
    case BackendPurpose::Data:
      awaitingDataReply_ = false;
      if (reply.code == 354 && phase_ == Phase::Closing) {
        // The session already decided to close: no content will follow, abort the backend's.
        replies_.fill(tag, replies::kBackendUnavailable);
        dropBackend();
        flushReplies();
        return;
      }
      if (reply.code == 354 && !closing) {
        replies_.fill(tag, reply.wire());
        data_.reset();
        phase_ = Phase::Data;
        if (config_.backend.receivedHeader && backend_ != nullptr) {
          // The proxy's Received header is the first thing in the message. It waits for the
          // client's first content bytes so that both reach the backend in one write.
          backend_->holdContent(receivedHeader());
          headerSent_ = true;
        }
        armClientTimer(config_.timeouts.data);
        flushReplies();
        resumeInput();
        return;
      }
      resetTransaction();
      if (lines_.buffered() > 0) {
        // The client sent content without waiting for 354 and DATA failed: those bytes must
        // never be read as commands (Postfix >= 3.9 answers the same and hangs up).
        replies_.fill(tag, reply.wire());
        replies_.pushReady(replies::kSyncError, true);
        flushReplies();
        return;
      }
      break;
    case BackendPurpose::EndOfData:
    case BackendPurpose::BdatLast: {
      std::string envelope;
      if (!messageLogs_.empty()) {
        envelope = std::move(messageLogs_.front()) + ": ";
        messageLogs_.pop_front();
      }
      log::line(log::Level::Info, id_,
                std::string(reply.positive() ? "message accepted by backend: "
                                             : "message refused by backend: ") +
                    envelope + std::to_string(reply.code) + " " + reply.text());
      break;
    }
    case BackendPurpose::Rcpt:
    case BackendPurpose::Bdat:
    case BackendPurpose::Internal:
    case BackendPurpose::Rset:
    case BackendPurpose::Noop:
    case BackendPurpose::Quit:
      break;
  }
  replies_.fill(tag, reply.wire(), closing);
  if (closing) {
    log::line(log::Level::Warning, id_,
              "backend closing the session: " + std::to_string(reply.code) + " " + reply.text());
    dropBackend();
  }
  flushReplies();
  resumeInput();
}

void Session::onBackendFailure(BackendFailure failure, const std::string& detail,
                               const std::vector<BackendConnection::Outstanding>& outstanding) {
  backend_ = nullptr;
  const bool configuration =
      failure == BackendFailure::XclientNotOffered || failure == BackendFailure::XclientRefused;
  log::line(
      configuration ? log::Level::Error : log::Level::Warning, id_,
      "backend " + config_.backend.address.toString() + " " + toString(failure) + ": " + detail);
  bool first = true;
  for (const auto& owed : outstanding) {
    if (configuration) {
      // Never continue under the proxy's own identity: fail closed and hang up.
      replies_.fill(owed.tag,
                    first ? replies::backendConfiguration(config_.hostname)
                          : std::string(replies::kBackendUnavailable),
                    first);
    } else if (owed.purpose == BackendPurpose::EndOfData ||
               owed.purpose == BackendPurpose::BdatLast) {
      std::string envelope;
      if (!messageLogs_.empty()) {
        envelope.append(" ").append(messageLogs_.front());  // (" " + std::move: GCC 12 -Wrestrict)
        messageLogs_.pop_front();
      }
      log::line(log::Level::Warning, id_,
                "message status unknown (backend lost after end of data)" + envelope +
                    "; client told 451");
      replies_.fill(owed.tag, replies::kOutcomeUnknown);
    } else {
      replies_.fill(owed.tag, replies::kBackendUnavailable);
    }
    first = false;
  }
  resetTransaction();
  if (phase_ == Phase::Data) {
    // The client is still sending content: read it to its end, then say it was not delivered.
    phase_ = Phase::DataDiscard;
  }
  if (chunkRemaining_ > 0) {
    chunkDiscard_ = true;  // the rest of this BDAT chunk has nowhere to go
  }
  flushReplies();
  resumeInput();
}

void Session::onBackendWritable() {
  updateReading();
}

}  // namespace certrelay::proxy
