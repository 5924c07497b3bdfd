// ReverseDns: c-ares on the worker's libuv loop (see reverse_dns.h).

#include "proxy/reverse_dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <utility>

#include "proxy/log.h"

namespace certrelay::proxy {

namespace {

constexpr int kClassIn = 1;  // C_IN
constexpr int kTypeA = 1;    // T_A
constexpr int kTypePtr = 12;
constexpr int kTypeAaaa = 28;
// Answers are small; a few addresses are plenty to find the client's among them.
constexpr int kMaxAddresses = 32;
// c-ares tries each server this many times, the first try waiting timeout/3 and later ones
// longer (it doubles per round), so that a lost datagram is sent again well within the deadline.
constexpr int kTries = 2;
constexpr std::chrono::milliseconds kMinTryTimeout{50};

// How a failed query counts: no such name or record is permanent (Postfix: EAI_NONAME), anything
// else a server's trouble that may pass (EAI_AGAIN): SERVFAIL, REFUSED, no answer, a bad answer.
smtp::DnsAnswer failedAnswer(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_EBADNAME:
      return smtp::DnsAnswer::NotFound;
    default:
      return smtp::DnsAnswer::TempFail;
  }
}

std::string strip(const char* name) {
  std::string text = name != nullptr ? name : "";
  if (!text.empty() && text.back() == '.') {
    text.pop_back();
  }
  return text;
}

std::string serverList(const std::vector<config::Endpoint>& servers) {
  std::string csv;
  for (const config::Endpoint& server : servers) {
    csv += (csv.empty() ? "" : ",") + server.toString();
  }
  return csv;
}

}  // namespace

struct ReverseDns::Lookup {
  ReverseDns* owner = nullptr;
  Handler* handler = nullptr;
  std::string addr;
  int family = AF_INET;
  std::array<unsigned char, 16> bytes{};
  std::string ptrName;  // once the PTR query found a usable name
  std::uint64_t deadline = 0;
  int queries = 0;                        // c-ares callbacks still owed
  bool finished = false;                  // the outcome was delivered, or the lookup cancelled
  std::optional<smtp::ClientName> early;  // an outcome found inside start(), delivered later
  Lookup* prev = nullptr;
  Lookup* next = nullptr;
};

struct ReverseDns::Poll {
  uv_poll_t handle{};
  ReverseDns* owner = nullptr;
  int fd = -1;
};

std::string ReverseDns::check(const config::Dns& dns) {
  static std::once_flag once;
  static int initStatus = ARES_SUCCESS;
  std::call_once(once, [] { initStatus = ares_library_init(ARES_LIB_INIT_ALL); });
  if (initStatus != ARES_SUCCESS) {
    return std::string("c-ares: ") + ares_strerror(initStatus);
  }
  ReverseDns probe(nullptr, dns);
  std::string error;
  probe.init(error);
  return error;
}

std::unique_ptr<ReverseDns> ReverseDns::create(uv_loop_t* loop, const config::Dns& dns,
                                               std::string& error) {
  std::unique_ptr<ReverseDns> dnsPtr(new ReverseDns(loop, dns));
  if (!dnsPtr->init(error)) {
    return nullptr;
  }
  uv_timer_init(loop, &dnsPtr->aresTimer_);
  uv_timer_init(loop, &dnsPtr->deadlineTimer_);
  dnsPtr->aresTimer_.data = dnsPtr.get();
  dnsPtr->deadlineTimer_.data = dnsPtr.get();
  // Lookups matter only to sessions, which keep the loop alive themselves: a stopping worker
  // must not wait for a query nobody needs any more.
  uv_unref(reinterpret_cast<uv_handle_t*>(&dnsPtr->aresTimer_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&dnsPtr->deadlineTimer_));
  dnsPtr->timersOpen_ = true;
  return dnsPtr;
}

ReverseDns::ReverseDns(uv_loop_t* loop, const config::Dns& dns)
    : loop_(loop), timeout_(dns.timeout), servers_(dns.servers) {}

