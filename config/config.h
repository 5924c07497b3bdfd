#pragma once
// The validated, immutable configuration of one certrelay process.
//
// Security role: every limit and timeout the proxy enforces comes from here, so a value that
// is missing or out of range must be refused at load time (with `file:line: reason`), never
// silently replaced by something the operator did not ask for.
//
// Loading may throw ConfigError (config/ is the "control plane": exceptions are fine here;
// proxy/ and tls/ do not throw on the data path).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace certrelay::config {

// A "host:port" or "[v6]:port" endpoint. `host` holds no brackets; `port` may be 0 for
// listeners (the kernel picks one; the ready log line says which).
struct Endpoint {
  std::string host;
  uint16_t port = 0;

  // "127.0.0.1:2525" or "[::1]:2525".
  std::string toString() const;
  bool operator==(const Endpoint&) const = default;
};

// Parses "host:port" / "[v6]:port". Throws std::invalid_argument with a short reason.
// Syntax only (brackets are for hosts holding ':'); load() also requires a numeric IP address
// (listeners, admin) or a numeric address or host name (backend addresses).
Endpoint parseEndpoint(const std::string& text);

// Whether `endpoint.host` is a numeric IPv4 or IPv6 address (not a name to resolve).
bool isNumericHost(const Endpoint& endpoint);

// A network in CIDR notation: "192.0.2.0/24", "2001:db8::/32", "[2001:db8::]/32"; a bare
// address is a /32 or /128 network. An IPv4-mapped IPv6 network ("::ffff:192.0.2.0/120",
// prefix 96 or more) is stored as the IPv4 network it names, since IPv4-mapped client addresses
// are compared as IPv4.
struct Cidr {
  bool v6 = false;
  std::array<unsigned char, 16> address{};  // network byte order; IPv4 uses the first 4 bytes
  unsigned prefix = 0;                      // 0..32 (IPv4) or 0..128 (IPv6)

  // Canonical text: "192.0.2.0/24", "2001:db8::/32".
  std::string toString() const;
};

// Parses one CIDR strictly: decimal prefix without sign or leading zeros, brackets only around
// IPv6, no zone ids, no white space, and no address bits set beyond the prefix (Postfix only
// warns about those; a typo such as 192.0.2.1/16 would silently cover a far larger network).
// Throws std::invalid_argument with a short reason.
Cidr parseCidr(std::string_view text);

// How a listener starts TLS (listener.tls_mode).
//  Starttls  plaintext greeting, TLS after STARTTLS (port 25/587);
//  Implicit  TLS from the first byte, then the greeting inside TLS (RFC 8314, port 465).
enum class TlsMode { Starttls, Implicit };

// Whether a listener asks for a client certificate (listener.client_cert).
//  Request  a CertificateRequest; a client without a certificate still gets a session (untrusted);
//  Require  a handshake without a client certificate fails (logged);
//  None     no CertificateRequest at all (a public MX port where asking confuses some senders).
enum class ClientCertMode { Request, Require, None };

struct Listener {
  std::string name;
  Endpoint address;
  bool requireTls = false;  // MAIL before STARTTLS -> 530 5.7.0
  TlsMode tlsMode = TlsMode::Starttls;
  ClientCertMode clientCert = ClientCertMode::Request;
  // PROXY protocol (v1 or v2) before anything else: only from a peer in proxyNetworks (CIDRs as
  // written, each accepted by parseCidr; required when proxyProtocol is on). Without a valid
  // header, or from any other peer, the connection is closed before the greeting.
  bool proxyProtocol = false;
  std::vector<std::string> proxyNetworks;
};

// How the client's identity is handed to the backend (backend.identity):
//  Auto     XCLIENT when the backend offers it, else XFORWARD when offered, else nothing;
//  Xclient  XCLIENT only; a backend that does not offer it keeps the proxy from becoming ready;
//  Xforward XFORWARD only (logging on the backend; the proxy decides relaying);
//  None     neither (the Received header, if on, is then the only record).
enum class IdentityMode { Auto, Xclient, Xforward, None };

