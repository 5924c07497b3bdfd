#pragma once
// Small socket helpers shared by the listener, sessions and the backend connection.

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <string>

#include "config/config.h"
#include "proxy/smtp/peer.h"

namespace certrelay::proxy {

// Numeric host only (no DNS on the data path). False when `endpoint.host` is not an address.
bool toSockaddr(const config::Endpoint& endpoint, sockaddr_storage& out);

using smtp::clientLogName;
using smtp::PeerAddress;
PeerAddress fromSockaddr(const sockaddr_storage& storage);

// One read buffer per thread: libuv read callbacks consume it before returning, so every
// stream on a loop can share it (no allocation per read).
uv_buf_t readBuffer();

// Writes as much of `pending` as the socket takes now, without a write request (uv_try_write)
// and erases what was written. Returns true when something is left for uv_write. A write
// request costs more than its system call: when it completes, libuv re-arms the descriptor in
// epoll (one epoll_ctl per loop iteration that wrote), which the direct write avoids. Errors
// other than "would block" are left for uv_write to report through its usual path.
bool tryWriteNow(uv_stream_t* stream, std::string& pending);

}  // namespace certrelay::proxy