ReverseDns::~ReverseDns() {
  if (channel_ != nullptr) {
    // check()'s probe, or a channel create() gave up on: it never had a socket to watch.
    loop_ = nullptr;
    ares_destroy(channel_);
  }
}

bool ReverseDns::init(std::string& error) {
  ares_options options{};
  options.flags = ARES_FLAG_NOSEARCH;
  options.timeout = static_cast<int>(std::max(timeout_ / 3, kMinTryTimeout).count());
  options.tries = kTries;
  options.sock_state_cb = &ReverseDns::onSocketState;
  options.sock_state_cb_data = this;
  const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
  int rc = ares_init_options(&channel_, &options, mask);
  if (rc != ARES_SUCCESS) {
    error = std::string("c-ares: ") + ares_strerror(rc);
    channel_ = nullptr;
    return false;
  }
  if (!servers_.empty()) {
    rc = ares_set_servers_ports_csv(channel_, serverList(servers_).c_str());
    if (rc != ARES_SUCCESS) {
      error = "dns.servers: " + std::string(ares_strerror(rc));
      return false;
    }
  }
  return true;
}

ReverseDns::Lookup* ReverseDns::start(const std::string& addr, Handler* handler) {
  auto* lookup = new Lookup;
  lookup->owner = this;
  lookup->handler = handler;
  lookup->addr = addr;
  lookup->deadline = uv_now(loop_) + static_cast<std::uint64_t>(timeout_.count());
  link(lookup);
  const std::string query = smtp::reverseQueryName(addr);
  lookup->family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  starting_ = true;
  if (query.empty() || inet_pton(lookup->family, addr.c_str(), lookup->bytes.data()) != 1) {
    finish(lookup, smtp::noLookup());  // not an address: nothing to look up (callers check)
  } else {
    ++lookup->queries;  // before the call: c-ares may answer from inside it
    ares_query(channel_, query.c_str(), kClassIn, kTypePtr, &ReverseDns::onPtrAnswer, lookup);
  }
  starting_ = false;
  armAresTimer();
  armDeadline();
  return lookup;
}

void ReverseDns::cancel(Lookup* lookup) {
  if (lookup == nullptr || lookup->finished) {
    return;
  }
  lookup->finished = true;
  lookup->handler = nullptr;
  unlink(lookup);
  armDeadline();
  release(lookup);
}

ReverseDns::Lookup* ReverseDns::answered(void* arg, int status) {
  auto* lookup = static_cast<Lookup*>(arg);
  --lookup->queries;
  if (status == ARES_EDESTRUCTION || lookup->finished) {
    release(lookup);
    return nullptr;
  }
  return lookup;
}

void ReverseDns::onPtrAnswer(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                             int alen) {
  Lookup* lookup = answered(arg, status);
  if (lookup == nullptr) {
    return;
  }
  ReverseDns& self = *lookup->owner;
  smtp::DnsAnswer answer = smtp::DnsAnswer::Found;
  std::string name;
  std::string detail;
  if (status == ARES_SUCCESS) {
    hostent* host = nullptr;
    const int addrLen = lookup->family == AF_INET ? 4 : 16;
    status = ares_parse_ptr_reply(abuf, alen, lookup->bytes.data(), addrLen, lookup->family, &host);
    if (status == ARES_SUCCESS) {
      name = strip(host->h_name);  // the first PTR record, as getnameinfo() gives Postfix
      ares_free_hostent(host);
    }
  }
  if (status != ARES_SUCCESS) {
    answer = failedAnswer(status);
    detail = ares_strerror(status);
  }
  auto outcome = smtp::afterReverse(lookup->addr, answer, name, detail);
  if (outcome) {
    self.finish(lookup, std::move(*outcome));
    return;
  }
  lookup->ptrName = std::move(name);
  self.startForward(lookup);
}

