// One connection slot of certrelay-load: the SMTP/STARTTLS client state machine.

#include <openssl/err.h>

#include <charconv>
#include <cstring>

#include "bench/load/load.h"

namespace certrelay::load {
namespace {

constexpr std::uint64_t kStepTimeoutMs = 30'000;

struct WriteRequest {
  uv_write_t req;
  std::string data;
};

double msSince(std::uint64_t startNs) {
  return static_cast<double>(nowNs() - startNs) / 1e6;
}

std::string envelope(const Options& o) {
  return "MAIL FROM:<" + o.from + ">\r\nRCPT TO:<" + o.rcpt + ">\r\n";
}

}  // namespace

Slot::Slot(Runner& runner, int index) : runner_(runner), index_(index) {
  uv_timer_init(runner_.loop(), &timer_);
  timer_.data = this;
}

void Slot::startSession() {
  busy_ = true;
  inSetup_ = true;
  ++generation_;
  sessionStart_ = nowNs();
  step_ = Step::Greeting;
  expected_.assign({220});
  in_.clear();
  messagesLeft_ = runner_.options().messages;
  tcp_ = new uv_tcp_t;
  uv_tcp_init(runner_.loop(), tcp_);
  tcp_->data = this;
  if (!bindSource()) {
    fail("bind");
    return;
  }
  auto* req = new uv_connect_t;
  req->data = this;
  armTimer();
  const int rc = uv_tcp_connect(req, tcp_, reinterpret_cast<const sockaddr*>(&runner_.address()),
                                [](uv_connect_t* r, int status) {
                                  auto* slot = static_cast<Slot*>(r->data);
                                  delete r;
                                  if (status != UV_ECANCELED) {
                                    slot->onConnected(status);
                                  }
                                });
  if (rc != 0) {
    delete req;
    fail("connect");
  }
}

bool Slot::bindSource() {
  const sockaddr_in* source = runner_.nextSource();
  // Port 0: the kernel picks a free port per source address, so each address adds a full
  // ephemeral range towards the one destination port.
  return source == nullptr || uv_tcp_bind(tcp_, reinterpret_cast<const sockaddr*>(source), 0) == 0;
}

void Slot::onConnected(int status) {
  if (status != 0 || tcp_ == nullptr) {
    fail("connect");
    return;
  }
  uv_tcp_nodelay(tcp_, 1);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(tcp_),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static thread_local char buffer[64 * 1024];
        *buf = uv_buf_init(buffer, sizeof buffer);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        static_cast<Slot*>(s->data)->onRead(nread, buf);
      });
}

void Slot::onRead(ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) {
    fail("closed");
    return;
  }
  if (ssl_ != nullptr) {
    onCiphertext(buf->base, static_cast<std::size_t>(nread));
  } else {
    onPlaintext(buf->base, static_cast<std::size_t>(nread));
  }
}

void Slot::onCiphertext(const char* data, std::size_t len) {
  BIO_write(rbio_, data, static_cast<int>(len));
  pumpTls();
}

void Slot::pumpTls() {
  if (step_ == Step::Handshake) {
    const int rc = SSL_do_handshake(ssl_);
    drainWbio();
    if (rc != 1) {
      const int err = SSL_get_error(ssl_, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        fail("tls");
      }
      return;
    }
    runner_.stats().handshakeMs.push_back(msSince(handshakeStart_));
    ++(SSL_session_reused(ssl_) ? runner_.stats().handshakesResumed
                                : runner_.stats().handshakesFull);
    step_ = Step::EhloTls;
    expected_.assign({250});
    sendText("EHLO load.example\r\n");
  }
  char buffer[16 * 1024];
  while (ssl_ != nullptr) {
    const int n = SSL_read(ssl_, buffer, sizeof buffer);
    if (n <= 0) {
      const int err = SSL_get_error(ssl_, n);
      drainWbio();
      if (err != SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        fail(err == SSL_ERROR_ZERO_RETURN ? "closed" : "tls");
      }
      return;
    }
    onPlaintext(buffer, static_cast<std::size_t>(n));
  }
}

