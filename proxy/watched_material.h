#pragma once
// What the proxy watches, as MaterialWatcher specs: the fingerprint table, the TLS generation and
// the backend hop's TLS generation.
// Each publishes into SharedState, where workers pick it up without a lock.

#include "proxy/material_watcher.h"
#include "proxy/shared_state.h"

namespace certrelay::proxy {

// policy.fingerprints (must be set): a new table goes into shared.policy at once (next RCPT).
MaterialWatcher::Spec policyMaterial(SharedState& shared);

// tls.cert/key pairs, tls.client_ca, tls.ticket_keys: a new tls::Context goes into shared.tls
// (next session); a certificate expiring within 7 days is logged at each publication.
MaterialWatcher::Spec tlsMaterial(SharedState& shared);

// backend.tls_ca, backend.tls_cert/key (backend.tls set): a new tls::ClientContext goes into
// shared.backendTls (next backend connection; its session cache starts empty).
MaterialWatcher::Spec backendTlsMaterial(SharedState& shared);

}  // namespace certrelay::proxy
