// Fuzz target: the whole smtp::Dialogue, fed a fuzzed interleaving of client bytes, backend
// replies, backend failures, TLS, timers and drain, on the scripted host of the transcript
// tests (tests/support/dialogue_script.h).
//
// Input: a sequence of operations, one control byte each (low 4 bits: the operation), followed
// by its operands:
//   0-5  client bytes: one length byte L, then L bytes (fed only while the dialogue wants input,
//        as the Session does)
//   6    a canned client line chosen by the next byte (valid commands, so that transactions,
//        DATA and BDAT are reached quickly)
//   7-9  a backend reply to the oldest owed command, chosen by the next byte from replies that
//        fit, replies that do not (354 to RCPT, 220, 221, 8-bit text), 421 and 530
//   10   the backend fails (kind from the next byte)
//   11   TLS established (listed certificate or not), when a handshake is due
//   12   timer expiry     13  backend idle     14  drain     15  a raw backend reply line
//
// Oracles (besides CERTRELAY_ASSERT inside the dialogue, which aborts in fuzz builds):
//  * replies in command order: every backend reply carries a serial "T<n>"; the client sees the
//    serials strictly increasing, each at most once;
//  * never a 2xx to end of data that the backend did not send: the client's "queued as Q<n>"
//    lines are exactly backend 2xx replies to an end of data, each at most once, in order;
//  * a reply that makes no sense for its command (354 to RCPT, 220, 221) and a 530
//    meant for the proxy are never relayed;
//  * no command reaches the backend for a refused RCPT: an untrusted client's RCPT to a
//    non-local domain never becomes "B> RCPT";
//  * no action after close, no backend command without an open backend;
//  * buffers bounded: buffered input stays below high_watermark + max_line_length + one read.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.h"
#include "tests/support/dialogue_script.h"

namespace certrelay::smtp {
namespace {

using testing::Script;

constexpr std::string_view kLines[] = {
    "EHLO client.test\r\n",
    "HELO client.test\r\n",
    "STARTTLS\r\n",
    "MAIL FROM:<a@sender.example>\r\n",
    "MAIL FROM:<a@sender.example> SMTPUTF8\r\n",
    "MAIL FROM:<> SIZE=100\r\n",
    "RCPT TO:<b@local.example>\r\n",
    "RCPT TO:<x@remote.example>\r\n",
    "RCPT TO:<x%y@local.example>\r\n",
    "DATA\r\n",
    "Subject: x\r\n\r\nbody\r\n.\r\n",
    ".\r\n",
    "BDAT 5\r\nhello",
    "BDAT 3 LAST\r\nend",
    "BDAT 0 LAST\r\n",
    "RSET\r\n",
    "NOOP\r\n",
    "QUIT\r\n",
    "XCLIENT ADDR=1.2.3.4\r\n",
    "GET / HTTP/1.1\r\n",
    "VRFY x\r\n",
};

const bool kPrint = std::getenv("DIALOGUE_FUZZ_PRINT") != nullptr;

class Fuzzer {
 public:
  // An input that starts with kImplicitPrefix runs on an implicit-TLS listener (the dictionary
  // holds the prefix, so the fuzzer finds it), any other on a STARTTLS one.
  static constexpr std::string_view kImplicitPrefix = "\xffIMPLICIT";

  explicit Fuzzer(bool implicitTls) {
    if (implicitTls) {
      script_.listener().tlsMode = config::TlsMode::Implicit;
    }
    script_.start();
  }

  void run(std::string_view input) {
    std::size_t pos = 0;
    auto byte = [&]() -> std::uint8_t {
      return pos < input.size() ? static_cast<std::uint8_t>(input[pos++]) : 0;
    };
    while (pos < input.size() && !script_.closed()) {
      const std::uint8_t op = byte() & 0x0f;
      if (op <= 5) {
        const std::size_t len = byte();
        const std::string_view bytes = input.substr(pos, len);
        pos += bytes.size();
        clientBytes(bytes);
      } else if (op == 6) {
        clientBytes(kLines[byte() % std::size(kLines)]);
      } else if (op <= 9) {
        backendReply(byte());
      } else if (op == 10) {
        if (script_.backendOpen()) {
          script_.backendFails(static_cast<BackendFailure>(byte() % 7));
        }
      } else if (op == 11) {
        if (handshakeDue_) {
          handshakeDue_ = false;
          trusted_ = (byte() & 1) != 0;
          script_.tlsEstablished(trusted_);
        }
      } else if (op == 12) {
        script_.dialogue().onTimer();
      } else if (op == 13) {
        if (script_.backendOpen() && script_.owed().empty()) {
          script_.dialogue().onBackendIdle();
        }
      } else if (op == 14) {
        script_.dialogue().drain();
      } else {
        rawBackendReply(input.substr(pos, byte() % 64));
      }
      check();
    }
  }

 private:
  void clientBytes(std::string_view bytes) {
    if (!script_.dialogue().wantsInput() || handshakeDue_) {
      return;  // the Session does not read then (during the handshake, bytes are TLS records)
    }
    script_.client(bytes);
    FUZZ_CHECK(script_.dialogue().bufferedInput() <=
               script_.config().limits.highWatermark + script_.config().limits.maxLineLength + 256);
  }

