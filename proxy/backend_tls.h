#pragma once
// The proxy's TLS to the backend (backend.tls) for one BackendConnection: a client-side
// tls::Engine, the STARTTLS decision, and the words the log and the failure use. No libuv: bytes
// in, bytes out, so the whole step is unit-tested against an in-memory server.
//
// Security role: with backend.tls set, nothing of the session (XCLIENT or XFORWARD carrying the
// client's identity, the client's commands and message) is written before the handshake
// completed and the backend's certificate verified for the expected name; a backend that does
// not offer STARTTLS, refuses it or fails the handshake fails the connection. There is no
// plaintext fallback. After STARTTLS, what the backend said before TLS is discarded (RFC 3207
// 4.2): the connection sends EHLO again and uses only the capabilities of that reply, and bytes
// the backend sent after its 220 but before the handshake (an injection: a server speaks second
// in TLS) fail the connection.

#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "proxy/backend_set.h"
#include "proxy/smtp/capabilities.h"
#include "tls/client_context.h"
#include "tls/engine.h"

namespace certrelay::proxy {

class Metrics;

// What the set-up does after an EHLO reply of the backend, as far as TLS goes.
enum class StarttlsStep : std::uint8_t {
  Proceed,     // TLS is up already, or the mode does not use STARTTLS: on with the set-up
  Send,        // send STARTTLS now (the EHLO reply offered it)
  NotOffered,  // STARTTLS required and not offered: fail closed (TlsNotOffered)
};
[[nodiscard]] StarttlsStep starttlsStep(config::BackendTlsMode mode, bool tlsActive,
                                        const smtp::Capabilities& offered);

// The name the backend's certificate must carry: backend.tls_server_name when set, else the
// host the address was configured as (a name, or the IP address itself).
[[nodiscard]] std::string tlsPeerName(const config::BackendTls& settings,
                                      const BackendAddress& target);

// Why the backend does not offer STARTTLS, for the log: names Postfix's setting for a backend
// that greets as Postfix.
[[nodiscard]] std::string starttlsHint(const smtp::Capabilities& offered);

class BackendTls {
 public:
  enum class State : std::uint8_t { Handshaking, Established, Failed };

  // A connection to `address` ("10.0.0.7:25") that must present a certificate for `peerName`.
  // `context` null: the first step fails ("no backend TLS context"), never plaintext.
  BackendTls(const tls::ClientContextPtr& context, const std::string& address,
             std::string peerName);
  BackendTls(const BackendTls&) = delete;
  BackendTls& operator=(const BackendTls&) = delete;

  // Starts the handshake: the ClientHello is appended to `wire`.
  State start(std::string& wire);
  // Ciphertext from the backend: decrypted bytes are appended to `plaintext`, bytes the backend
  // must get (handshake messages, alerts, key-update answers) to `wire`.
  State feed(std::string_view ciphertext, std::string& plaintext, std::string& wire);
  // Encrypts `plaintext` now, appending the records to `wire` (during the handshake: once it is
  // done; after a failure: never).
  void send(std::string_view plaintext, std::string& wire);
  // Plaintext that leaves with the next send() (content known to be followed by more).
  void hold(std::string_view plaintext);
  // close_notify after whatever was sent, appended to `wire` (nothing before Established).
  void close(std::string& wire);

  [[nodiscard]] State state() const { return state_; }
  // True exactly once: after the feed() that completed the handshake.
  [[nodiscard]] bool handshakeJustCompleted() { return engine_.handshakeJustCompleted(); }
  [[nodiscard]] bool resumed() const { return engine_.facts().summary.resumed; }
  [[nodiscard]] bool verifyFailed() const { return engine_.verifyFailed(); }
  // The backend sent close_notify: nothing more can be sent or received on this session.
  [[nodiscard]] bool peerClosed() const { return engine_.state() == tls::Engine::State::Closed; }
  // "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits), CN=mx.example verified for
  // mx.example, resumed": for the "backend connection ready" line.
  [[nodiscard]] std::string description() const;
  // Counts how the handshake ended (certrelay_backend_tls_handshakes_total): full or resumed
  // once Established, verify_failed or failed otherwise (a handshake cut short included).
  // `metrics` may be null.
  void count(Metrics* metrics) const;
  // "TLS handshake with 10.0.0.7:25 failed: certificate verify failed: unable to get local
  // issuer certificate (expected name mx.example)".
  [[nodiscard]] std::string failure() const;

 private:
  State settle(tls::Engine::State engineState, std::string& wire);

  std::string address_;
  std::string peerName_;
  std::string setupError_;  // newSsl's refusal, before the engine exists
  tls::Engine engine_;
  State state_ = State::Handshaking;
};

}  // namespace certrelay::proxy
