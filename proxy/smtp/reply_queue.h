#pragma once
// The one ordered queue of replies owed to the client (RFC 2920 pipelining).
//
// Every command the client sends takes a slot, in order. A command answered by the proxy gets a
// slot that is filled at once; a command forwarded to the backend gets an empty slot that is
// filled when its reply arrives (possibly rewritten by the session). Replies to commands the
// proxy sends on its own (EHLO, XCLIENT) never get a slot. drain() releases replies from the
// front only, so the client always sees them in command order.

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/smtp/fifo.h"

namespace certrelay::smtp {

class ReplyQueue {
 public:
  using Ticket = std::uint64_t;

  // A slot whose reply is already known. `wire` is one or more full lines with CR LF.
  Ticket pushReady(std::string_view wire, bool closeAfter = false);
  // A slot to be filled later.
  Ticket reserve();
  // Fills a reserved slot. Filling an unknown or already-filled ticket is a bug: returns false.
  [[nodiscard]] bool fill(Ticket ticket, std::string_view wire, bool closeAfter = false);

  // Appends every filled reply at the front to `out`, in order, and removes them. Returns true
  // when one of the drained slots asked to close the connection after it (nothing after such a
  // slot is drained, then or by any later call: later calls append nothing and return true).
  [[nodiscard]] bool drain(std::string& out);

  bool empty() const { return slots_.empty(); }
  std::size_t size() const { return slots_.size(); }
  // Slots still waiting for a reply.
  std::size_t unfilled() const;

 private:
  struct Slot {
    Ticket ticket;
    bool filled;
    bool closeAfter;
    std::string wire;
  };
  // Tickets in slots_ are consecutive (slots leave only from the front), so a ticket's index is
  // ticket - slots_.front().ticket.
  Fifo<Slot> slots_;
  Ticket next_ = 1;
  bool closed_ = false;  // a closeAfter slot was drained: the client gets nothing more
};

}  // namespace certrelay::smtp