  void backendReply(std::uint8_t choice) {
    if (script_.owed().empty()) {
      return;
    }
    const BackendPurpose purpose = script_.owed().front().purpose;
    const std::string serial = " T" + std::to_string(++serial_);
    switch (choice % 12) {
      case 0:
      case 1:
      case 2:
        if (purpose == BackendPurpose::Data) {
          return script_.backend("354 go" + serial);
        }
        if (purpose == BackendPurpose::EndOfData || purpose == BackendPurpose::BdatLast) {
          ++queued_;
          return script_.backend("250 2.0.0 queued as Q" + std::to_string(queued_) + serial);
        }
        return script_.backend("250 2.1.0 Ok" + serial);
      case 3:
        return script_.backend("450 4.2.1 busy" + serial);
      case 4:
        return script_.backend("550 5.1.1 unknown" + serial);
      case 5:
        return script_.backend("421 4.3.0 closing" + serial);
      case 6:
        return script_.backend("530 5.7.0 Authentication required" + serial);
      case 7:
        // 354 is the one right answer to DATA, and nonsense to anything else.
        return script_.backend((purpose == BackendPurpose::Data ? "354 go" : "354 unexpected") +
                               serial);
      case 8:
        return script_.backend("220 greeting" + serial);
      case 9:
        return script_.backend("221 bye" + serial);
      case 10:
        return script_.backend("250 \xc3\xa9" + serial);
      default:
        return script_.backend("250-first\r\n250 second" + serial);
    }
  }

  void rawBackendReply(std::string_view text) {
    if (script_.owed().empty()) {
      return;
    }
    ReplyParser parser;
    parser.feed(std::string(text) + "\r\n");
    Reply reply;
    if (parser.next(reply) != ReplyParser::Result::Reply) {
      return;  // the backend connection turns that into a failure, not a reply
    }
    for (auto& line : reply.lines) {
      if (line.find('T') != std::string::npos || line.find('Q') != std::string::npos) {
        return;  // keep the serial oracles unambiguous
      }
    }
    const auto owed = script_.owed().front();
    script_.popOwed();
    script_.dialogue().onBackendReply(owed.purpose, owed.ticket, reply);
  }

  // The serial after `marker` in `line`, or 0.
  static std::uint64_t serialAfter(std::string_view line, char marker) {
    std::uint64_t value = 0;
    for (std::size_t at = line.find(std::string(" ") + marker); at != std::string_view::npos;
         at = line.find(std::string(" ") + marker, at + 1)) {
      std::size_t i = at + 2;
      value = 0;
      while (i < line.size() && line[i] >= '0' && line[i] <= '9') {
        value = value * 10 + static_cast<std::uint64_t>(line[i] - '0');
        ++i;
      }
    }
    return value;
  }

  void check() {
    const std::string transcript = script_.take();
    if (kPrint) {
      std::fputs(transcript.c_str(), stderr);  // DIALOGUE_FUZZ_PRINT=1: replay a finding
    }
    FUZZ_CHECK(!closedSeen_ || transcript.empty());  // nothing after close
    std::size_t start = 0;
    while (start < transcript.size()) {
      const std::size_t end = transcript.find('\n', start);
      const std::string_view line(transcript.data() + start, end - start);
      start = end + 1;
      if (line == "close") {
        closedSeen_ = true;
      } else if (line == "tls") {
        handshakeDue_ = true;
        trusted_ = false;
      } else if (line.starts_with("B> RCPT TO:")) {
        // Only local recipients, or any recipient of a listed certificate.
        FUZZ_CHECK(trusted_ || line.find("@local.example>") != std::string_view::npos);
        FUZZ_CHECK(line.find('%') == std::string_view::npos || trusted_);
      } else if (line.starts_with("C< ")) {
        // A backend reply that makes no sense for its command, or a 530 meant for the proxy,
        // never reaches the client.
        for (const std::string_view never :
             {"unexpected T", "greeting T", "bye T", "Authentication required"}) {
          FUZZ_CHECK(line.find(never) == std::string_view::npos);
        }
        if (const auto t = serialAfter(line, 'T'); t != 0) {
          FUZZ_CHECK(t > lastSerialShown_);
          lastSerialShown_ = t;
        }
        if (const auto q = serialAfter(line, 'Q'); q != 0) {
          FUZZ_CHECK(q == lastQueuedShown_ + 1 || q > lastQueuedShown_);
          FUZZ_CHECK(q <= queued_);
          FUZZ_CHECK(line.starts_with("C< 250"));
          lastQueuedShown_ = q;
        }
      }
    }
    FUZZ_CHECK(script_.owed().size() <= Dialogue::kMaxUnfilledReplies + 8);
  }

  Script script_;
  bool handshakeDue_ = false;
  bool trusted_ = false;
  bool closedSeen_ = false;
  std::uint64_t serial_ = 0;
  std::uint64_t lastSerialShown_ = 0;
  std::uint64_t queued_ = 0;
  std::uint64_t lastQueuedShown_ = 0;
};

}  // namespace
}  // namespace certrelay::smtp

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input = certrelay::fuzz::asText(data, size);
  const bool implicitTls = input.starts_with(certrelay::smtp::Fuzzer::kImplicitPrefix);
  if (implicitTls) {
    input.remove_prefix(certrelay::smtp::Fuzzer::kImplicitPrefix.size());
  }
  certrelay::smtp::Fuzzer fuzzer(implicitTls);
  fuzzer.run(input);
  return 0;
}