void Slot::onPlaintext(const char* data, std::size_t len) {
  in_.append(data, len);
  std::size_t pos = 0;
  const std::uint64_t generation = generation_;
  while (busy_ && generation == generation_) {
    const std::size_t lf = in_.find('\n', pos);
    if (lf == std::string::npos) {
      break;
    }
    const std::size_t lineLen = lf - pos;
    if (lineLen < 3) {
      fail("protocol");
      return;
    }
    const bool last = lineLen == 3 || in_[pos + 3] != '-';
    int code = 0;  // three digits (RFC 5321 4.2); anything else is not a reply
    if (std::from_chars(in_.data() + pos, in_.data() + pos + 3, code).ptr != in_.data() + pos + 3) {
      fail("protocol");
      return;
    }
    pos = lf + 1;
    if (last) {
      const bool wasTls = ssl_ != nullptr;
      onReply(code);
      if (!busy_ || generation != generation_) {
        return;  // that reply ended the session (a new one may have started)
      }
      if (!wasTls && ssl_ != nullptr) {
        // STARTTLS accepted: anything after the 220 is not plaintext (and there is none).
        in_.clear();
        return;
      }
    }
  }
  in_.erase(0, pos);
}

void Slot::onReply(int code) {
  if (expected_.empty() || expected_.front() != code) {
    fail(expected_.empty() ? "unexpected_reply" : "reply_" + std::to_string(code));
    return;
  }
  expected_.pop_front();
  if (expected_.empty()) {
    advance();
  }
}

void Slot::advance() {
  const Options& o = runner_.options();
  switch (step_) {
    case Step::Greeting:
      step_ = Step::Ehlo;
      expected_.assign({250});
      sendText("EHLO load.example\r\n");
      return;
    case Step::Ehlo:
      if (o.starttls) {
        step_ = Step::StartTls;
        expected_.assign({220});
        sendText("STARTTLS\r\n");
      } else {
        afterEhlo();
      }
      return;
    case Step::StartTls:
      startTls();
      return;
    case Step::EhloTls:
      afterEhlo();
      return;
    case Step::Mail:
      step_ = Step::Rcpt;
      expected_.assign({250});
      sendText("RCPT TO:<" + o.rcpt + ">\r\n");
      return;
    case Step::Rcpt:
      step_ = Step::Data;
      expected_.assign({354});
      sendText("DATA\r\n");
      return;
    case Step::Data:
      sendBody();
      return;
    case Step::Body:
      messageDone();
      beginMessage();
      return;
    case Step::BodyThenNext:
      // The next group is already out: only its 250 250 354 are owed now.
      messageDone();
      messageStart_ = nextMessageStart_;
      step_ = Step::Data;
      expected_.assign({250, 250, 354});
      armTimer();
      return;
    case Step::Quit:
      finishSession(true);
      return;
    case Step::Handshake:
    case Step::Idle:
      return;
  }
}

void Slot::afterEhlo() {
  endSetup();
  if (runner_.options().idle) {
    step_ = Step::Idle;
    idleOpen_ = true;
    if (!timerClosed_) {
      uv_timer_stop(&timer_);  // an idle session waits for the hold, not a step deadline
    }
    runner_.slotIdle();
    return;
  }
  beginMessage();
}

void Slot::beginMessage() {
  const Options& o = runner_.options();
  if (messagesLeft_ <= 0) {
    step_ = Step::Quit;
    expected_.assign({221});
    sendText("QUIT\r\n");
    return;
  }
  messageStart_ = nowNs();
  if (o.bdat) {
    step_ = Step::Body;
    expected_.assign({250, 250, 250});
    sendText(envelope(o) + "BDAT " + std::to_string(runner_.body().size()) + " LAST\r\n" +
             runner_.body());
  } else if (o.behaviour != Behaviour::Lockstep) {
    step_ = Step::Data;
    expected_.assign({250, 250, 354});
    sendText(envelope(o) + "DATA\r\n");
  } else {
    step_ = Step::Mail;
    expected_.assign({250});
    sendText("MAIL FROM:<" + o.from + ">\r\n");
  }
}

void Slot::sendBody() {
  const Options& o = runner_.options();
  // behind-dot: the session's last dot goes alone, so QUIT stays a write of its own.
  if (o.behaviour != Behaviour::BehindDot || messagesLeft_ <= 1) {
    step_ = Step::Body;
    expected_.assign({250});
    sendText(runner_.body() + ".\r\n");
    return;
  }
  // As Postfix's smtp client with PIPELINING: the dot and the next MAIL+RCPT+DATA in one
  // write; the replies still come in order (250 for the dot, then 250 250 354).
  step_ = Step::BodyThenNext;
  expected_.assign({250});
  nextMessageStart_ = nowNs();
  sendText(runner_.body() + ".\r\n" + envelope(o) + "DATA\r\n");
}

