// Micro-benchmarks of the relay policy: address parsing, the per-recipient decision, and the
// relay_clientcerts fingerprint table (lookup and reload parse).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/address.h"
#include "policy/relay_policy.h"

namespace {

using namespace certrelay::policy;

// The longest path accepted (256 octets with the brackets: 64-octet local part) and one octet
// more (refused as TooLong).
std::string makeLongPath(std::size_t size) {
  std::string path = "<" + std::string(64, 'l') + "@";
  while (path.size() + 9 < size) {
    path += std::string(std::min<std::size_t>(60, size - 9 - path.size()), 'd');
    path += '.';
  }
  path.pop_back();
  path += ".example>";
  return path;
}
const std::string& longPath() {
  static const std::string path = makeLongPath(256);
  return path;
}
const std::string& tooLongPath() {
  static const std::string path = makeLongPath(257);
  return path;
}

// Counter "error": the AddressError (0 none, 1 syntax, 2 too long, 3 non-ASCII).
void BM_ParsePath(benchmark::State& state, std::string_view path) {
  AddressError error = AddressError::None;
  for ([[maybe_unused]] auto _ : state) {
    const ParsedAddress parsed = parsePath(path, false);
    error = parsed.error;
    benchmark::DoNotOptimize(parsed.mailbox.domain.data());
  }
  state.counters["error"] = static_cast<double>(error);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(path.size()));
}
BENCHMARK_CAPTURE(BM_ParsePath, typical, "<bob@example.com>");
BENCHMARK_CAPTURE(BM_ParsePath, bare, "bob@example.com");
BENCHMARK_CAPTURE(BM_ParsePath, postmaster, "<postmaster>");
BENCHMARK_CAPTURE(BM_ParsePath, ip_literal, "<bob@[192.0.2.1]>");
BENCHMARK_CAPTURE(BM_ParsePath, source_route, "<@a.example,@b.example:bob@example.com>");
BENCHMARK_CAPTURE(BM_ParsePath, percent_hack, "<bob%remote.example@example.com>");
BENCHMARK_CAPTURE(BM_ParsePath, bang_path, "<remote.example!bob@example.com>");
BENCHMARK_CAPTURE(BM_ParsePath, quoted_at, "<\"bob@remote.example\"@example.com>");
BENCHMARK_CAPTURE(BM_ParsePath, two_at, "<bob@remote.example@example.com>");
BENCHMARK_CAPTURE(BM_ParsePath, non_ascii, "<j\xc3\xb6rg@example.com>");
BENCHMARK_CAPTURE(BM_ParsePath, unbalanced, "<<bob@example.com>");
BENCHMARK_CAPTURE(BM_ParsePath, longest, std::string_view(longPath()));
BENCHMARK_CAPTURE(BM_ParsePath, too_long, std::string_view(tooLongPath()));

Policy makePolicy() {
  Policy policy;
  policy.localDomains = LocalDomains(
      {"example.com", ".example.org", "lab.example", "mail.example.net", "[192.0.2.1]"});
  policy.relayNetworks = NetworkList::parse({"10.0.0.0/8", "192.168.0.0/16", "2001:db8:1::/48"});
  return policy;
}

// Captured: trusted client, path. Counter "verdict": 0 accept, 1 relay denied, 2 bad address.
void BM_DecideRecipient(benchmark::State& state, bool trusted, std::string_view path) {
  const Policy policy = makePolicy();
  Verdict verdict = Verdict::BadAddress;
  for ([[maybe_unused]] auto _ : state) {
    const Decision decision = decideRecipient(policy, trusted, path, false);
    verdict = decision.verdict;
    benchmark::DoNotOptimize(decision.canonical.data());
  }
  state.counters["verdict"] = static_cast<double>(verdict);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_DecideRecipient, local_untrusted, false, "<bob@example.com>");
BENCHMARK_CAPTURE(BM_DecideRecipient, subdomain_untrusted, false, "<bob@mx.sub.example.org>");
BENCHMARK_CAPTURE(BM_DecideRecipient, remote_untrusted_denied, false, "<bob@remote.example>");
BENCHMARK_CAPTURE(BM_DecideRecipient, remote_trusted, true, "<bob@remote.example>");
BENCHMARK_CAPTURE(BM_DecideRecipient, percent_hack_untrusted, false,
                  "<bob%remote.example@example.com>");
BENCHMARK_CAPTURE(BM_DecideRecipient, source_route_trusted, true,
                  "<@a.example,@b.example:bob@remote.example>");
BENCHMARK_CAPTURE(BM_DecideRecipient, non_ascii_untrusted, false, "<j\xc3\xb6rg@example.com>");
BENCHMARK_CAPTURE(BM_DecideRecipient, longest_untrusted, false, std::string_view(longPath()));

