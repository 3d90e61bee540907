#include "gateway/identity/rate_limits.hpp"

#include <algorithm>
#include <cmath>

namespace sdoh::identity {

config::RateLimit RateLimits::limit_for(std::string_view party) const {
  if (auto it = cfg_.parties.find(std::string(party)); it != cfg_.parties.end()) return it->second;
  return cfg_.default_limit;
}

RateLimits::Decision RateLimits::take(std::string_view party, Clock::time_point now) {
  const auto limit = limit_for(party);
  if (limit.per_second <= 0) return {};  // no limit for this party
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(party);
  if (it == buckets_.end()) {
    it = buckets_.emplace(std::string(party), Bucket{limit.burst, now}).first;
  }
  auto& b = it->second;
  const std::chrono::duration<double> elapsed = now - b.last;
  b.tokens = std::min(limit.burst, b.tokens + std::max(0.0, elapsed.count()) * limit.per_second);
  b.last = std::max(b.last, now);
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return {};
  }
  const double wait = (1.0 - b.tokens) / limit.per_second;
  return {false, std::chrono::seconds(std::max<long long>(1, std::llround(std::ceil(wait))))};
}

std::string RateLimits::key_for(std::string_view party, std::string_view peer_address) {
  if (!party.empty()) return std::string(party);
  // "10.1.2.3:5000" or "[2001:db8::1]:5000": the address without the port.
  auto host = peer_address.substr(0, peer_address.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return "peer:" + std::string(host);
}

}  // namespace sdoh::identity
