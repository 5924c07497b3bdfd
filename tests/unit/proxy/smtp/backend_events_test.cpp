#include "proxy/smtp/backend_events.h"

#include <doctest/doctest.h>

namespace certrelay::smtp {
namespace {

Reply reply(int code, std::string text = "text") {
  Reply r;
  r.code = code;
  r.lines.push_back(std::move(text));
  return r;
}

TEST_SUITE("smtp") {
  TEST_CASE("backend reply fit: 4xx and 5xx answer any command") {
    for (const auto purpose : {BackendPurpose::Mail, BackendPurpose::Rcpt, BackendPurpose::Data,
                               BackendPurpose::EndOfData, BackendPurpose::Bdat,
                               BackendPurpose::BdatLast, BackendPurpose::Rset}) {
      CHECK(classifyBackendReply(purpose, reply(450), false) == ReplyFit::Relay);
      CHECK(classifyBackendReply(purpose, reply(554), false) == ReplyFit::Relay);
      CHECK(classifyBackendReply(purpose, reply(421), false) == ReplyFit::Closing);
      CHECK(classifyBackendReply(purpose, reply(530), false) == ReplyFit::ProxyRefused);
    }
  }

  TEST_CASE("backend reply fit: 354 only to DATA, and DATA only 354 among positives") {
    CHECK(classifyBackendReply(BackendPurpose::Data, reply(354), false) == ReplyFit::Relay);
    CHECK(classifyBackendReply(BackendPurpose::Data, reply(250), false) == ReplyFit::ProtocolError);
    CHECK(classifyBackendReply(BackendPurpose::Rcpt, reply(354), false) == ReplyFit::ProtocolError);
    CHECK(classifyBackendReply(BackendPurpose::EndOfData, reply(354), false) ==
          ReplyFit::ProtocolError);
    CHECK(classifyBackendReply(BackendPurpose::Rcpt, reply(250), false) == ReplyFit::Relay);
    CHECK(classifyBackendReply(BackendPurpose::Mail, reply(251), false) == ReplyFit::Relay);
  }

  TEST_CASE("backend reply fit: a greeting or goodbye mid-session is a protocol error") {
    CHECK(classifyBackendReply(BackendPurpose::Rcpt, reply(220), false) == ReplyFit::ProtocolError);
    CHECK(classifyBackendReply(BackendPurpose::Rset, reply(221), false) == ReplyFit::ProtocolError);
  }

  TEST_CASE("backend reply fit: 8-bit text only in an SMTPUTF8 transaction") {
    CHECK(classifyBackendReply(BackendPurpose::Rcpt, reply(250, "caf\xc3\xa9"), false) ==
          ReplyFit::ProtocolError);
    CHECK(classifyBackendReply(BackendPurpose::Rcpt, reply(250, "caf\xc3\xa9"), true) ==
          ReplyFit::Relay);
  }

  TEST_CASE("configuration failures are the XCLIENT ones and a missing STARTTLS") {
    CHECK(isConfigurationFailure(BackendFailure::XclientNotOffered));
    CHECK(isConfigurationFailure(BackendFailure::XclientRefused));
    // backend.tls = "starttls" and none offered: 421 and close, never a plaintext session.
    CHECK(isConfigurationFailure(BackendFailure::TlsNotOffered));
    // A failed handshake may heal (a certificate being renewed): the 451 of a backend away.
    CHECK_FALSE(isConfigurationFailure(BackendFailure::TlsFailed));
    CHECK_FALSE(isConfigurationFailure(BackendFailure::Closed));
    CHECK(std::string(toString(BackendFailure::Timeout)) == "timeout");
    CHECK(std::string(toString(BackendFailure::TlsNotOffered)) == "STARTTLS not offered");
    CHECK(std::string(toString(BackendFailure::TlsFailed)) == "TLS failed");
  }
}

}  // namespace
}  // namespace certrelay::smtp
