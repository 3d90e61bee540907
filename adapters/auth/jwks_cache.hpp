#pragma once
// The public keys of SMART clients and external issuers, by source (inline JWKS, file or URL).
// A URL's JWKS is fetched when first needed, again once older than max_age, and again when a
// token names a kid it does not have (the owner rotated its keys) — but at most once per
// refetch_interval per URL, so a stream of made-up kids cannot make the gateway hammer the
// owner's server. Thread-safe: each source has its own lock, held through its fetch, so one
// fetch serves every request that waits for it.
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "adapters/auth/jose.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::auth {

struct KeySource {
  std::string config_key;   ///< "parties.clinic-a.smart_clients.ehr": for messages
  std::string inline_json;  ///< exactly one of these three
  std::string file;
  std::string url;
};

/// Fetches a URL's body, blocking, bounded by its own timeout: the runtime's runs net::http_get
/// on the I/O threads; tests use a function.
using JwksFetch = std::function<Result<std::string>(const std::string& url)>;

class JwksCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  JwksCache(JwksFetch fetch, std::chrono::milliseconds refetch_interval,
            std::chrono::milliseconds max_age, Clock clock = {});

  /// Registers `source` as `id`. Inline and file sources are read and checked now (a start-up
  /// error names the config key); URL sources on first use.
  Result<void> add(const std::string& id, const KeySource& source);

  /// The key of source `id` named `kid` that fits `alg`. No kid: the one key that fits, when
  /// exactly one does. Refusals (kInvalid) say which: unknown kid (after a refetch, or because
  /// the last fetch is too recent to fetch again), a key that does not fit, a failed fetch.
  Result<Jwk> find(const std::string& id, std::string_view kid, Alg alg);

  /// Fetches made so far (every source): for tests and metrics.
  std::uint64_t fetches() const;

 private:
  struct Entry {
    KeySource source;
    std::mutex lock;  // held through a fetch
    Jwks keys;
    bool loaded = false;
    std::chrono::steady_clock::time_point fetched_at{};
    std::chrono::steady_clock::time_point tried_at{};
  };
  Result<void> fetch(Entry& e, std::chrono::steady_clock::time_point now);
  Entry* entry(const std::string& id) const;

  JwksFetch fetch_;
  std::chrono::milliseconds refetch_interval_;
  std::chrono::milliseconds max_age_;
  Clock clock_;
  mutable std::mutex map_lock_;  // guards entries_ (the map; each Entry has its own lock)
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::atomic<std::uint64_t> fetches_{0};
};

}  // namespace sdoh::auth
