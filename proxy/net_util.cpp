#include "proxy/net_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "common/idle_buffer.h"

namespace certrelay::proxy {

bool toSockaddr(const config::Endpoint& endpoint, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof out);
  if (uv_ip4_addr(endpoint.host.c_str(), endpoint.port, reinterpret_cast<sockaddr_in*>(&out)) ==
      0) {
    return true;
  }
  return uv_ip6_addr(endpoint.host.c_str(), endpoint.port, reinterpret_cast<sockaddr_in6*>(&out)) ==
         0;
}

PeerAddress fromSockaddr(const sockaddr_storage& storage) {
  PeerAddress peer;
  char text[INET6_ADDRSTRLEN] = {0};
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    peer.port = ntohs(in->sin_port);
  } else if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], text, sizeof text);
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    }
    peer.port = ntohs(in6->sin6_port);
  }
  peer.addr = text;
  return peer;
}

uv_buf_t readBuffer() {
  static thread_local char buffer[64 * 1024];
  return uv_buf_init(buffer, sizeof buffer);
}

}  // namespace certrelay::proxy

namespace certrelay::proxy {

bool tryWriteNow(uv_stream_t* stream, std::string& pending) {
  uv_buf_t buf = uv_buf_init(pending.data(), static_cast<unsigned>(pending.size()));
  const int written = uv_try_write(stream, &buf, 1);
  if (written <= 0) {
    return false;
  }
  if (static_cast<std::size_t>(written) == pending.size()) {
    releaseIdleBuffer(pending);
    return true;
  }
  pending.erase(0, static_cast<std::size_t>(written));
  return false;
}

}  // namespace certrelay::proxy
