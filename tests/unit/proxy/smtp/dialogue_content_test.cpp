// Dialogue: DATA content canonicalised in place, straight into the backend's write buffer
// (DialogueHost::backendContentBuffer). The backend must get exactly the bytes the copying path
// gives it, however the client's bytes are split, and nothing of a lost transaction.

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "proxy/smtp/dialogue.h"
#include "tests/support/dialogue_script.h"

namespace certrelay::smtp {
namespace {

using testing::Script;

// Greeting, EHLO, MAIL and an accepted RCPT, DATA answered 354: the next client bytes are
// content.
void toContent(Script& s) {
  s.start();
  s.client("EHLO client.test\r\n");
  s.client("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@local.example>\r\n");
  s.backend("250 2.1.0 Ok");
  s.backend("250 2.1.5 Ok");
  s.client("DATA\r\n");
  s.backend("354 End data with <CR><LF>.<CR><LF>");
  s.take();
}

// Content with every case the canonicaliser rewrites: bare LF and CR, stuffed and unstuffed
// dots, a lone dot after a bare line end, NUL and 8-bit bytes, then the end and a pipelined
// command.
constexpr char kContentBytes[] =
    "Subject: in place\r\n"
    "bare lf\nbare cr\rmixed\r\r\n"
    "..stuffed\r\n"
    ".unstuffed\r\n"
    "\n.\n"
    "nul \0 and \xe9\r\n"
    "last line\r\n"
    ".\r\n"
    "NOOP\r\n";
constexpr std::string_view kContent(kContentBytes, sizeof kContentBytes - 1);  // with the NUL

// The client's content in pieces of `step` bytes (the whole at once for 0).
std::vector<std::string_view> pieces(std::size_t step) {
  std::vector<std::string_view> out;
  if (step == 0) {
    out.push_back(kContent);
    return out;
  }
  for (std::size_t at = 0; at < kContent.size(); at += step) {
    out.push_back(kContent.substr(at, step));
  }
  return out;
}

TEST_SUITE("dialogue_content") {
  TEST_CASE("DATA canonicalised in place: the backend gets the bytes of the copying path") {
    for (const std::size_t step : {0, 1, 2, 3, 7, 16}) {
      CAPTURE(step);
      Script copying;
      Script inPlace;
      inPlace.contentInPlace(true);
      toContent(copying);
      toContent(inPlace);
      for (const std::string_view piece : pieces(step)) {
        copying.client(piece);
        inPlace.client(piece);
      }
      CHECK(inPlace.inPlaceAppends() > 0);
      CHECK(inPlace.contentWire() == copying.contentWire());
      // The content after the held Received header, with its one terminator.
      const std::string& wire = inPlace.contentWire();
      const std::string body =
          "Subject: in place\r\nbare lf\r\nbare cr\r\nmixed\r\n\r\n..stuffed\r\nunstuffed\r\n"
          "\r\n\r\n" +
          std::string("nul \0 and \xe9\r\n", 13) + "last line\r\n.\r\n";
      REQUIRE(wire.size() > body.size());
      CHECK(wire.substr(wire.size() - body.size()) == body);
      CHECK(wire.rfind("Received: ", 0) == 0);
      // The final reply is still the backend's; NOOP behind the dot is a command.
      CHECK(inPlace.owed().size() == 1);
      inPlace.backend("250 2.0.0 Ok: queued as 1");
      CHECK(inPlace.take().find("C< 250 2.0.0 Ok: queued as 1\nC< 250 2.0.0 Ok\n") !=
            std::string::npos);
    }
  }

  TEST_CASE("backend lost during DATA: nothing more goes in place, the end gets 451") {
    Script s;
    s.contentInPlace(true);
    toContent(s);
    s.client("Subject: part one\r\n");
    const std::string before = s.contentWire();
    const std::size_t appends = s.inPlaceAppends();
    s.backendFails();
    s.take();
    s.client("more content\r\n.\r\n");
    CHECK(s.contentWire() == before);
    CHECK(s.inPlaceAppends() == appends);
    CHECK(s.take() ==
          "C< 451 4.3.0 Error: backend connection lost during DATA, message not delivered\n");
  }
}

}  // namespace
}  // namespace certrelay::smtp
