// Micro-benchmarks of the pure SMTP pieces: command line reader and parser, DATA canonicaliser,
// backend reply parser, reply queue, Received header and XCLIENT builders.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/smtp/capabilities.h"
#include "proxy/smtp/command.h"
#include "proxy/smtp/data_canonicalizer.h"
#include "proxy/smtp/line_reader.h"
#include "proxy/smtp/received_header.h"
#include "proxy/smtp/reply.h"
#include "proxy/smtp/reply_queue.h"
#include "proxy/smtp/xclient.h"

namespace {

using namespace certrelay::smtp;

// A typical pipelined session after STARTTLS: two transactions, then QUIT.
constexpr std::string_view kSessionGroup =
    "EHLO client1.lab.example\r\n"
    "MAIL FROM:<alice@lab.example> SIZE=10240 BODY=8BITMIME\r\n"
    "RCPT TO:<bob@example.com>\r\n"
    "RCPT TO:<carol@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@example.org\r\n"
    "DATA\r\n"
    "RSET\r\n"
    "MAIL FROM:<> BODY=8BITMIME\r\n"
    "RCPT TO:<postmaster@example.com>\r\n"
    "BDAT 10240 LAST\r\n"
    "NOOP\r\n"
    "QUIT\r\n";

// LineReader + parseCommand over the whole group, as the session does after one socket read.
void BM_CommandParseSession(benchmark::State& state) {
  LineReader reader(2048);
  std::string line;
  Command command;
  std::size_t commands = 0;
  for ([[maybe_unused]] auto _ : state) {
    reader.feed(kSessionGroup);
    while (reader.next(line) == LineReader::Result::Line) {
      const CommandError err = parseCommand(line, command);
      benchmark::DoNotOptimize(err);
      benchmark::DoNotOptimize(command.verb);
      ++commands;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(commands));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kSessionGroup.size()));
}
BENCHMARK(BM_CommandParseSession);

// The same group delivered in 7-byte pieces (a slow or hostile client: many partial lines).
void BM_CommandParseSessionTrickle(benchmark::State& state) {
  LineReader reader(2048);
  std::string line;
  Command command;
  std::size_t commands = 0;
  for ([[maybe_unused]] auto _ : state) {
    for (std::size_t off = 0; off < kSessionGroup.size(); off += 7) {
      reader.feed(kSessionGroup.substr(off, 7));
      while (reader.next(line) == LineReader::Result::Line) {
        benchmark::DoNotOptimize(parseCommand(line, command));
        ++commands;
      }
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(commands));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kSessionGroup.size()));
}
BENCHMARK(BM_CommandParseSessionTrickle);

