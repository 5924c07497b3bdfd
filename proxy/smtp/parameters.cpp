#include "proxy/smtp/parameters.h"

#include <cstdlib>
#include <string_view>

#include "common/text.h"
#include "proxy/smtp/replies.h"

namespace certrelay::smtp {
namespace {

bool allDigits(std::string_view s) {
  if (s.empty() || s.size() > 19) {
    return false;
  }
  for (const char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

// Whether one parameter may pass; sets `refusal` for a value that is wrong in itself.
bool acceptMailParameter(const std::string& key, const std::string& value, const Capabilities& caps,
                         FilteredParameters& result) {
  if (key == "SIZE" && caps.size) {
    if (!allDigits(value)) {
      result.refusal = "501 5.5.4 Bad message size syntax\r\n";
    } else if (*caps.size > 0 && std::strtoull(value.c_str(), nullptr, 10) > *caps.size) {
      result.refusal = std::string(replies::kSizeExceeded);
    }
    return true;
  }
  if (key == "BODY" && caps.eightBitMime) {
    return text::equalsIgnoreCase(value, "7BIT") || text::equalsIgnoreCase(value, "8BITMIME");
  }
  if (key == "SMTPUTF8" && caps.smtpUtf8) {
    result.utf8 = true;
    return value.empty();
  }
  if ((key == "RET" || key == "ENVID") && caps.dsn) {
    return !value.empty();
  }
  return false;
}

FilteredParameters filter(const PathArgument& path, const Capabilities* capabilities, bool mail) {
  static const Capabilities kNothingOffered;
  const Capabilities& caps = capabilities != nullptr ? *capabilities : kNothingOffered;
  FilteredParameters result;
  for (std::size_t i = 0; i < path.params.size(); ++i) {
    const auto& [key, value] = path.params[i];
    for (std::size_t j = 0; j < i; ++j) {
      if (path.params[j].first == key) {
        result.refusal = "555 5.5.4 Duplicate option: " + key + "\r\n";
        return result;
      }
    }
    if (mail && key == "AUTH") {
      continue;  // AUTH is not offered: an AUTH= claim from the client is dropped, not passed
    }
    const bool ok = mail ? acceptMailParameter(key, value, caps, result)
                         : (key == "NOTIFY" || key == "ORCPT") && caps.dsn && !value.empty();
    if (!result.refusal.empty()) {
      return result;
    }
    if (!ok) {
      result.refusal = replies::unsupportedParameter(key);
      return result;
    }
    result.wire += " " + key;
    if (!value.empty()) {
      result.wire += "=" + value;
    }
  }
  return result;
}

}  // namespace

FilteredParameters filterMailParameters(const PathArgument& path,
                                        const Capabilities* capabilities) {
  return filter(path, capabilities, true);
}

FilteredParameters filterRcptParameters(const PathArgument& path,
                                        const Capabilities* capabilities) {
  return filter(path, capabilities, false);
}

}  // namespace certrelay::smtp
