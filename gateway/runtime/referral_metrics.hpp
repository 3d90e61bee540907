#pragma once
// The closed loop's measures on /metrics, computed from the stored referral timelines
// (measures/timeline.hpp) when /metrics is read, so that a referral shows in the first scrape
// after its commit and a restart loses nothing: referrals by status, agency and need; held ones;
// referrals and their outcomes per group of families (race, ethnicity, preferred language,
// 3-digit ZIP; groups under measures.min_cell omitted); time to accept and to complete per agency,
// from release. Every HELP states the window (measures.window).
//
// The figures are cached between scrapes and recomputed when a commit changed a referral since
// (committed(), any thread) or a minute passed (the window moves on). update() reads the store:
// call it on the store threads, never on an I/O thread.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

#include "gateway/mapping/referral.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/pipeline/commit_observer.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/timeline_port.hpp"

namespace sdoh::runtime {

class ReferralMetrics final : public pipeline::CommitObserver {
 public:
  struct Settings {
    std::chrono::milliseconds window{std::chrono::hours(24 * 395)};  ///< measures.window
    int min_cell = 11;                                               ///< measures.min_cell
    /// Wall-clock Unix milliseconds; empty: the system clock.
    std::function<std::int64_t()> clock;
  };
  ReferralMetrics(const pipeline::TimelineReader& store, metrics::Registry& registry,
                  Settings settings);

  /// Recomputes the series from the stored timelines if a referral changed since the last time
  /// (or the cache is a minute old). On the store threads: it reads the store.
  void update();

  /// Every commit that moved a referral (a status event) makes the cached figures stale.
  void committed(const pipeline::CommitOutcome& outcome,
                 const std::vector<mapping::StatusEvent>& changes, bool) override {
    if (outcome.status == pipeline::CommitStatus::kCommitted && !changes.empty())
      stale_.store(true);
  }

 private:
  std::int64_t now_ms() const;
  void recompute();

  const pipeline::TimelineReader& store_;
  Settings settings_;
  std::atomic<bool> stale_{true};
  std::mutex update_mutex_;  // one recompute at a time; guards computed_at_
  std::chrono::steady_clock::time_point computed_at_{};
  metrics::Family<metrics::Gauge>& by_status_;
  metrics::Family<metrics::Gauge>& held_;
  metrics::Family<metrics::Gauge>& by_group_;
  metrics::Family<metrics::Gauge>& closed_;
  metrics::Family<metrics::Histogram>& to_accept_;
  metrics::Family<metrics::Histogram>& to_complete_;
};

}  // namespace sdoh::runtime
