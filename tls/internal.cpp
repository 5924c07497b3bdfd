#include "tls/internal.h"

#include <openssl/err.h>

namespace certrelay::tls {

std::string drainErrorQueue() {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  unsigned long code = 0;
  while ((code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
    // Extra data says which file or parameter failed (e.g. "calling fopen(/x, r)").
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out += " (";
      out += data;
      out += ')';
    }
  }
  return out;
}

}  // namespace certrelay::tls