// "auto", "xclient", "xforward", "none": the config spelling.
constexpr std::string_view identityModeKeyword(IdentityMode mode) {
  switch (mode) {
    case IdentityMode::Xclient:
      return "xclient";
    case IdentityMode::Xforward:
      return "xforward";
    case IdentityMode::None:
      return "none";
    case IdentityMode::Auto:
      break;
  }
  return "auto";
}

// How sessions are spread over the healthy backends (backend.balance):
//  First       in the configured order: the first healthy one, the next ones only on failure;
//  RoundRobin  each new backend connection starts at the next healthy one (per worker).
enum class BalanceMode { First, RoundRobin };

// Whether the proxy speaks TLS to the backend (backend.tls):
//  None      plain TCP (the backend is on loopback or in the pod);
//  Starttls  after the backend's EHLO, STARTTLS; a backend that does not offer it is an error,
//            never a plaintext session;
//  Implicit  TLS from the first byte (the backend's smtps / wrapper-mode port, RFC 8314).
enum class BackendTlsMode { None, Starttls, Implicit };

// "none", "starttls", "implicit": the config spelling.
constexpr std::string_view backendTlsKeyword(BackendTlsMode mode) {
  switch (mode) {
    case BackendTlsMode::Starttls:
      return "starttls";
    case BackendTlsMode::Implicit:
      return "implicit";
    case BackendTlsMode::None:
      break;
  }
  return "none";
}

// The proxy as a TLS client of the backend (backend.tls*). Whenever mode is not None, the
// backend's certificate is verified against caFile and must carry the expected name; there is
// no unverified mode.
struct BackendTls {
  BackendTlsMode mode = BackendTlsMode::None;
  // backend.tls_ca: PEM bundle of the CAs that may issue the backend's certificate. Required
  // when mode is not None (no implicit system store: docs/configuration.md says why).
  std::filesystem::path caFile;
  // backend.tls_server_name: the name the certificate must carry (and the SNI sent). Empty: the
  // configured host of each backend address (a name, or the IP address itself).
  std::string serverName;
  // backend.tls_cert / backend.tls_key: the proxy's own client certificate; both or neither.
  std::filesystem::path certFile;
  std::filesystem::path keyFile;

  bool enabled() const { return mode != BackendTlsMode::None; }
};

