// The backend hop's TLS step. See backend_tls.h for the contract and the security role.

#include "proxy/backend_tls.h"

#include <utility>

#include "proxy/metrics.h"
#include "tls/tls_summary.h"

namespace certrelay::proxy {
namespace {

tls::SslPtr newSsl(const tls::ClientContextPtr& context, const std::string& address,
                   const std::string& peerName, std::string& error) {
  if (!context) {
    error = "no backend TLS context";
    return nullptr;
  }
  return context->newSsl(address, peerName, error);
}

}  // namespace

StarttlsStep starttlsStep(config::BackendTlsMode mode, bool tlsActive,
                          const smtp::Capabilities& offered) {
  if (mode != config::BackendTlsMode::Starttls || tlsActive) {
    return StarttlsStep::Proceed;
  }
  return offered.starttls ? StarttlsStep::Send : StarttlsStep::NotOffered;
}

std::string tlsPeerName(const config::BackendTls& settings, const BackendAddress& target) {
  if (!settings.serverName.empty()) {
    return settings.serverName;
  }
  return target.host.empty() ? target.address.host : target.host;
}

std::string starttlsHint(const smtp::Capabilities& offered) {
  return offered.postfix ? "give the backend's smtpd a certificate and smtpd_tls_security_level = "
                           "may or encrypt (backend.tls = starttls)"
                         : "turn STARTTLS on at the backend for the proxy (backend.tls = starttls)";
}

BackendTls::BackendTls(const tls::ClientContextPtr& context, const std::string& address,
                       std::string peerName)
    : address_(address),
      peerName_(std::move(peerName)),
      engine_(context, newSsl(context, address, peerName_, setupError_)) {}

BackendTls::State BackendTls::start(std::string& wire) {
  return settle(engine_.pump(), wire);
}

BackendTls::State BackendTls::feed(std::string_view ciphertext, std::string& plaintext,
                                   std::string& wire) {
  if (state_ == State::Failed) {
    return state_;
  }
  const State state = settle(engine_.pump(ciphertext), wire);  // read in place
  engine_.takePlaintext(plaintext);
  return state;
}

void BackendTls::send(std::string_view plaintext, std::string& wire) {
  // The engine holds it until the handshake is done, and drops it once failed.
  engine_.queuePlaintext(plaintext);
  settle(engine_.pump(), wire);
}

void BackendTls::hold(std::string_view plaintext) {
  engine_.queuePlaintext(plaintext);
}

void BackendTls::close(std::string& wire) {
  if (state_ != State::Established) {
    return;
  }
  engine_.shutdown();
  engine_.takeCiphertext(wire);
}

BackendTls::State BackendTls::settle(tls::Engine::State engineState, std::string& wire) {
  engine_.takeCiphertext(wire);  // an alert too, when it failed
  switch (engineState) {
    case tls::Engine::State::Handshaking:
      state_ = State::Handshaking;
      break;
    case tls::Engine::State::Established:
      state_ = State::Established;
      break;
    case tls::Engine::State::Closed:
      // After the handshake, the backend's close_notify (peerClosed()); the connection ends the
      // session once the replies before it are handled. Before it: a failure.
      state_ = state_ == State::Handshaking ? State::Failed : State::Established;
      break;
    case tls::Engine::State::Failed:
      state_ = State::Failed;
      break;
  }
  return state_;
}

void BackendTls::count(Metrics* metrics) const {
  if (metrics == nullptr) {
    return;
  }
  BackendTlsResult result = BackendTlsResult::Failed;
  if (state_ == State::Established) {
    result = resumed() ? BackendTlsResult::Resumed : BackendTlsResult::Full;
  } else if (verifyFailed()) {
    result = BackendTlsResult::VerifyFailed;
  }
  metrics->backendTlsHandshake(result);
}

std::string BackendTls::description() const {
  const tls::PeerFacts& facts = engine_.facts();
  std::string text = tls::describeTlsParts(facts.summary).cipher;
  if (!facts.subjectCn.empty()) {
    text += ", CN=" + facts.subjectCn;
  }
  text += " verified for " + peerName_;
  if (facts.summary.resumed) {
    text += ", resumed";
  }
  return text;
}

std::string BackendTls::failure() const {
  std::string why = !setupError_.empty() ? setupError_
                    : engine_.error().empty()
                        ? std::string("the backend closed the connection during the handshake")
                        : engine_.error();
  return "TLS handshake with " + address_ + " failed: " + why + " (expected name " + peerName_ +
         ")";
}

}  // namespace certrelay::proxy
