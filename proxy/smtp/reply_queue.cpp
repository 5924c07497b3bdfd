#include "proxy/smtp/reply_queue.h"

#include <algorithm>

namespace certrelay::smtp {

ReplyQueue::Ticket ReplyQueue::pushReady(std::string_view wire, bool closeAfter) {
  const Ticket ticket = next_++;
  slots_.push_back(Slot{ticket, true, closeAfter, std::string(wire)});
  return ticket;
}

ReplyQueue::Ticket ReplyQueue::reserve() {
  const Ticket ticket = next_++;
  slots_.push_back(Slot{ticket, false, false, std::string()});
  return ticket;
}

bool ReplyQueue::fill(Ticket ticket, std::string_view wire, bool closeAfter) {
  if (slots_.empty() || ticket < slots_.front().ticket) {
    return false;  // never issued (0) or already drained
  }
  const Ticket index = ticket - slots_.front().ticket;
  if (index >= slots_.size()) {
    return false;
  }
  Slot& slot = slots_[static_cast<std::size_t>(index)];
  if (slot.filled) {
    return false;
  }
  slot.filled = true;
  slot.closeAfter = closeAfter;
  slot.wire.assign(wire);
  return true;
}

bool ReplyQueue::drain(std::string& out) {
  while (!closed_ && !slots_.empty() && slots_.front().filled) {
    Slot& front = slots_.front();
    out.append(front.wire);
    closed_ = front.closeAfter;
    slots_.pop_front();
  }
  return closed_;
}

std::size_t ReplyQueue::unfilled() const {
  return static_cast<std::size_t>(
      std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.filled; }));
}

}  // namespace certrelay::smtp
