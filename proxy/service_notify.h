#pragma once
// The service manager's readiness protocol (sd_notify(3)) without libsystemd: one datagram of
// "KEY=VALUE" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for an
// abstract socket). systemd sets the variable for Type=notify units; elsewhere it is unset and
// every call is a no-op. Nothing here can fail the process: errors are only reported as false.

#include <string_view>

namespace certrelay::proxy {

// Sends `state` (e.g. "READY=1") as one datagram. False when $NOTIFY_SOCKET is unset, empty or
// unusable, or the datagram could not be sent.
bool notifyService(std::string_view state);

// READY=1: start-up is complete (after the "ready:" log line: listeners bound, files loaded).
bool notifyReady();
// RELOADING=1 with MONOTONIC_USEC: a reload began; send notifyReady() when it is done.
bool notifyReloading();
// STOPPING=1: the drain began.
bool notifyStopping();

}  // namespace certrelay::proxy
