#include "proxy/smtp/capabilities.h"

#include <string_view>

#include "common/text.h"

namespace certrelay::smtp {

namespace {

std::vector<std::string_view> splitWords(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
      ++i;
    }
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
      ++i;
    }
    if (i > start) {
      words.push_back(line.substr(start, i - start));
    }
  }
  return words;
}

// Digits only, no overflow. A SIZE value we cannot read is treated as no SIZE at all: showing
// clients "no fixed limit" while the backend has one would be a guess.
std::optional<std::uint64_t> parseSize(std::string_view s) {
  if (s.empty() || s.size() > 19) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

bool Capabilities::greetsAsPostfix(const Reply& greeting) {
  // The word as Postfix's default smtpd_banner writes it ("$myhostname ESMTP $mail_name"):
  // bounded by the line's ends, spaces or parentheses, so "NotPostfix" does not count.
  constexpr std::string_view kWord = "Postfix";
  const auto boundary = [](char c) { return c == ' ' || c == '(' || c == ')' || c == '\t'; };
  for (const std::string& line : greeting.lines) {
    for (std::size_t at = line.find(kWord); at != std::string::npos;
         at = line.find(kWord, at + 1)) {
      const std::size_t end = at + kWord.size();
      if ((at == 0 || boundary(line[at - 1])) && (end == line.size() || boundary(line[end]))) {
        return true;
      }
    }
  }
  return false;
}

Capabilities Capabilities::fromEhloReply(const Reply& reply) {
  Capabilities caps;
  if (reply.code != 250) {
    return caps;  // a refused EHLO offers nothing
  }
  // lines[0] is the server's name and greeting text, never a keyword.
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    const std::vector<std::string_view> words = splitWords(reply.lines[i]);
    if (words.empty()) {
      continue;  // smtp-sink's closing "250 "
    }
    const std::string keyword = text::toUpper(words[0]);
    if (keyword == "SIZE") {
      if (words.size() == 1) {
        caps.size = 0;
      } else {
        caps.size = parseSize(words[1]);
      }
    } else if (keyword == "PIPELINING") {
      caps.pipelining = true;
    } else if (keyword == "8BITMIME") {
      caps.eightBitMime = true;
    } else if (keyword == "SMTPUTF8") {
      caps.smtpUtf8 = true;
    } else if (keyword == "DSN") {
      caps.dsn = true;
    } else if (keyword == "ENHANCEDSTATUSCODES") {
      caps.enhancedStatusCodes = true;
    } else if (keyword == "CHUNKING") {
      caps.chunking = true;
    } else if (keyword == "STARTTLS") {
      caps.starttls = true;
    } else if (keyword == "XCLIENT" || keyword == "XFORWARD") {
      const bool isXclient = keyword == "XCLIENT";
      (isXclient ? caps.xclient : caps.xforward) = true;
      std::set<std::string>& attributes =
          isXclient ? caps.xclientAttributes : caps.xforwardAttributes;
      for (std::size_t w = 1; w < words.size(); ++w) {
        attributes.insert(text::toUpper(words[w]));
      }
    }
    // Anything else (AUTH, VRFY, ETRN, XEXCH50, unknown) is deliberately not kept: nothing the
    // proxy does depends on it and none of it is shown to clients.
  }
  return caps;
}

std::string clientEhloReply(const std::string& hostname, const Capabilities* backend,
                            bool offerStarttls) {
  Reply reply;
  reply.code = 250;
  reply.lines.push_back(hostname);
  // The proxy orders replies itself (ReplyQueue), so PIPELINING is its own to offer.
  reply.lines.emplace_back("PIPELINING");
  if (backend != nullptr) {
    if (backend->size) {
      reply.lines.push_back(*backend->size == 0 ? std::string("SIZE")
                                                : "SIZE " + std::to_string(*backend->size));
    }
    if (backend->eightBitMime) {
      reply.lines.emplace_back("8BITMIME");
    }
    if (backend->smtpUtf8) {
      reply.lines.emplace_back("SMTPUTF8");
    }
    if (backend->dsn) {
      reply.lines.emplace_back("DSN");
    }
    if (backend->enhancedStatusCodes) {
      reply.lines.emplace_back("ENHANCEDSTATUSCODES");
    }
    // CHUNKING only when the backend takes BDAT: the proxy relays chunks by count and never
    // converts them, so it cannot offer what the backend lacks (nginx's static list lost mail).
    if (backend->chunking) {
      reply.lines.emplace_back("CHUNKING");
    }
  }
  if (offerStarttls) {
    reply.lines.emplace_back("STARTTLS");
  }
  return reply.wire();
}

}  // namespace certrelay::smtp