void Slot::messageDone() {
  ++runner_.stats().messages;
  runner_.stats().messageMs.push_back(msSince(messageStart_));
  --messagesLeft_;
}

void Slot::endSetup() {
  if (inSetup_) {
    inSetup_ = false;
    runner_.setupEnded();
  }
}

void Slot::quitIdle() {
  if (step_ != Step::Idle || !busy_) {
    return;
  }
  idleOpen_ = false;
  step_ = Step::Quit;
  expected_.assign({221});
  sendText("QUIT\r\n");
}

void Slot::startTls() {
  ssl_ = SSL_new(runner_.sslContext());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(rbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);  // ssl_ owns both BIOs from here
  SSL_set_connect_state(ssl_);
  SSL_set_tlsext_host_name(ssl_, "localhost");
  if (runner_.options().resume && savedSession_ != nullptr) {
    SSL_set_session(ssl_, savedSession_);
  }
  step_ = Step::Handshake;
  handshakeStart_ = nowNs();
  pumpTls();
}

void Slot::sendText(const std::string& text) {
  armTimer();
  if (ssl_ == nullptr) {
    writeRaw(text);
    return;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const int n = SSL_write(ssl_, text.data() + done, static_cast<int>(text.size() - done));
    if (n <= 0) {
      ERR_clear_error();
      fail("tls");
      return;
    }
    done += static_cast<std::size_t>(n);
  }
  drainWbio();
}

void Slot::drainWbio() {
  char* data = nullptr;
  const long n = BIO_get_mem_data(wbio_, &data);
  if (n > 0) {
    std::string bytes(data, static_cast<std::size_t>(n));
    (void)BIO_reset(wbio_);
    writeRaw(bytes);
  }
}

void Slot::writeRaw(const std::string& bytes) {
  if (tcp_ == nullptr) {
    return;
  }
  auto* w = new WriteRequest;
  w->data = bytes;
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(tcp_), &buf, 1,
               [](uv_write_t* req, int) { delete static_cast<WriteRequest*>(req->data); }) != 0) {
    delete w;
    fail("write");
  }
}

void Slot::armTimer() {
  if (timerClosed_) {
    return;
  }
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<Slot*>(t->data)->fail("timeout"); }, kStepTimeoutMs,
      0);
}

void Slot::fail(const std::string& kind) {
  if (!busy_) {
    return;
  }
  ++runner_.stats().errors[kind];
  finishSession(false);
}

void Slot::finishSession(bool ok) {
  if (ok) {
    runner_.stats().sessionMs.push_back(msSince(sessionStart_));
    if (ssl_ != nullptr) {
      // close_notify: without it OpenSSL marks the session not resumable when the SSL is freed.
      SSL_shutdown(ssl_);
      drainWbio();
    }
  }
  ++runner_.stats().sessionsDone;
  if (!timerClosed_) {
    uv_timer_stop(&timer_);
  }
  closeSocket();
  busy_ = false;
  idleOpen_ = false;
  endSetup();
  if (runner_.mayStartSession()) {
    runner_.launch(*this);
  } else {
    runner_.slotFinished();
  }
}

void Slot::closeSocket() {
  if (ssl_ != nullptr) {
    if (runner_.options().resume) {
      // TLS 1.3 tickets arrive after the handshake: take the session at the end.
      SSL_SESSION* session = SSL_get1_session(ssl_);
      if (session != nullptr && SSL_SESSION_is_resumable(session) == 1) {
        if (savedSession_ != nullptr) {
          SSL_SESSION_free(savedSession_);
        }
        savedSession_ = session;
      } else if (session != nullptr) {
        SSL_SESSION_free(session);
      }
    }
    SSL_free(ssl_);
    ssl_ = nullptr;
    rbio_ = wbio_ = nullptr;
  }
  if (tcp_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    tcp_ = nullptr;
  }
}

void Slot::shutdown() {
  if (busy_) {
    ++runner_.stats().errors["stopped"];
    busy_ = false;
    closeSocket();
  }
  endSetup();
  if (!timerClosed_) {
    timerClosed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  }
  if (savedSession_ != nullptr) {
    SSL_SESSION_free(savedSession_);
    savedSession_ = nullptr;
  }
}

}  // namespace certrelay::load
