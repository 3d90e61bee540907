#pragma once
// Rate limits per party: a token bucket for each party (a FHIR client, an MLLP connection's
// party, else its source address), so that one sender's burst or loop cannot take the gateway
// from every other clinic and agency. Over HTTP a refused request gets 429 with Retry-After;
// over MLLP an AE with ERR-3 207. Pure apart from its mutex: the caller gives the time.
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "gateway/config/config.hpp"

namespace sdoh::identity {

class RateLimits {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RateLimits(config::RateLimitsConfig cfg) : cfg_(std::move(cfg)) {}

  struct Decision {
    bool allowed = true;
    /// When refused: how long until the party has a token again (at least 1 s, whole seconds
    /// as Retry-After counts them).
    std::chrono::seconds retry_after{0};
  };

  /// Takes one token from `party`'s bucket at `now`.
  Decision take(std::string_view party, Clock::time_point now = Clock::now());

  /// The key a connection's requests count against: its party when one is known, else its
  /// source address without the port ("peer:10.1.2.3").
  static std::string key_for(std::string_view party, std::string_view peer_address);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point last{};
  };
  config::RateLimit limit_for(std::string_view party) const;

  config::RateLimitsConfig cfg_;
  std::mutex mutex_;
  std::map<std::string, Bucket, std::less<>> buckets_;
};

}  // namespace sdoh::identity
