#pragma once
// The referral timelines the closed-loop measures are computed from (measures/timeline.hpp):
// written by the store in the same transaction as each referral state change
// (CommitRequest::referrals), kept for measures.window after the referral closed, and read here.
// Implemented by the SQLite store (adapters/store); a vector in unit tests. Reads touch the disk:
// call them off the I/O threads (the store executor).
#include <cstdint>
#include <vector>

#include "gateway/core/result.hpp"
#include "gateway/measures/timeline.hpp"

namespace sdoh::pipeline {

class TimelineReader {
 public:
  virtual ~TimelineReader() = default;
  /// Every timeline that started (released, else made) at or after `since_ms`, and every one
  /// still open whenever it started, in no particular order.
  virtual Result<std::vector<measures::ReferralTimeline>> timelines(
      std::int64_t since_ms) const = 0;
};

}  // namespace sdoh::pipeline
