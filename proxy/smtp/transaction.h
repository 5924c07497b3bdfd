#pragma once
// One mail transaction as the dialogue tracks it: from an accepted MAIL to its end (the final
// reply to the content, RSET, a new EHLO, STARTTLS, or a failure). Everything here is forgotten
// together, by reset().

#include <cstddef>
#include <string>

namespace certrelay::smtp {

struct Transaction {
  bool open = false;           // MAIL accepted locally (the backend may still refuse it)
  bool lost = false;           // the backend failed inside it: its remaining commands get 451 4.3.0
  bool utf8 = false;           // MAIL ... SMTPUTF8
  std::string from;            // canonical sender, for logs
  std::size_t recipients = 0;  // RCPT commands seen
  std::size_t forwarded = 0;   // RCPT commands forwarded to the backend
  std::string firstRecipient;  // for "for <rcpt>" in the Received header (one recipient only)
  bool awaiting354 = false;    // DATA went to the backend; nothing more is parsed until its reply
  bool bdat = false;           // the content goes with BDAT (DATA is refused from then on)
  bool headerSent = false;     // the proxy's Received header went out for this message

  void reset() { *this = Transaction{}; }
};

}  // namespace certrelay::smtp