void ReverseDns::startForward(Lookup* lookup) {
  // Postfix asks for the client's own family only (hostname_to_sockaddr_pf).
  ++lookup->queries;
  ares_query(channel_, lookup->ptrName.c_str(), kClassIn,
             lookup->family == AF_INET ? kTypeA : kTypeAaaa, &ReverseDns::onForwardAnswer, lookup);
}

void ReverseDns::onForwardAnswer(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                                 int alen) {
  Lookup* lookup = answered(arg, status);
  if (lookup == nullptr) {
    return;
  }
  std::vector<std::string> addresses;
  if (status == ARES_SUCCESS) {
    hostent* host = nullptr;
    status = lookup->family == AF_INET ? ares_parse_a_reply(abuf, alen, &host, nullptr, nullptr)
                                       : ares_parse_aaaa_reply(abuf, alen, &host, nullptr, nullptr);
    if (status == ARES_SUCCESS) {
      for (int i = 0; host->h_addr_list[i] != nullptr && i < kMaxAddresses; ++i) {
        char text[INET6_ADDRSTRLEN] = {};
        if (inet_ntop(host->h_addrtype, host->h_addr_list[i], text, sizeof text) != nullptr) {
          addresses.emplace_back(text);
        }
      }
      ares_free_hostent(host);
    }
  }
  const smtp::DnsAnswer answer =
      status == ARES_SUCCESS ? smtp::DnsAnswer::Found : failedAnswer(status);
  lookup->owner->finish(lookup,
                        smtp::afterForward(lookup->addr, lookup->ptrName, answer, addresses,
                                           status == ARES_SUCCESS ? "" : ares_strerror(status)));
}

void ReverseDns::finish(Lookup* lookup, smtp::ClientName name) {
  if (lookup->finished) {
    return;
  }
  if (starting_) {
    // Never from inside start(): the caller has not even stored the lookup yet.
    lookup->early = std::move(name);
    lookup->deadline = 0;
    unlink(lookup);
    lookup->next = head_;
    if (head_ != nullptr) {
      head_->prev = lookup;
    }
    head_ = lookup;
    if (tail_ == nullptr) {
      tail_ = lookup;
    }
    return;  // start() arms the deadline timer, which finds it due
  }
  deliver(lookup, name);
  armDeadline();
}

void ReverseDns::deliver(Lookup* lookup, const smtp::ClientName& name) {
  lookup->finished = true;
  unlink(lookup);
  Handler* handler = std::exchange(lookup->handler, nullptr);
  release(lookup);  // before the call: the handler may be anything, the lookup is done
  if (handler != nullptr) {
    handler->onClientName(name);
  }
}

void ReverseDns::onDeadline() {
  const std::uint64_t now = uv_now(loop_);
  while (head_ != nullptr && head_->deadline <= now) {
    Lookup* lookup = head_;
    const smtp::ClientName name = lookup->early
                                      ? std::move(*lookup->early)
                                      : smtp::timedOut(lookup->addr, lookup->ptrName, timeout_);
    deliver(lookup, name);
  }
  armDeadline();
}

void ReverseDns::armDeadline() {
  if (closed_ || !timersOpen_) {
    return;
  }
  if (head_ == nullptr) {
    uv_timer_stop(&deadlineTimer_);
    return;
  }
  const std::uint64_t now = uv_now(loop_);
  const std::uint64_t in = head_->deadline > now ? head_->deadline - now : 0;
  uv_timer_start(
      &deadlineTimer_, [](uv_timer_t* t) { static_cast<ReverseDns*>(t->data)->onDeadline(); }, in,
      0);
}

void ReverseDns::link(Lookup* lookup) {
  lookup->prev = tail_;
  lookup->next = nullptr;
  if (tail_ != nullptr) {
    tail_->next = lookup;
  } else {
    head_ = lookup;
  }
  tail_ = lookup;
}

void ReverseDns::unlink(Lookup* lookup) {
  if (lookup->prev != nullptr) {
    lookup->prev->next = lookup->next;
  } else if (head_ == lookup) {
    head_ = lookup->next;
  }
  if (lookup->next != nullptr) {
    lookup->next->prev = lookup->prev;
  } else if (tail_ == lookup) {
    tail_ = lookup->prev;
  }
  lookup->prev = nullptr;
  lookup->next = nullptr;
}

