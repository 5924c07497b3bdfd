#include "proxy/smtp/reply.h"

namespace certrelay::smtp {

namespace {

void appendCode(std::string& out, int code) {
  // code is validated as 200..599 by the parser; the session only builds codes it knows.
  out.push_back(static_cast<char>('0' + (code / 100) % 10));
  out.push_back(static_cast<char>('0' + (code / 10) % 10));
  out.push_back(static_cast<char>('0' + code % 10));
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// Reply text is relayed to the client verbatim, so a control byte in it (a bare CR above all)
// could change how the client splits lines. TAB and 8-bit bytes are tolerated.
bool validText(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string Reply::wire() const {
  std::string out;
  if (lines.empty()) {
    appendCode(out, code);
    out.append("\r\n");
    return out;
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const bool last = i + 1 == lines.size();
    appendCode(out, code);
    if (!last) {
      out.push_back('-');
    } else if (!lines[i].empty()) {
      out.push_back(' ');
    }
    out.append(lines[i]);
    out.append("\r\n");
  }
  return out;
}

std::string Reply::text() const {
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out.push_back(' ');
    }
    out.append(lines[i]);
  }
  return out;
}

ReplyParser::Result ReplyParser::next(Reply& out) {
  while (!malformed_) {
    const std::size_t lf = buffer_.find('\n', pos_);
    if (lf == std::string::npos) {
      // The LF still to come makes the line longer than buffered(): fail as soon as the cap is
      // certain to be exceeded, so a backend cannot make us buffer without bound.
      if (buffered() >= maxLine_) {
        malformed_ = true;
        break;
      }
      buffer_.erase(0, pos_);
      pos_ = 0;
      return Result::NeedMore;
    }
    const std::size_t start = pos_;
    if (lf - start + 1 > maxLine_) {
      malformed_ = true;
      break;
    }
    std::size_t end = lf;
    if (end > start && buffer_[end - 1] == '\r') {
      --end;
    }
    const std::string_view line = std::string_view(buffer_).substr(start, end - start);
    pos_ = lf + 1;

    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) ||
        !isDigit(line[2])) {
      malformed_ = true;
      break;
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool last = true;
    std::string_view text;
    if (line.size() > 3) {
      if (line[3] == '-') {
        last = false;
      } else if (line[3] != ' ') {
        malformed_ = true;
        break;
      }
      text = line.substr(4);
    }
    if (!validText(text) || (!partial_.lines.empty() && code != partial_.code) ||
        partial_.lines.size() >= maxLines_) {
      malformed_ = true;
      break;
    }
    partial_.code = code;
    partial_.lines.emplace_back(text);
    if (last) {
      out = std::move(partial_);
      partial_ = Reply{};
      if (pos_ == buffer_.size()) {
        buffer_.clear();
        pos_ = 0;
      }
      return Result::Reply;
    }
  }
  // Keep nothing from a backend that broke the protocol.
  buffer_.clear();
  pos_ = 0;
  partial_ = Reply{};
  return Result::Malformed;
}

}  // namespace certrelay::smtp
