// Dialogue: the anvil-style per-client limits (Postfix smtpd_client_*_limit), with Postfix's
// replies and log words. The counting itself is the host's (proxy/client_limits.h).

#include <algorithm>

#include "common/text.h"
#include "proxy/smtp/dialogue.h"
#include "proxy/smtp/replies.h"

namespace certrelay::smtp {

void Dialogue::refuseClient(ClientLimit limit, std::uint64_t count) {
  const bool concurrency = limit == ClientLimit::Connections;
  // Postfix: "warning: Connection concurrency limit exceeded: 51 from unknown[192.0.2.1] for
  // service smtp" (anvil counts the refused connection too).
  warn(std::string(concurrency ? "Connection concurrency" : "Connection rate") +
           " limit exceeded: " + std::to_string(count) + " from " + clientName() + " for service " +
           settings_.listener.name,
       {{"event", concurrency ? "client_connections_exceeded" : "client_connection_rate_exceeded"},
        {"count", count}});
  if (settings_.listener.tlsMode == config::TlsMode::Implicit) {
    // As for limits.max_connections: nothing can be said before TLS, and a handshake only to
    // refuse would spend the CPU the limit protects.
    phase_ = Phase::Closing;
    host_.closeClient();
    return;
  }
  reply(replies::tooManyConnectionsFrom(config_.hostname, settings_.peer.addr), true);
}

void Dialogue::onPregreet(std::string_view bytes) {
  // postscreen: "PREGREET 11 after 0.07 from [192.0.2.1]:49430: EHLO x\r\n" (without the time:
  // the dialogue has no clock).
  const std::string_view first = bytes.substr(0, bytes.find('\n'));
  warn("PREGREET " + std::to_string(bytes.size()) + " from " + clientName() + ": " +
           text::sanitizeComment(first, 100),
       {{"event", "pregreet"}, {"size", bytes.size()}});
  // nginx's smtp_greeting_delay and Postfix's smtpd answer the same: a protocol error, and the
  // client's bytes are never read as commands.
  reply(replies::kSyncError, true);
}

void Dialogue::greet() {
  phase_ = Phase::Command;
  if (draining_) {
    reply(replies::shuttingDown(config_.hostname), true);
    return;
  }
  reply(replies::greeting(config_.hostname));
  host_.armTimer(commandTimeout());
}

std::chrono::milliseconds Dialogue::commandTimeout() const {
  const auto& t = config_.timeouts;
  return host_.underStress() ? std::min(t.command, t.commandUnderStress) : t.command;
}

void Dialogue::startContentClock() {
  contentStartMs_ = host_.monotonicMs();
  contentBytes_ = 0;
}

bool Dialogue::contentArrived(std::size_t bytes) {
  const auto inactivity = static_cast<std::uint64_t>(config_.timeouts.data.count());
  const std::uint64_t rate = config_.limits.minDataRate;
  if (rate == 0) {
    host_.armTimer(config_.timeouts.data);  // an inactivity timeout only
    return true;
  }
  // Postfix's smtpd_min_data_rate: the time allowed grows by one second per `rate` bytes.
  contentBytes_ += bytes;
  const std::uint64_t allowed = inactivity + contentBytes_ * 1000 / rate;
  const std::uint64_t elapsed = host_.monotonicMs() - contentStartMs_;
  if (elapsed >= allowed) {
    info("timeout after DATA from " + clientName() + ": " + std::to_string(contentBytes_) +
             " bytes in " + std::to_string(elapsed / 1000) +
             " s, below limits.min_data_rate = " + std::to_string(rate) + " bytes/s",
         {{"event", "min_data_rate"}, {"size", contentBytes_}});
    dropBackend();  // an unfinished message is never completed towards the backend
    reply(replies::timeout(config_.hostname), true);
    return false;
  }
  host_.armTimer(std::chrono::milliseconds(std::min(allowed - elapsed, inactivity)));
  return true;
}

bool Dialogue::admitRate(RateEvent event, const std::string& rcpt) {
  const bool message = event == RateEvent::Message;
  const std::size_t limit =
      message ? config_.limits.clientMessageRate : config_.limits.clientRecipientRate;
  if (limit == 0) {
    return true;
  }
  // Keyed by the listed certificate's identity when there is one (one relay client, however
  // many addresses it sends from), else by the address.
  const std::string identity = listedIdentity();
  const std::string& key = identity.empty() ? settings_.peer.addr : identity;
  const std::uint64_t count = host_.countRate(event, !identity.empty(), key);
  if (count <= limit) {
    return true;
  }
  const std::string who = text::sanitizeComment(key);
  warn(std::string(message ? "Message delivery request" : "Recipient address") +
           " rate limit exceeded: " + std::to_string(count) + " from " + clientName() +
           (identity.empty() ? "" : " (" + who + ")") + " for service " + settings_.listener.name,
       {{"event", message ? "client_message_rate_exceeded" : "client_recipient_rate_exceeded"},
        {"count", count}});
  const std::string refusal =
      message ? replies::tooMuchMailFrom(who) : replies::tooManyRecipientsFrom(who);
  logReject(message ? "MAIL" : "RCPT", refusal, rcpt);
  reject(refusal);
  return false;
}

}  // namespace certrelay::smtp
