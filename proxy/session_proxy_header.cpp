// Session: the PROXY protocol header a load balancer sends before the greeting
// (listener.proxy_protocol). Its source address becomes the session's client address for every
// decision; only peers in listener.proxy_networks may send one.

#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/smtp/proxy_header.h"

namespace certrelay::proxy {

void Session::awaitProxyHeader() {
  if (!proxyNetworks_->contains(peer_.addr)) {
    refuseProxyConnection("not in listener " + listener_.name + "'s proxy_networks");
    return;
  }
  awaitingProxyHeader_ = true;
  armTimer(config_.timeouts.proxyHeader);
  updateReading();
}

void Session::onProxyHeaderBytes(std::string_view bytes) {
  proxyBuffer_.append(bytes);
  smtp::ProxyHeader header;
  std::size_t length = 0;
  std::string error;
  switch (smtp::parseProxyHeader(proxyBuffer_, header, length, error)) {
    case smtp::ProxyParse::NeedMore:
      return;  // the parser refuses a header before it could outgrow its maximum size
    case smtp::ProxyParse::Invalid:
      refuseProxyConnection("malformed header: " + error);
      return;
    case smtp::ProxyParse::Done:
      break;
  }
  awaitingProxyHeader_ = false;
  if (header.hasAddresses) {
    proxyPeer_ = peer_.addr;
    peer_ = header.source;
    local_ = header.destination;
  }
  // The client's own bytes may have come in the same read as the header.
  const std::string rest = proxyBuffer_.substr(length);
  std::string().swap(proxyBuffer_);
  beginDialogue();
  if (!rest.empty() && !tornDown_) {
    consumeClientBytes(rest);
  }
}

void Session::refuseProxyConnection(std::string_view why) {
  const std::string peer = clientLogName(peer_);
  log::line(log::Level::Warning, id_,
            "PROXY protocol: closing the connection from " + peer + ": " + std::string(why),
            {{"event", "proxy_refused"}, {"client", peer}, {"client_address", peer_.addr}});
  awaitingProxyHeader_ = false;
  teardown("no valid PROXY header");
}

}  // namespace certrelay::proxy
