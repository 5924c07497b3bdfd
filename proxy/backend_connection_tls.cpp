// BackendConnection: the TLS steps of the set-up (backend.tls). STARTTLS after the first EHLO
// (starttls) or the handshake right after connect (implicit), then EHLO again inside TLS; every
// byte from then on goes through BackendTls (proxy/backend_tls.h, which has the security role).

#include <memory>
#include <string>
#include <string_view>

#include "proxy/backend_connection.h"

namespace certrelay::proxy {

bool BackendConnection::startTlsIfNeeded() {
  switch (starttlsStep(config_.backend.tls.mode, tls_ != nullptr, capabilities_)) {
    case StarttlsStep::Proceed:
      return false;
    case StarttlsStep::NotOffered:
      fail(BackendFailure::TlsNotOffered,
           "the backend's EHLO reply has no STARTTLS; " + starttlsHint(capabilities_));
      return true;
    case StarttlsStep::Send:
      break;
  }
  phase_ = Phase::Starttls;
  armTimer(config_.timeouts.backendReply);
  write("STARTTLS\r\n");
  return true;
}

void BackendConnection::onStarttlsReply(const smtp::Reply& reply) {
  if (reply.code != 220) {
    fail(BackendFailure::TlsFailed, "backend refused STARTTLS: " + reply.text());
    return;
  }
  if (parser_.buffered() > 0) {
    // A server speaks second in TLS: these bytes are not the handshake, they are plaintext that
    // would otherwise pass for the backend's answers after TLS (CVE-2011-0411 class).
    fail(BackendFailure::Malformed, "backend sent " + std::to_string(parser_.buffered()) +
                                        " bytes after its 220 to STARTTLS, before TLS");
    return;
  }
  beginTls();
}

void BackendConnection::beginTls() {
  tls_ = std::make_unique<BackendTls>(tlsContext_, address(),
                                      tlsPeerName(config_.backend.tls, targets_[attempt_]));
  if (phase_ == Phase::Starttls) {
    armTimer(config_.timeouts.backendConnect);  // implicit: the connect timer still runs
  }
  phase_ = Phase::TlsHandshake;
  if (tls_->start(out_) == BackendTls::State::Failed) {
    onTlsFailed();
    return;
  }
  flushOut();  // the ClientHello
}

bool BackendConnection::readTls(std::string_view ciphertext) {
  std::string plaintext;
  const BackendTls::State state = tls_->feed(ciphertext, plaintext, out_);
  if (state == BackendTls::State::Failed) {
    flushOut();  // the alert, best effort
    onTlsFailed();
    return false;
  }
  if (tls_->handshakeJustCompleted()) {
    onTlsEstablished();  // with starttls, EHLO joins the client Finished in one write
  }
  flushOut();
  parser_.feed(plaintext);
  return phase_ != Phase::Closing;
}

void BackendConnection::onTlsEstablished() {
  tls_->count(metrics_);
  if (config_.backend.tls.mode == config::BackendTlsMode::Implicit) {
    phase_ = Phase::Greeting;
    return;
  }
  // RFC 3207 4.2: nothing learned before TLS counts; the set-up starts over with EHLO.
  capabilities_ = smtp::Capabilities{};
  phase_ = Phase::ProxyEhlo;
  armTimer(config_.timeouts.backendReply);
  write("EHLO " + config_.backend.heloName + "\r\n");
}

void BackendConnection::onTlsFailed() {
  tls_->count(metrics_);
  fail(BackendFailure::TlsFailed, tls_->failure());
}

}  // namespace certrelay::proxy