void ReverseDns::release(Lookup* lookup) {
  if (lookup->finished && lookup->queries == 0) {
    delete lookup;
  }
}

void ReverseDns::onSocketState(void* data, int fd, int readable, int writable) {
  static_cast<ReverseDns*>(data)->socketState(fd, readable != 0, writable != 0);
}

void ReverseDns::socketState(int fd, bool readable, bool writable) {
  if (loop_ == nullptr) {
    return;  // check()'s probe channel: it never opens a socket
  }
  auto it = std::find_if(polls_.begin(), polls_.end(), [fd](const Poll* p) { return p->fd == fd; });
  if (!readable && !writable) {
    // c-ares closes the socket right after this: stop watching it first (uv_poll must not
    // outlive its descriptor), and free the handle once libuv is done with it.
    if (it != polls_.end()) {
      Poll* poll = *it;
      polls_.erase(it);
      uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle),
               [](uv_handle_t* handle) { delete static_cast<Poll*>(handle->data); });
    }
    return;
  }
  Poll* poll = it != polls_.end() ? *it : nullptr;
  if (poll == nullptr) {
    poll = new Poll;
    poll->owner = this;
    poll->fd = fd;
    if (const int rc = uv_poll_init_socket(loop_, &poll->handle, fd); rc != 0) {
      // The query cannot be read; c-ares' own timeout and the deadline still end it.
      log::warning(std::string("dns: watching a resolver socket: ") + uv_strerror(rc));
      delete poll;
      return;
    }
    poll->handle.data = poll;
    uv_unref(reinterpret_cast<uv_handle_t*>(&poll->handle));
    polls_.push_back(poll);
  }
  const int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
  uv_poll_start(&poll->handle, events, [](uv_poll_t* handle, int status, int ready) {
    const auto* p = static_cast<Poll*>(handle->data);
    // An error on the socket: let c-ares read it and find out (it then tries another server).
    const bool read = status < 0 || (ready & UV_READABLE) != 0;
    const bool write = status < 0 || (ready & UV_WRITABLE) != 0;
    p->owner->process(read ? p->fd : ARES_SOCKET_BAD, write ? p->fd : ARES_SOCKET_BAD);
  });
}

void ReverseDns::process(int readFd, int writeFd) {
  if (closed_) {
    return;
  }
  ares_process_fd(channel_, readFd, writeFd);
  armAresTimer();
}

void ReverseDns::armAresTimer() {
  if (closed_ || !timersOpen_) {
    return;
  }
  timeval buffer{};
  const timeval* next = ares_timeout(channel_, nullptr, &buffer);
  if (next == nullptr) {
    uv_timer_stop(&aresTimer_);  // no query running
    return;
  }
  // Rounded up: a timer that fires a little early would only find nothing due yet.
  const auto ms = static_cast<std::uint64_t>(next->tv_sec) * 1000 +
                  static_cast<std::uint64_t>((next->tv_usec + 999) / 1000);
  uv_timer_start(
      &aresTimer_,
      [](uv_timer_t* t) {
        static_cast<ReverseDns*>(t->data)->process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      },
      ms, 0);
}

void ReverseDns::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  // Every query still running ends here (ARES_EDESTRUCTION frees its lookup, if finished), and
  // every socket is reported closed (socketState closes its poll handle).
  if (channel_ != nullptr) {
    ares_destroy(std::exchange(channel_, nullptr));
  }
  // Lookups whose session is still there cannot be (a loop ends only once its sessions did),
  // but none may leak: they are dropped without a call.
  while (head_ != nullptr) {
    Lookup* lookup = head_;
    lookup->handler = nullptr;
    lookup->finished = true;
    unlink(lookup);
    release(lookup);
  }
  if (timersOpen_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&aresTimer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&deadlineTimer_), nullptr);
  }
}

}  // namespace certrelay::proxy
