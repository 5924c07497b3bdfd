#pragma once
// Helpers shared by the tls/ sources only; not part of the module's interface.

#include <string>
#include <string_view>

#include "config/config.h"

namespace certrelay::tls {

// Pops every error on this thread's OpenSSL error queue and returns them as one line,
// "error:0A00010B:SSL routines::wrong version number; ...", with each entry's extra data (e.g.
// the file name of a failed fopen) appended. Empty when the queue was empty.
std::string drainErrorQueue();

// ex_data slot on SSL_CTX marking "a client CA was loaded" (see Context::create).
int clientCaMarkerIndex();

// The session id context of a connection in `mode`. OpenSSL resumes a session only under the
// context it was made in, so a session made where no certificate was asked for (none), or where
// none was sent (request), never resumes where one is required or asked for: the client does a
// full handshake there and is asked again.
std::string_view sessionIdContext(config::ClientCertMode mode);

// ex_data slot on SSL_CTX holding the fingerprint digest of the Context that owns it (see
// Context::create), as a pointer from digestSlotValue(). Empty slot: SHA-256.
int fingerprintDigestIndex();
// A pointer to static storage holding `digest`, for that slot.
void* digestSlotValue(config::FingerprintDigest digest);

}  // namespace certrelay::tls
