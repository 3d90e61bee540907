#pragma once
// The closed loop's measures on /metrics: referrals by status, agency and need; held ones;
// outcomes by the families' race, ethnicity and preferred language (so that a gap between groups
// of families shows); and how long agencies take to accept and to complete referrals.
#include "gateway/mapping/referral.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/pipeline/commit_observer.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/referral_port.hpp"

namespace sdoh::runtime {

class ReferralMetrics final : public pipeline::CommitObserver {
 public:
  ReferralMetrics(pipeline::ReferralRepository& store, metrics::Registry& registry);
  /// Re-reads the counts from the store (the source of truth, so restarts lose nothing).
  void refresh();
  /// After a commit: the time-to-accept and time-to-complete of the referrals its status events
  /// (read once, pipeline::status_events) moved.
  void observe(const std::vector<mapping::StatusEvent>& changes);

  /// Every commit: what a new one (not a resend) moved is observed.
  void committed(const pipeline::CommitOutcome& outcome,
                 const std::vector<mapping::StatusEvent>& changes, bool) override {
    if (outcome.status == pipeline::CommitStatus::kCommitted) observe(changes);
  }

 private:
  pipeline::ReferralRepository& store_;
  metrics::Family<metrics::Gauge>& by_status_;
  metrics::Family<metrics::Gauge>& held_;
  metrics::Family<metrics::Gauge>& by_group_;
  metrics::Family<metrics::Gauge>& closed_;
  metrics::Family<metrics::Histogram>& to_accept_;
  metrics::Family<metrics::Histogram>& to_complete_;
};

}  // namespace sdoh::runtime
