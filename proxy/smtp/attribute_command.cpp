#include "proxy/smtp/attribute_command.h"

#include <utility>

#include "proxy/smtp/xtext.h"

namespace certrelay::smtp::detail {

std::string addressAttribute(const std::string& addr) {
  if (addr.empty()) {
    return std::string(kUnavailable);
  }
  // XCLIENT and XFORWARD write IPv6 with an "IPV6:" prefix and no brackets.
  return addr.find(':') != std::string::npos ? "IPV6:" + addr : addr;
}

std::string xtextOrUnavailable(std::string_view raw, std::size_t maxEncoded) {
  if (raw.empty()) {
    return std::string(kUnavailable);
  }
  std::string encoded = xtextEncode(raw);
  return encoded.size() <= maxEncoded ? encoded : std::string(kUnavailable);
}

void AttributeCommandPacker::add(std::string_view name, std::string_view value) {
  std::string item;
  item.reserve(name.size() + value.size() + 2);
  item += ' ';
  item += name;
  item += '=';
  item += value;
  append(item);
}

void AttributeCommandPacker::addGroup(const std::string& items) {
  append(items);
}

void AttributeCommandPacker::append(const std::string& items) {
  if (items.empty()) {
    return;
  }
  if (!empty() && current_.size() + items.size() > kMaxCommandLine) {
    commands_.push_back(std::move(current_));
    current_ = verb_;
  }
  current_ += items;
}

std::vector<std::string> AttributeCommandPacker::finish() {
  if (!empty()) {
    commands_.push_back(std::move(current_));
  }
  current_ = verb_;
  std::vector<std::string> commands = std::move(commands_);
  commands_.clear();
  return commands;
}

}  // namespace certrelay::smtp::detail
