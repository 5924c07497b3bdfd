// Dialogue: message content. DATA is rewritten into a canonical stream; BDAT chunks are
// forwarded by count. Content whose backend is gone is read to its end and dropped, then
// answered 451: it is never read as commands and never reported delivered.

#include "common/assert.h"
#include "proxy/smtp/dialogue.h"
#include "proxy/smtp/received_header.h"
#include "proxy/smtp/replies.h"

namespace certrelay::smtp {

void Dialogue::onBdat(const Command& command) {
  std::uint64_t size = 0;
  bool last = false;
  if (parseBdatArgument(command.argument, size, last) != BdatError::None) {
    // Without a count the chunk cannot be skipped: it must never be read as commands.
    ++errors_;
    reply(replies::kBdatSyntax, true);
    return;
  }
  const auto capabilities = host_.backendCapabilities();
  if (capabilities == nullptr || !capabilities->chunking) {
    // CHUNKING is not offered: the chunk that follows must never be read as commands.
    ++errors_;
    reply(replies::kNotImplemented, true);
    return;
  }
  chunk_ = Chunk{size, last, false};
  phase_ = Phase::Chunk;
  startContentClock();
  // RFC 3030: a refused BDAT's chunk is still read (and dropped); the session goes on.
  if (!transaction_.open) {
    chunk_.discard = true;
    reject(replies::kNeedMail);
  } else if (transaction_.lost) {
    chunk_.discard = true;
    if (last) {
      // The message ends here, and its 451 is this one (BDAT LAST with no backend).
      host_.outcome(Outcome::MessageDeferred, reportIdentity(), chunkedBytes_ + size);
    }
    reply(replies::kBackendUnavailable);
  } else if (transaction_.forwarded == 0) {
    chunk_.discard = true;
    const std::string_view refusal =
        transaction_.recipients == 0 ? replies::kNeedRcpt : replies::kNoValidRecipients;
    logReject("BDAT", refusal, {});
    reject(refusal);
  } else {
    transaction_.bdat = true;
    if (!transaction_.headerSent && config_.backend.receivedHeader) {
      // The proxy's Received header travels as its own leading chunk.
      const std::string header = receivedHeader();
      host_.backendCommand("BDAT " + std::to_string(header.size()), BackendPurpose::Internal, 0);
      host_.backendContent(header, ContentTiming::Now);
      transaction_.headerSent = true;
    }
    chunkedBytes_ += size;
    // The message's bytes and identity wait for the final reply, to be reported with it.
    sendToBackend("BDAT " + std::to_string(size) + (last ? " LAST" : ""),
                  last ? BackendPurpose::BdatLast : BackendPurpose::Bdat,
                  last ? Owed{.bytes = chunkedBytes_, .identity = reportIdentity()} : Owed{});
    if (last) {
      messageLogs_.push_back(
          SentMessage{transaction_.from, transaction_.recipients, chunkedBytes_, true});
    }
  }
  if (phase_ == Phase::Chunk && chunk_.remaining == 0) {
    consumeChunk({});
  }
}

void Dialogue::consumeChunk(std::string_view bytes) {
  if (!CERTRELAY_ASSERT(phase_ == Phase::Chunk && bytes.size() <= chunk_.remaining)) {
    return closeOnBug("chunk bytes outside a chunk");
  }
  if (!chunk_.discard) {
    host_.backendContent(bytes, ContentTiming::Now);
  }
  chunk_.remaining -= bytes.size();
  if (chunk_.remaining > 0) {
    return;
  }
  phase_ = Phase::Command;
  host_.armTimer(commandTimeout());
  if (chunk_.last && !chunk_.discard) {
    ++messages_;
    info("end of BDAT from " + clientName() + ": from=" + transaction_.from);
    resetTransaction();
  } else if (chunk_.last && transaction_.lost) {
    resetTransaction();  // the 451 was given at the BDAT: this transaction is over
  }
  chunk_ = Chunk{};
}

void Dialogue::consumeData(std::string_view bytes) {
  // Content of a transaction whose backend is gone is still read to its end, into scratch_,
  // and dropped there.
  std::string* direct = transaction_.lost ? nullptr : host_.backendContentBuffer();
  std::string& out = direct != nullptr ? *direct : scratch_;
  if (direct == nullptr) {
    scratch_.clear();
  }
  const std::size_t before = out.size();
  const std::size_t used = data_.feed(bytes, out);
  if (data_.done() && !transaction_.lost) {
    data_.finish(out);
  }
  if (direct != nullptr) {
    host_.backendContentAppended(out.size() - before);
  }
  if (!data_.done()) {
    if (direct == nullptr && !transaction_.lost) {
      host_.backendContent(scratch_, ContentTiming::Now);
    }
    return;
  }
  // The terminator is in `out` already: what is left for backendEndContent() is scratch_'s
  // content, or nothing when it went to the backend's buffer in place.
  endData(used, bytes, direct != nullptr ? std::string_view() : std::string_view(scratch_));
}

void Dialogue::endData(std::size_t used, std::string_view bytes, std::string_view lastBytes) {
  if (!transaction_.lost) {
    const Ticket ticket = replies_.reserve();
    owed_.push_back(Owed{BackendPurpose::EndOfData, ticket, transaction_.utf8, false,
                         data_.contentBytes(), reportIdentity()});
    host_.backendEndContent(lastBytes, ticket);
    ++messages_;
    // Logged with the backend's verdict: one line per message.
    messageLogs_.push_back(
        SentMessage{transaction_.from, transaction_.recipients, data_.contentBytes(), false});
  } else {
    const SentMessage message{transaction_.from, transaction_.recipients, data_.contentBytes(),
                              false};
    info("end of data from " + clientName() + ": " + describe(message) +
             " (discarded: backend lost)",
         {{"event", "message_discarded"},
          {"from", bareAddress(message.from)},
          {"recipients", message.recipients},
          {"size", message.size}});
    host_.outcome(Outcome::MessageDeferred, reportIdentity(), data_.contentBytes());
    reply(replies::kDataLost);
  }
  resetTransaction();
  if (phase_ == Phase::Data) {
    phase_ = Phase::Command;
    host_.armTimer(commandTimeout());
  }
  if (used < bytes.size()) {
    lines_.feed(bytes.substr(used));  // pipelined commands after the final dot
  }
}

std::string Dialogue::receivedHeader() const {
  ReceivedInfo info;
  info.helo = helo_;
  info.clientAddr = settings_.peer.addr;
  info.clientName = settings_.peer.name;
  info.esmtp = esmtp_;
  info.utf8 = transaction_.utf8;
  if (tls_ != nullptr) {
    info.tls = true;
    info.tlsSummary = tls_->summary;
    info.hasCertificate = tls_->hasCertificate;
    info.subjectCn = tls_->subjectCn;
    info.issuerCn = tls_->issuerCn;
    info.verified = tls_->verified;
    info.digestName = tls_->digestName;
    info.certFingerprint = tls_->certFingerprint;
  }
  info.identity = listedIdentity();
  info.trusted = !info.identity.empty();
  info.hostname = config_.hostname;
  info.id = messageId();
  info.singleRecipient = transaction_.forwarded == 1 ? transaction_.firstRecipient : std::string();
  info.when = host_.wallClock();
  return buildReceivedHeader(info);
}

}  // namespace certrelay::smtp
