#pragma once
// A scripted host for smtp::Dialogue: records every action as one readable transcript line and
// plays the backend by hand. Shared by the transcript tests and the dialogue fuzz target.
//
// Transcript lines:
//   C< 250 2.0.0 Ok              a reply line for the client (one per line of the wire)
//   tls                          start TLS (the 220 went out before it)
//   close                        close the client connection after what was sent
//   B open login=<identity>      open a backend connection (XCLIENT LOGIN= as given)
//   B close                      close the backend connection
//   B> RCPT TO:<a@b>             a command for the backend
//   B> +<content>                content for the backend (CR LF shown as \r\n), "(held)" when it
//                                waits for the next write
//   B> end <content>             the last content bytes, ending with the terminator
// Log lines and timers are kept apart (logs, timer).

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "policy/relay_policy.h"
#include "proxy/smtp/dialogue.h"
#include "proxy/smtp/reply.h"

namespace certrelay::smtp::testing {

// A listed certificate and its identity in every script's table.
inline constexpr std::string_view kTrustedFingerprint =
    "AA00000000000000000000000000000000000000000000000000000000000001";
inline constexpr std::string_view kTrustedIdentity = "client.example";

inline std::string escape(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

inline config::Config scriptConfig() {
  config::Config config;
  config.hostname = "mx.test";
  config.backend.addresses = {config::Endpoint{"127.0.0.1", 2525}};
  config.backend.heloName = "mx.test";
  config.policy.localDomains = {"local.example"};
  config.limits.maxErrors = 5;
  config.limits.maxRecipients = 3;
  config.limits.maxLineLength = 100;
  config.limits.highWatermark = 1024;
  config.timeouts.command = std::chrono::milliseconds(300'000);
  config.timeouts.data = std::chrono::milliseconds(180'000);
  config.timeouts.tlsHandshake = std::chrono::milliseconds(60'000);
  return config;
}

inline Capabilities scriptCapabilities() {
  Capabilities caps;
  caps.pipelining = true;
  caps.size = 10'000'000;
  caps.eightBitMime = true;
  caps.smtpUtf8 = true;
  caps.dsn = true;
  caps.enhancedStatusCodes = true;
  caps.chunking = true;
  return caps;
}

class Script final : public DialogueHost {
 public:
  struct Owed {
    BackendPurpose purpose;
    Ticket ticket;
  };

  // `nameLookup`: a reverse lookup runs (DialogueSettings::nameLookup); its outcome comes with
  // clientName().
  explicit Script(config::Config configuration = scriptConfig(), bool requireTls = false,
                  bool nameLookup = false)
      : config_(std::move(configuration)) {
    listener_.name = "smtp";
    listener_.requireTls = requireTls;
    config::Policy settings;
    settings.localDomains = config_.policy.localDomains;
    policy_ = policy::buildPolicy(
        settings, policy::FingerprintTable::parse(
                      std::string(kTrustedFingerprint) + " " + std::string(kTrustedIdentity) + "\n",
                      "script"));
    capabilities_ = std::make_shared<const Capabilities>(scriptCapabilities());
    dialogue_ = std::make_unique<Dialogue>(
        DialogueSettings{
            config_, listener_, "S1", {"192.0.2.7", 40000, {}}, {"192.0.2.1", 25, {}}, nameLookup},
        *this);
  }

  Dialogue& dialogue() { return *dialogue_; }
  const config::Config& config() const { return config_; }
  // The listener the dialogue reads its settings from: change it before start().
  config::Listener& listener() { return listener_; }

  // --- driving ---
  void start(bool overLimit = false, bool draining = false) {
    dialogue_->start(overLimit, draining);
  }
  void client(std::string_view bytes) { dialogue_->onClientBytes(bytes); }
  // The reverse lookup's outcome.
  void clientName(const ClientName& name) { dialogue_->onClientName(name); }
  // One backend reply to the oldest owed command: "250 2.1.0 Ok", or several lines joined by
  // "\r\n" for a multi-line reply.
  void backend(std::string_view replyText) {
    ReplyParser parser;
    parser.feed(std::string(replyText) + "\r\n");
    Reply reply;
    if (parser.next(reply) != ReplyParser::Result::Reply || owed_.empty()) {
      throw std::logic_error("script error: no reply owed, or a malformed one");
    }
    const Owed owed = owed_.front();
    owed_.pop_front();
    dialogue_->onBackendReply(owed.purpose, owed.ticket, reply);
  }
  void backendFails(BackendFailure failure = BackendFailure::Closed) {
    backendOpen_ = false;
    owed_.clear();
    dialogue_->onBackendFailure(failure, "scripted");
  }
  // The handshake completes with these facts (the certificate listed or not).
  void tlsEstablished(bool listedCertificate) {
    facts_.summary.version = "TLSv1.3";
    facts_.summary.cipher = "TLS_AES_256_GCM_SHA384";
    facts_.summary.cipherBits = 256;
    facts_.summary.cipherAlgBits = 256;
    facts_.hasCertificate = listedCertificate;
    facts_.certFingerprint = listedCertificate ? std::string(kTrustedFingerprint) : "";
    dialogue_->onTlsEstablished(facts_);
  }

  // --- reading the transcript ---
  // Everything recorded since the last take().
  std::string take() { return std::exchange(transcript_, {}); }
  // Content goes into a write buffer in place (DialogueHost::backendContentBuffer) while the
  // backend is open, as with a plaintext backend connection.
  void contentInPlace(bool on) { inPlace_ = on; }
  std::size_t inPlaceAppends() const { return inPlaceAppends_; }
  // Every content byte the backend was given so far (DATA or BDAT, held, in place, the end).
  const std::string& contentWire() const { return contentWire_; }
  const std::vector<std::string>& logs() const { return logs_; }
  // The fields of the first log line containing `part` (key -> value as text); empty when no
  // line has it. Fields are recorded only while log::structured() (JSON) holds.
  std::map<std::string, std::string> fieldsOf(std::string_view part) const {
    for (std::size_t i = 0; i < logs_.size(); ++i) {
      if (logs_[i].find(part) != std::string::npos) {
        return logFields_[i];
      }
    }
    return {};
  }
  bool logged(std::string_view part) const {
    for (const auto& line : logs_) {
      if (line.find(part) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
  std::chrono::milliseconds timer() const { return timer_; }
  bool backendOpen() const { return backendOpen_; }
  bool closed() const { return closed_; }
  const std::deque<Owed>& owed() const { return owed_; }
  // The oldest owed reply is being answered by hand (a raw reply the test builds itself).
  void popOwed() { owed_.pop_front(); }
  // Every byte the client was sent, in order.
  const std::string& clientWire() const { return clientWire_; }
  // The outcomes reported since the last takeOutcomes(), one line each: "rcpt local",
  // "message accepted bytes=21 identity=client.example".
  std::string takeOutcomes() { return std::exchange(outcomes_, {}); }

  // --- DialogueHost ---
  void sendToClient(std::string_view wire) override {
    clientWire_.append(wire);
    std::size_t start = 0;
    while (start < wire.size()) {
      const std::size_t end = wire.find("\r\n", start);
      const std::size_t stop = end == std::string_view::npos ? wire.size() : end;
      transcript_ += "C< " + escape(wire.substr(start, stop - start)) + "\n";
      start = end == std::string_view::npos ? wire.size() : end + 2;
    }
  }
  void startTls() override { transcript_ += "tls\n"; }
  void armTimer(std::chrono::milliseconds timeout) override { timer_ = timeout; }
  void closeClient() override {
    transcript_ += "close\n";
    closed_ = true;
  }
  bool openBackend(const ClientIdentity& identity, bool early) override {
    if (early ? !backendEarly_ : !backendAvailable_) {
      transcript_ += std::string("B refused") + (early ? " (early)" : "") + "\n";
      return false;
    }
    transcript_ += "B open login=" + identity.login + "\n";
    backendOpen_ = true;
    identity_ = identity;
    return true;
  }
  // What the last backend opened was told (XCLIENT's attributes come from it).
  const ClientIdentity& identity() const { return identity_; }
  // backend.max_connections as the host sees it: whether a backend may be opened early (at
  // EHLO) and at all (at MAIL).
  void setBackendSlots(bool early, bool available) {
    backendEarly_ = early;
    backendAvailable_ = available;
  }
  void closeBackend() override {
    transcript_ += "B close\n";
    backendOpen_ = false;
    owed_.clear();
  }
  void backendCommand(std::string_view line, BackendPurpose purpose, Ticket ticket) override {
    transcript_ += "B> " + std::string(line) + "\n";
    if (purpose != BackendPurpose::Internal) {
      owed_.push_back(Owed{purpose, ticket});
    }
  }
  void backendMail(std::string_view line, Ticket ticket, std::string_view,
                   std::string_view) override {
    transcript_ += "B> " + std::string(line) + "\n";
    owed_.push_back(Owed{BackendPurpose::Mail, ticket});
  }
  void backendContent(std::string_view bytes, ContentTiming timing) override {
    if (bytes.empty()) {
      return;
    }
    contentWire_.append(bytes);
    transcript_ +=
        "B> +" + escape(bytes) + (timing == ContentTiming::WithNextWrite ? " (held)" : "") + "\n";
  }
  std::string* backendContentBuffer() override {
    if (!inPlace_ || !backendOpen_) {
      return nullptr;
    }
    // Bytes already in a real write buffer stay: the dialogue must only append.
    writeBuffer_ = "[earlier bytes]";
    return &writeBuffer_;
  }
  void backendContentAppended(std::size_t bytes) override {
    constexpr std::size_t kEarlier = sizeof("[earlier bytes]") - 1;
    if (!inPlace_ || writeBuffer_.compare(0, kEarlier, "[earlier bytes]") != 0 ||
        writeBuffer_.size() != kEarlier + bytes) {
      throw std::logic_error("in-place content: not appended as reported");
    }
    const std::string_view appended = std::string_view(writeBuffer_).substr(kEarlier);
    ++inPlaceAppends_;
    if (!appended.empty()) {
      contentWire_.append(appended);
      transcript_ += "B> +" + escape(appended) + " (in place)\n";
    }
    writeBuffer_.clear();
  }
  void backendEndContent(std::string_view lastBytes, Ticket ticket) override {
    contentWire_.append(lastBytes);
    transcript_ += "B> end " + escape(lastBytes) + "\n";
    owed_.push_back(Owed{BackendPurpose::EndOfData, ticket});
  }
  void log(log::Level, std::string_view message, std::span<const log::Field> fields) override {
    logs_.emplace_back(message);
    auto& recorded = logFields_.emplace_back();
    for (const log::Field& field : fields) {
      recorded[std::string(field.key)] = fieldText(field);
    }
  }
  static std::string fieldText(const log::Field& field) {
    switch (field.kind) {
      case log::Field::Kind::Text:
        return std::string(field.text);
      case log::Field::Kind::Bool:
        return field.number != 0 ? "true" : "false";
      case log::Field::Kind::Signed:
        return std::to_string(static_cast<std::int64_t>(field.number));
      case log::Field::Kind::Unsigned:
        return std::to_string(field.number);
    }
    return {};
  }
  std::shared_ptr<const policy::Policy> policy() override { return policy_; }
  std::shared_ptr<const Capabilities> backendCapabilities() override { return capabilities_; }
  std::time_t wallClock() override { return 1'800'000'000; }
  std::uint64_t monotonicMs() override { return nowMs_; }
  bool underStress() override { return stress_; }
  void setStress(bool stress) { stress_ = stress; }
  // Moves the monotonic clock on (limits.min_data_rate).
  void advance(std::chrono::milliseconds by) { nowMs_ += static_cast<std::uint64_t>(by.count()); }
  // Counts per (event, kind, key) with no window: the dialogue's side of the rate limits.
  std::uint64_t countRate(RateEvent event, bool identity, std::string_view key) override {
    if (rateExempt_) {
      return 0;
    }
    return ++rates_[std::to_string(static_cast<int>(event)) + (identity ? "i:" : "a:") +
                    std::string(key)];
  }
  // The client is exempt from the rate limits (countRate says 0).
  void setRateExempt(bool exempt) { rateExempt_ = exempt; }
  void outcome(Outcome what, std::string_view identity, std::uint64_t bytes) override {
    static constexpr const char* kNames[] = {
        "rcpt relayed",     "rcpt local",       "rcpt relay_denied", "rcpt backend_rejected",
        "message accepted", "message rejected", "message deferred",  "message unknown",
    };
    std::string line = kNames[static_cast<std::size_t>(what)];
    if (what >= Outcome::MessageAccepted) {
      line += " bytes=" + std::to_string(bytes);
    }
    if (!identity.empty()) {
      line += " identity=" + std::string(identity);
    }
    outcomes_ += line + "\n";
  }

  void setCapabilities(const Capabilities& capabilities) {
    capabilities_ = std::make_shared<const Capabilities>(capabilities);
  }

 private:
  config::Config config_;
  config::Listener listener_;
  std::shared_ptr<const policy::Policy> policy_;
  std::shared_ptr<const Capabilities> capabilities_;
  tls::PeerFacts facts_;
  std::unique_ptr<Dialogue> dialogue_;
  std::string transcript_;
  std::string contentWire_;  // every content byte for the backend, in order, however it went
  bool inPlace_ = false;     // backendContentBuffer() offers writeBuffer_
  std::string writeBuffer_;
  std::size_t inPlaceAppends_ = 0;
  std::string clientWire_;
  std::string outcomes_;
  std::vector<std::string> logs_;
  std::vector<std::map<std::string, std::string>> logFields_;  // one per line of logs_
  std::deque<Owed> owed_;
  std::chrono::milliseconds timer_{0};
  ClientIdentity identity_;
  bool backendOpen_ = false;
  bool closed_ = false;
  bool rateExempt_ = false;
  bool stress_ = false;
  std::uint64_t nowMs_ = 1'000'000;
  bool backendEarly_ = true;
  bool backendAvailable_ = true;
  std::map<std::string, std::uint64_t> rates_;
};

}  // namespace certrelay::smtp::testing
