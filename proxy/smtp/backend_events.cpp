#include "proxy/smtp/backend_events.h"

namespace certrelay::smtp {
namespace {

bool hasEightBitText(const Reply& reply) {
  for (const auto& line : reply.lines) {
    for (const char c : line) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

const char* toString(BackendFailure failure) {
  switch (failure) {
    case BackendFailure::Unreachable:
      return "unreachable";
    case BackendFailure::Timeout:
      return "timeout";
    case BackendFailure::Closed:
      return "connection lost";
    case BackendFailure::Malformed:
      return "malformed reply";
    case BackendFailure::Refused:
      return "refused";
    case BackendFailure::XclientNotOffered:
      return "XCLIENT not offered";
    case BackendFailure::XclientRefused:
      return "XCLIENT refused";
    case BackendFailure::TlsNotOffered:
      return "STARTTLS not offered";
    case BackendFailure::TlsFailed:
      return "TLS failed";
  }
  return "unknown";
}

ReplyFit classifyBackendReply(BackendPurpose purpose, const Reply& reply, bool utf8) {
  if (!utf8 && hasEightBitText(reply)) {
    return ReplyFit::ProtocolError;
  }
  if (reply.code == 421) {
    return ReplyFit::Closing;
  }
  if (reply.code == 530) {
    return ReplyFit::ProxyRefused;
  }
  const int kind = reply.code / 100;
  if (kind == 4 || kind == 5) {
    return ReplyFit::Relay;
  }
  if (purpose == BackendPurpose::Data) {
    return reply.code == 354 ? ReplyFit::Relay : ReplyFit::ProtocolError;
  }
  // A greeting or a goodbye mid-session, or an intermediate reply to a command that has none.
  if (kind != 2 || reply.code == 220 || reply.code == 221) {
    return ReplyFit::ProtocolError;
  }
  return ReplyFit::Relay;
}

}  // namespace certrelay::smtp
