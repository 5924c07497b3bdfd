#pragma once
// Parses replies coming from the backend. Pure and incremental.
//
// A reply is one or more lines `ddd-text` ... `ddd text` (or a bare `ddd`). Every line of one
// reply must carry the same code. Anything else is Malformed, which the session treats as "the
// backend's state is unknown" (451 4.3.0 / 421, never a guess).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace certrelay::smtp {

struct Reply {
  int code = 0;                    // 200..599
  std::vector<std::string> lines;  // text after "ddd-" / "ddd ", without CR LF

  // Re-serialised "ddd-l1\r\nddd l2\r\n" (a bare "ddd\r\n" when a line is empty and alone).
  std::string wire() const;
  // The lines joined with a space, for logs.
  std::string text() const;
  bool positive() const { return code >= 200 && code < 400; }
};

class ReplyParser {
 public:
  // maxLineLength includes CR LF; maxLines caps a multi-line reply.
  explicit ReplyParser(std::size_t maxLineLength = 2048, std::size_t maxLines = 256)
      : maxLine_(maxLineLength), maxLines_(maxLines) {}

  enum class Result { Reply, NeedMore, Malformed };

  void feed(std::string_view bytes) { buffer_.append(bytes.data(), bytes.size()); }
  // Extracts the next complete reply. After Malformed the parser stays malformed.
  Result next(Reply& out);
  std::size_t buffered() const { return buffer_.size() - pos_; }

 private:
  std::size_t maxLine_;
  std::size_t maxLines_;
  std::string buffer_;
  std::size_t pos_ = 0;
  bool malformed_ = false;
  Reply partial_;
};

}  // namespace certrelay::smtp