struct Backend {
  // backend.address (one) or backend.addresses (several), in the order written: numeric
  // addresses or host names. Names are resolved by the proxy (asynchronously, at start-up and
  // every probe_interval); each resolved address is probed and used on its own. Never empty.
  std::vector<Endpoint> addresses;
  BalanceMode balance = BalanceMode::First;
  // Name the proxy gives in its own EHLO to the backend (before XCLIENT). Defaults to hostname.
  std::string heloName;
  // How often the capability probe refreshes what the backend offers.
  std::chrono::milliseconds probeInterval{30'000};
  IdentityMode identity = IdentityMode::Auto;
  // Prepend certrelay's own Received header (Postfix layout plus the certificate fingerprint).
  bool receivedHeader = true;
  // Concurrent backend sessions per process (0 = unlimited). The backend is set up early (at the
  // client's EHLO inside TLS) only while fewer than 80% of these are open; at the cap, MAIL gets
  // 451 4.3.2 (the client retries later) instead of waiting for a free one.
  std::size_t maxConnections = 0;
  BackendTls tls;
};

// One server certificate chain and its private key (tls.cert[i], tls.key[i]).
struct CertificatePair {
  std::filesystem::path cert;  // PEM, leaf then chain
  std::filesystem::path key;   // PEM private key, unencrypted
};

struct Tls {
  // tls.cert / tls.key: one file each, or two lists of the same length (e.g. an ECDSA and an RSA
  // pair, so old RSA-only clients keep working). Never empty after load.
  std::vector<CertificatePair> certificates;
  std::filesystem::path clientCa;  // optional PEM bundle; empty = none
  // tls.ticket_keys: session-ticket key files (80 bytes as nginx/Envoy, or 48). The first
  // encrypts, all decrypt. Non-empty turns stateless tickets on (session_tickets is implied).
  std::vector<std::filesystem::path> ticketKeys;
  // tls.strict_sni: a ClientHello whose SNI names none of our certificates is refused.
  bool strictSni = false;
  std::string minVersion = "TLSv1.2";     // "TLSv1.2" or "TLSv1.3"
  std::size_t sessionCacheSize = 20'480;  // server-side session cache entries; 0 = off
  // tls.session_cache_memory: bytes the server-side session cache may hold (encoded sessions
  // plus a fixed cost per entry, tls/session_cache.h); the least recently used sessions go
  // first. 16 MiB holds ~20,000 sessions with a P-256 client certificate (~830 bytes each), so
  // the entry limit above and this bound meet near the same point. Resuming from it decodes the
  // session (client certificate included): 2.59M instead of 2.29M instructions per resumed
  // handshake (+13 %, callgrind), 3.97M instead of 3.91M per full one (the session is encoded).
  // 0 = OpenSSL's internal cache, bounded by session_cache_size only: no decoding, but each
  // cached session keeps its parsed certificates (~9.4 KiB, more with larger client
  // certificates, and the client chooses those): 16 MiB against ~190 MiB at 20,480 sessions.
  std::size_t sessionCacheMemory = 16UL * 1024 * 1024;
  std::chrono::seconds sessionTimeout{3'600};  // cache and ticket lifetime
  // Stateless (RFC 5077) tickets. Off by default: with it off, TLS 1.3 still resumes through
  // stateful tickets that name an entry of the server cache, which saves encrypting the whole
  // session (client certificate included) into every ticket. Measured at about 21% of a full
  // handshake's instructions with OpenSSL's internal cache; the byte-bounded cache now encodes
  // the session once per full handshake and decodes it per resumption, as a ticket does, so the
  // encryption is what remains saved. Turn it on when clients must resume across restarts.
  bool sessionTickets = false;
  // OpenSSL 3.0's slow per-certificate EC key decoder bypassed (tls/compat.h): 20-25% of the
  // CPU of a full handshake with a client certificate. It changes process-wide OpenSSL state
  // that certrelay itself never relies on (see compat.h); false restores OpenSSL's own path.
  bool fastEcKeyDecoding = true;
  int ticketsPerHandshake = 1;  // TLS 1.3 tickets sent after a full handshake (OpenSSL: 2)
  // TLS 1.3 tickets sent after a resumed handshake (OpenSSL: as many as after a full one).
  int ticketsOnResumption = 1;
};

// Digest of the certificate and public-key fingerprints (Postfix smtpd_tls_fingerprint_digest).
enum class FingerprintDigest { Sha256, Sha1, Md5 };

// "sha256", "sha1", "md5": the config spelling.
constexpr std::string_view digestKeyword(FingerprintDigest digest) {
  switch (digest) {
    case FingerprintDigest::Sha1:
      return "sha1";
    case FingerprintDigest::Md5:
      return "md5";
    case FingerprintDigest::Sha256:
      break;
  }
  return "sha256";
}

// Output size in bytes: 32, 20, 16.
constexpr std::size_t digestSize(FingerprintDigest digest) {
  switch (digest) {
    case FingerprintDigest::Sha1:
      return 20;
    case FingerprintDigest::Md5:
      return 16;
    case FingerprintDigest::Sha256:
      break;
  }
  return 32;
}

struct Policy {
  std::filesystem::path fingerprints;     // Postfix relay_clientcerts format; empty = none
  std::vector<std::string> localDomains;  // lower-cased, no trailing dot
  FingerprintDigest digest = FingerprintDigest::Sha256;  // of table entries and peer facts
  std::vector<std::string> relayNetworks;  // CIDRs as written, each accepted by parseCidr
  std::chrono::milliseconds reloadPollInterval{30'000};  // fallback re-read of policy files
  std::chrono::milliseconds reloadDebounce{200};         // quiet time after a change event
};

struct Timeouts {
  std::chrono::milliseconds command{300'000};  // greeting / between commands
  // The command timeout while the process holds more than 80% of limits.max_connections
  // (Postfix's ${stress?{10}:{300}}s): idle clients let go of their places sooner.
  std::chrono::milliseconds commandUnderStress{10'000};
  std::chrono::milliseconds tlsHandshake{60'000};    // whole handshake, not per read
  std::chrono::milliseconds data{180'000};           // inactivity while receiving DATA
  std::chrono::milliseconds backendConnect{30'000};  // TCP connect + greeting
  std::chrono::milliseconds backendReply{300'000};   // any backend reply, end of data too
  // A client idle this long outside a transaction gives its backend connection back (QUIT);
  // its next MAIL opens a new one. Idle clients must not pin backend processes.
  std::chrono::milliseconds backendIdle{1'000};
  // The PROXY protocol header, from accept (Postfix's smtpd_upstream_proxy_timeout).
  std::chrono::milliseconds proxyHeader{5'000};
  // timeouts.shutdown is read as shutdown.timeout (its old name).
};

struct Limits {
  std::size_t maxLineLength = 2'048;    // command line incl. CRLF -> 500 5.5.2
  std::size_t maxRecipients = 1'000;    // per message -> 452 4.5.3
  unsigned maxErrors = 20;              // per session -> 421 4.7.0
  std::size_t maxConnections = 10'000;  // per process -> 421 4.7.0 at accept
  // Whether the file set max_connections: an unset one is lowered at start to what RLIMIT_NOFILE
  // fits; a set one that does not fit refuses to start (proxy/descriptor_budget.h).
  bool maxConnectionsSet = false;
  std::size_t highWatermark = 256UL * 1024;  // outgoing bytes queued before the other side pauses
  // Anvil-style limits per client (Postfix smtpd_client_*_limit), counted per process: a
  // replica behind a Service counts only what it sees. 0 = unlimited (the default for all four).
  // Concurrent connections per client address -> 421 4.7.0 at connect.
  std::size_t clientConnections = 0;
  // New connections per client address per rate_window -> 421 4.7.0 at connect.
  std::size_t clientConnectionRate = 0;
  // MAIL / RCPT commands per rate_window, per listed certificate identity when the client is
  // trusted by one, else per address -> 450 4.7.1 at MAIL / RCPT.
  std::size_t clientMessageRate = 0;
  std::size_t clientRecipientRate = 0;
  std::chrono::milliseconds rateWindow{60'000};  // Postfix anvil_rate_time_unit
  // Pregreet detection (nginx smtp_greeting_delay, Postfix postscreen's pregreet test): the
  // greeting waits this long, and a client that talks first gets 554 5.5.0 and is closed.
  // 0 = off (default). Not on implicit-TLS listeners, where the client must speak first.
  std::chrono::milliseconds greetingDelay{0};
  // Postfix smtpd_junk_command_limit: NOOP, RSET, VRFY and HELP beyond this many (since the last
  // MAIL) each count as an error toward max_errors. 0 = no junk limit.
  std::size_t maxJunkCommands = 100;
  // Messages per session; the next MAIL gets 421 4.7.0 and the session closes (the client
  // reconnects). 0 = unlimited (default; Postfix has no such limit, OpenSMTPD's is 100).
  std::size_t maxMessagesPerSession = 0;
  // Postfix smtpd_min_data_rate (bytes/s): message content must arrive within timeouts.data plus
  // one second per this many bytes received so far (measured from the 354, or from each BDAT),
  // else 421 4.4.2 timeout. timeouts.data stays the inactivity limit. 0 = off.
  std::size_t minDataRate = 500;
  // Clients (CIDRs as written, each accepted by parseCidr) to which none of the four applies.
  // Default: loopback, as Postfix's $mynetworks (mynetworks_style = host) includes it.
  std::vector<std::string> exemptNetworks{"127.0.0.0/8", "::1/128"};

  // Whether any of the four client limits is on (the counting table exists only then).
  bool clientLimitsEnabled() const {
    return clientConnections != 0 || clientConnectionRate != 0 || clientMessageRate != 0 ||
           clientRecipientRate != 0;
  }
};

// [admin]: the HTTP endpoint for probes, metrics, drain and reload (absent = off).
struct Admin {
  bool enabled = false;  // admin.address was given
  Endpoint address;      // numeric IP and port; port 0 = any (logged)
  // /livez fails when a worker loop has not turned for this long (a stuck loop).
  std::chrono::milliseconds stallTimeout{10'000};
};

// [log]: how lines are written.
enum class LogFormat { Text, Json };
enum class LogLevel { Debug, Info, Warning, Error };
struct Log {
  LogFormat format = LogFormat::Text;
  LogLevel level = LogLevel::Info;
  // How long an info line may wait in its worker's batch (0: until the end of the loop
  // iteration that wrote it). Warnings and errors never wait.
  std::chrono::milliseconds flushInterval{50};
};

// [shutdown]: the graceful drain (SIGTERM, SIGQUIT, POST /drain).
struct Shutdown {
  // Keep accepting this long after readiness turns 503, so that endpoint removal (a Kubernetes
  // Service, a load balancer) catches up before the listeners close.
  std::chrono::milliseconds delay{5'000};
  // Hard stop: whatever still runs this long after the drain began is closed.
  std::chrono::milliseconds timeout{30'000};
};

// [dns]: the client's verified host name (Postfix's reverse lookup with forward confirmation).
struct Dns {
  // Off by default (a sidecar's clients are its own pods): the name is then `unknown` everywhere
  // and XCLIENT says NAME=[UNAVAILABLE]. On for an edge proxy facing the Internet.
  bool reverseLookup = false;
  // Numeric resolvers to ask (port 53 unless given); empty = the system's (/etc/resolv.conf).
  std::vector<Endpoint> servers;
  // The whole lookup (PTR, then A or AAAA of the name) from accept; past it the name is
  // [TEMPUNAVAIL] to the backend and `unknown` in logs. Only the backend set-up (at MAIL) ever
  // waits for it, never the greeting.
  std::chrono::milliseconds timeout{2'000};
};

// [metrics]
struct Metrics {
  // Per-identity counters (labels bounded by the fingerprint table's identities).
  bool perIdentity = false;
};

struct Config {
  std::filesystem::path file;  // the file it was loaded from (absolute)
  std::string hostname;        // greeting and EHLO name
  unsigned workers = 0;        // resolved: never 0 after load (0 in the file = one per core)
  std::vector<Listener> listeners;
  Backend backend;
  Tls tls;
  Policy policy;
  Timeouts timeouts;
  Limits limits;
  Admin admin;
  Log log;
  Shutdown shutdown;
  Dns dns;
  Metrics metrics;
  // CERTRELAY_<SECTION>_<KEY> overrides in force ("backend.address = ... (CERTRELAY_...)").
  std::vector<std::string> environmentOverrides;
};

// `file:line: reason`, or `file: reason` when no line applies.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads, validates and resolves a config file: relative paths become relative to the file's
// directory, `workers = 0` becomes the number of CPUs this process may use, every referenced
// file must exist and be readable, CERTRELAY_<SECTION>_<KEY> variables override scalar keys.
// Throws ConfigError.
Config load(const std::filesystem::path& file);

// Same, from text (for tests); `origin` names the file in messages and anchors relative paths.
// Without `environment`, no overrides apply.
Config parse(const std::string& text, const std::filesystem::path& origin);
Config parse(const std::string& text, const std::filesystem::path& origin,
             const std::vector<std::pair<std::string, std::string>>& environment);

}  // namespace certrelay::config