// --- Fingerprint table ---------------------------------------------------------------------

constexpr std::size_t kEntries = 100'000;

std::uint64_t splitmix(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A pseudo-random SHA-256-sized fingerprint: canonical (upper hex, no colons) and the colon form
// a Postfix table usually holds.
std::string fingerprint(std::uint64_t seed, bool colons) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (int word = 0; word < 4; ++word) {
    const std::uint64_t v = splitmix(seed);
    for (int b = 0; b < 8; ++b) {
      const auto byte = static_cast<unsigned>((v >> (8 * b)) & 0xff);
      if (colons && !out.empty()) {
        out.push_back(':');
      }
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 15]);
    }
  }
  return out;
}

// The table text: a comment header, then kEntries lines "AA:BB:... identity" (every 10th line
// without an identity, every 7th in lower case without colons).
const std::string& tableText() {
  static const std::string text = [] {
    std::string t = "# relay_clientcerts: generated for the micro-benchmark\n\n";
    for (std::size_t i = 0; i < kEntries; ++i) {
      std::string fp = fingerprint(i, i % 7 != 0);
      if (i % 7 == 0) {
        for (char& c : fp) {
          c = static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
        }
      }
      t += fp;
      if (i % 10 != 0) {
        t += "  client" + std::to_string(i) + ".lab.example";
      }
      t += '\n';
    }
    return t;
  }();
  return text;
}

const FingerprintTable& table() {
  static const FingerprintTable t = FingerprintTable::parse(tableText(), "bench");
  return t;
}

// 1024 keys to look up in turn, so one hot entry does not flatter the cache.
std::vector<std::string> lookupKeys(bool present) {
  std::vector<std::string> keys;
  for (std::uint64_t i = 0; i < 1024; ++i) {
    keys.push_back(present ? fingerprint((i * 97) % kEntries, false)
                           : fingerprint(kEntries + 1'000'000 + i, false));
  }
  return keys;
}

void BM_FingerprintLookup(benchmark::State& state, bool present) {
  const FingerprintTable& t = table();
  if (t.size() != kEntries) {
    state.SkipWithError("table size mismatch");
    return;
  }
  const std::vector<std::string> keys = lookupKeys(present);
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    const std::string* identity = t.find(keys[i++ & 1023]);
    if ((identity != nullptr) != present) {
      state.SkipWithError("unexpected lookup result");
      break;
    }
    benchmark::DoNotOptimize(identity);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_FingerprintLookup, hit, true);
BENCHMARK_CAPTURE(BM_FingerprintLookup, miss, false);

// What an untrusted client costs at RCPT: certificate and key fingerprints both missed, then
// relay_networks checked.
void BM_RelayAllowedMiss(benchmark::State& state) {
  Policy policy = makePolicy();
  policy.table = table();
  const std::vector<std::string> keys = lookupKeys(false);
  std::size_t i = 0;
  std::string identity;
  for ([[maybe_unused]] auto _ : state) {
    const CertificateKeys certKeys{keys[i & 1023], keys[(i + 1) & 1023]};
    ++i;
    benchmark::DoNotOptimize(policy.relayAllowed(certKeys, "198.51.100.7", &identity));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RelayAllowedMiss);

// The two halves of that miss.
void BM_TrustedIdentityMiss(benchmark::State& state) {
  Policy policy;
  policy.table = table();
  const std::vector<std::string> keys = lookupKeys(false);
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    const CertificateKeys certKeys{keys[i & 1023], keys[(i + 1) & 1023]};
    ++i;
    benchmark::DoNotOptimize(policy.trustedIdentity(certKeys));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TrustedIdentityMiss);

void BM_RelayNetworksContains(benchmark::State& state, std::string_view addr) {
  const Policy policy = makePolicy();
  for ([[maybe_unused]] auto _ : state) {
    benchmark::DoNotOptimize(policy.relayNetworks.contains(addr));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_RelayNetworksContains, v4_miss, "198.51.100.7");
BENCHMARK_CAPTURE(BM_RelayNetworksContains, v6_hit, "2001:db8:1::17");

// The reload cost: parsing the whole 100,000-entry text.
void BM_FingerprintTableParse(benchmark::State& state) {
  const std::string& text = tableText();
  for ([[maybe_unused]] auto _ : state) {
    const FingerprintTable t = FingerprintTable::parse(text, "bench");
    if (t.size() != kEntries) {
      state.SkipWithError("table size mismatch");
      break;
    }
    benchmark::DoNotOptimize(t.hash().data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kEntries));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_FingerprintTableParse)->Unit(benchmark::kMillisecond);

}  // namespace
