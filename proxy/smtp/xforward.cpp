#include "proxy/smtp/xforward.h"

#include "proxy/smtp/attribute_command.h"

namespace certrelay::smtp {

namespace {
// XFORWARD_README: "PROTO ... at most 64 characters".
constexpr std::size_t kMaxProto = 64;
}  // namespace

std::vector<std::string> buildXforwardCommands(const ForwardInfo& info,
                                               const std::set<std::string>& offered) {
  using detail::addressAttribute;
  using detail::kUnavailable;
  using detail::xtextOrUnavailable;

  detail::AttributeCommandPacker packer("XFORWARD");
  auto add = [&](const char* name, const std::string& value) {
    if (offered.count(name) != 0) {
      packer.add(name, value);
    }
  };
  add("NAME", xforwardName(info.name));
  add("ADDR", addressAttribute(info.addr));
  add("PORT", info.port != 0 ? std::to_string(info.port) : std::string(kUnavailable));
  add("PROTO", xtextOrUnavailable(info.proto, kMaxProto));
  add("HELO", xtextOrUnavailable(info.helo));
  add("IDENT", xtextOrUnavailable(info.ident));
  add("SOURCE", "REMOTE");
  return packer.finish();
}

}  // namespace certrelay::smtp
