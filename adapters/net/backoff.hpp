#pragma once
// How long to wait before the next attempt at something that failed for a reason that may pass
// (a peer that is down, a timeout): exponential, capped, with jitter so that many senders that
// failed together do not retry together. Pure; callers own their clocks and schedules.
#include <chrono>
#include <random>

namespace sdoh::net {

struct BackoffPolicy {
  std::chrono::milliseconds initial{1'000};  ///< the delay after the first failure
  std::chrono::milliseconds max{300'000};    ///< no delay is longer, jitter included
  double multiplier = 2.0;                   ///< growth per failed attempt (>= 1)
  /// Share of the delay taken off at random: 0.25 spreads a 4 s delay over 3–4 s. 0 to 1.
  double jitter = 0.25;
};

/// The delay after `failures` failed attempts (1 = the first failure): initial · multiplier^
/// (failures − 1), at most max, less a random share of up to `jitter` of it. `unit` is the random
/// draw in [0, 1) (0: no reduction). Never longer than max, never negative; 0 failures: 0.
std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, int failures, double unit);

/// The same with a draw from `rng`.
std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, int failures,
                                        std::mt19937_64& rng);

}  // namespace sdoh::net
