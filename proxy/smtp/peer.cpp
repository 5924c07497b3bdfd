#include "proxy/smtp/peer.h"

namespace certrelay::smtp {

std::string clientLogName(const PeerAddress& peer) {
  return "unknown[" + peer.addr + "]";
}

}  // namespace certrelay::smtp