void BM_ParsePathArgument(benchmark::State& state, std::string_view argument,
                          std::string_view prefix) {
  PathArgument out;
  for ([[maybe_unused]] auto _ : state) {
    out.params.clear();
    benchmark::DoNotOptimize(parsePathArgument(argument, prefix, out));
    benchmark::DoNotOptimize(out.path.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(argument.size()));
}
BENCHMARK_CAPTURE(BM_ParsePathArgument, mail_plain, "FROM:<alice@lab.example>", "FROM:");
BENCHMARK_CAPTURE(BM_ParsePathArgument, mail_params,
                  "FROM:<alice@lab.example> SIZE=10240 BODY=8BITMIME SMTPUTF8", "FROM:");
BENCHMARK_CAPTURE(BM_ParsePathArgument, rcpt_dsn,
                  "TO:<carol@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@example.org",
                  "TO:");

// --- DATA canonicaliser --------------------------------------------------------------------

enum class Body { Text, LongLines, LeadingDots };

// A message of about `size` bytes of `kind` lines, ending with the CRLF.CRLF terminator.
std::string makeBody(Body kind, std::size_t size) {
  std::string line;
  switch (kind) {
    case Body::Text:
      line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.";
      break;
    case Body::LongLines:
      for (std::size_t i = 0; line.size() < 998; ++i) {
        line.push_back(static_cast<char>('A' + (i * 13) % 26));
      }
      break;
    case Body::LeadingDots:
      line = "..a dot-stuffed line (it started with a dot)";
      break;
  }
  std::string body;
  body.reserve(size + line.size() + 8);
  while (body.size() < size) {
    body += line;
    body += "\r\n";
  }
  body += ".\r\n";
  return body;
}

// Args: message size, piece size. Output is drained after every piece, as the session hands it
// to the backend connection.
void BM_DataCanonicalize(benchmark::State& state, Body kind) {
  const std::string body = makeBody(kind, static_cast<std::size_t>(state.range(0)));
  const auto piece = static_cast<std::size_t>(state.range(1));
  DataCanonicalizer canon;
  std::string out;
  out.reserve(2 * piece);
  for ([[maybe_unused]] auto _ : state) {
    canon.reset();
    std::string_view rest(body);
    while (!rest.empty() && !canon.done()) {
      const std::size_t used = canon.feed(rest.substr(0, piece), out);
      rest.remove_prefix(used);
      benchmark::DoNotOptimize(out.data());
      out.clear();
    }
    canon.finish(out);
    out.clear();
    if (!rest.empty() || !canon.done()) {
      state.SkipWithError("end of data not where expected");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
  state.SetItemsProcessed(state.iterations());
}
constexpr std::int64_t kKiB = 1024;  // benchmark arguments are int64_t
#define CANON_ARGS \
  ArgsProduct({{10 * kKiB, kKiB * kKiB}, {4 * kKiB, 64 * kKiB}})->ArgNames({"size", "piece"})
BENCHMARK_CAPTURE(BM_DataCanonicalize, text, Body::Text)->CANON_ARGS;
BENCHMARK_CAPTURE(BM_DataCanonicalize, long_lines, Body::LongLines)->CANON_ARGS;
BENCHMARK_CAPTURE(BM_DataCanonicalize, leading_dots, Body::LeadingDots)->CANON_ARGS;
#undef CANON_ARGS

// --- Backend replies -----------------------------------------------------------------------

constexpr std::string_view kPostfixEhlo =
    "250-mx.example.com\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-VRFY\r\n"
    "250-ETRN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250-CHUNKING\r\n"
    "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT\r\n"
    "250 XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n";

void BM_ReplyParse(benchmark::State& state, std::string_view wire) {
  ReplyParser parser(2048);
  for ([[maybe_unused]] auto _ : state) {
    parser.feed(wire);
    Reply reply;
    if (parser.next(reply) != ReplyParser::Result::Reply) {
      state.SkipWithError("reply not parsed");
      break;
    }
    benchmark::DoNotOptimize(reply.code);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
}
BENCHMARK_CAPTURE(BM_ReplyParse, postfix_ehlo, kPostfixEhlo);
BENCHMARK_CAPTURE(BM_ReplyParse, single_250, "250 2.1.5 Ok\r\n");
BENCHMARK_CAPTURE(BM_ReplyParse, single_354, "354 End data with <CR><LF>.<CR><LF>\r\n");

void BM_CapabilitiesFromEhlo(benchmark::State& state) {
  ReplyParser parser;
  parser.feed(kPostfixEhlo);
  Reply reply;
  if (parser.next(reply) != ReplyParser::Result::Reply) {
    state.SkipWithError("reply not parsed");
    return;
  }
  for ([[maybe_unused]] auto _ : state) {
    const Capabilities caps = Capabilities::fromEhloReply(reply);
    benchmark::DoNotOptimize(caps.xclient);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CapabilitiesFromEhlo);

// 100 slots reserved, then filled in order and drained once (replies arriving in a burst).
void BM_ReplyQueueBurst(benchmark::State& state) {
  constexpr int kSlots = 100;
  ReplyQueue queue;
  std::vector<ReplyQueue::Ticket> tickets(kSlots);
  std::string out;
  for ([[maybe_unused]] auto _ : state) {
    for (auto& t : tickets) {
      t = queue.reserve();
    }
    for (const auto t : tickets) {
      benchmark::DoNotOptimize(queue.fill(t, "250 2.1.5 Ok\r\n"));
    }
    out.clear();
    benchmark::DoNotOptimize(queue.drain(out));
  }
  state.SetItemsProcessed(state.iterations() * kSlots);
}
BENCHMARK(BM_ReplyQueueBurst);

// 100 slots reserved, filled last to first with a drain after every fill: nothing leaves until
// the first slot is filled (the worst order for the front-only drain).
void BM_ReplyQueueReverse(benchmark::State& state) {
  constexpr int kSlots = 100;
  ReplyQueue queue;
  std::vector<ReplyQueue::Ticket> tickets(kSlots);
  std::string out;
  for ([[maybe_unused]] auto _ : state) {
    for (auto& t : tickets) {
      t = queue.reserve();
    }
    out.clear();
    for (auto it = tickets.rbegin(); it != tickets.rend(); ++it) {
      benchmark::DoNotOptimize(queue.fill(*it, "250 2.1.5 Ok\r\n"));
      benchmark::DoNotOptimize(queue.drain(out));
    }
  }
  state.SetItemsProcessed(state.iterations() * kSlots);
}
BENCHMARK(BM_ReplyQueueReverse);

// --- Header and command builders -----------------------------------------------------------

ReceivedInfo typicalReceived() {
  ReceivedInfo info;
  info.helo = "client1.lab.example";
  info.clientAddr = "192.0.2.17";
  info.tls = true;
  info.tlsSummary.version = "TLSv1.3";
  info.tlsSummary.cipher = "TLS_AES_256_GCM_SHA384";
  info.tlsSummary.cipherBits = 256;
  info.tlsSummary.cipherAlgBits = 256;
  info.tlsSummary.group = "X25519";
  info.tlsSummary.serverSignature = "ECDSA";
  info.tlsSummary.serverSignatureDetail = "prime256v1";
  info.tlsSummary.serverDigest = "SHA256";
  info.tlsSummary.clientSignature = "ECDSA";
  info.tlsSummary.clientSignatureDetail = "prime256v1";
  info.tlsSummary.clientDigest = "SHA256";
  info.hasCertificate = true;
  info.subjectCn = "client1.lab.example";
  info.issuerCn = "certrelay Test CA";
  info.verified = true;
  info.certFingerprint = "3EF8377B1BFBD3A3F1ED4A62C4D3E7A3D5B18C5C1E4C2B3C6D7E8F9A0B1C2D3E";
  info.trusted = true;
  info.identity = "lab printer";
  info.hostname = "relay.example.com";
  info.id = "4Xyq7D1ZkMz9";
  info.singleRecipient = "<bob@example.com>";
  info.when = 1'790'000'000;
  return info;
}

void BM_ReceivedHeader(benchmark::State& state) {
  const ReceivedInfo info = typicalReceived();
  std::size_t bytes = 0;
  for ([[maybe_unused]] auto _ : state) {
    const std::string header = buildReceivedHeader(info);
    bytes += header.size();
    benchmark::DoNotOptimize(header.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_ReceivedHeader);

void BM_XclientBuild(benchmark::State& state) {
  const ClientIdentity identity{.addr = "2001:db8::17",
                                .port = 50'123,
                                .destAddr = "2001:db8::1",
                                .destPort = 25,
                                .helo = "client1.lab.example",
                                .esmtp = true,
                                .login = "lab printer",
                                .name = certrelay::smtp::noLookup()};
  const std::set<std::string> offered = {"NAME", "ADDR",  "PROTO",    "HELO",    "REVERSE_NAME",
                                         "PORT", "LOGIN", "DESTADDR", "DESTPORT"};
  std::size_t bytes = 0;
  for ([[maybe_unused]] auto _ : state) {
    const std::vector<std::string> commands = buildXclientCommands(identity, offered);
    for (const auto& c : commands) {
      bytes += c.size() + 2;
    }
    benchmark::DoNotOptimize(commands.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_XclientBuild);

}  // namespace
