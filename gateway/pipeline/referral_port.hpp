#pragma once
// The referral repository: the closed loop's durable state of every referral, written with the
// commit that changes it (CommitRequest::referrals) and read here. Implemented by the SQLite
// store (adapters/store); a map in unit tests. Reads never wait for the writer and may be
// called from any thread, but they touch the disk: call them off the I/O threads.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/result.hpp"
#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::pipeline {

/// How an agency's answer names its referral, most specific first; empty ones are skipped.
struct ReferralKeys {
  std::string referral_id;
  std::string clinic_number_system;  ///< empty: the number alone, when it is unique
  std::string clinic_number_value;
  std::string source_control_id;
};

/// A referral still waiting for its agency, and since when.
struct WaitingReferral {
  ReferralState referral;
  std::int64_t waiting_since_ms = 0;
};

class ReferralRepository {
 public:
  virtual ~ReferralRepository() = default;
  /// The referral the keys name: by id, else by a clinic number or REF control id that exactly
  /// one referral has.
  virtual Result<std::optional<ReferralState>> find_referral(const ReferralKeys& keys) const = 0;
  /// Referrals still waiting for their agency (requested, not held, not yet overdue) since
  /// before `waiting_before_ms` (their last change: creation or the release of a hold), longest
  /// waiting first: the overdue check's candidates. With several gateways on one database, one
  /// of them (the store decides) gets the candidates and the others none, so that one runs it.
  virtual Result<std::vector<WaitingReferral>> referrals_awaiting_agency(
      std::int64_t waiting_before_ms, int limit) const = 0;
  /// The first open (not final) referral of this patient (pseudonym) for this need, if any.
  virtual Result<std::optional<std::string>> open_referral_for(std::string_view patient,
                                                               std::string_view category) const = 0;
};

}  // namespace sdoh::pipeline
