#include "adapters/net/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace sdoh::net {

std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, int failures, double unit) {
  if (failures <= 0) return std::chrono::milliseconds(0);
  const double cap = static_cast<double>(std::max<std::int64_t>(0, policy.max.count()));
  const double multiplier = std::max(1.0, policy.multiplier);
  // Grown in doubles and capped before converting: no overflow however many failures.
  const double grown = static_cast<double>(std::max<std::int64_t>(0, policy.initial.count())) *
                       std::pow(multiplier, std::min(failures - 1, 1'000));
  const double base = std::min(grown, cap);
  const double share = std::clamp(policy.jitter, 0.0, 1.0) * std::clamp(unit, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::floor(base * (1.0 - share))));
}

std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, int failures,
                                        std::mt19937_64& rng) {
  std::uniform_real_distribution<double> draw(0.0, 1.0);
  return backoff_delay(policy, failures, draw(rng));
}

}  // namespace sdoh::net
