#include "proxy/smtp/peer.h"

namespace certrelay::smtp {

std::string clientLogName(const PeerAddress& peer) {
  return (peer.name.empty() ? std::string("unknown") : peer.name) + "[" + peer.addr + "]";
}

}  // namespace certrelay::smtp
