#pragma once
// Helpers shared by the tls/ sources only; not part of the module's interface.

#include <string>

namespace certrelay::tls {

// Pops every error on this thread's OpenSSL error queue and returns them as one line,
// "error:0A00010B:SSL routines::wrong version number; ...", with each entry's extra data (e.g.
// the file name of a failed fopen) appended. Empty when the queue was empty.
std::string drainErrorQueue();

// ex_data slot on SSL_CTX marking "a client CA was loaded" (see Context::create).
int clientCaMarkerIndex();

}  // namespace certrelay::tls
