#pragma once
// What the ops API reads from the store besides the outbox's stats and the dead letters: the
// referrals the gateway holds, and the queue of RRI^I12 answers to HL7 clinics. Implemented by
// the SQLite store (adapters/store). Reads never wait for the writer but touch the disk: call
// them on the store executor.
#include <cstdint>
#include <string>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

/// A referral held by the gateway (no route, awaiting consent, uncategorised): no PHI.
struct HeldReferral {
  std::string referral_id;
  std::string category;
  std::string reason;         ///< the businessStatus: no-route | awaiting-consent | uncategorised
  std::string sender;         ///< the HL7 sender (MSH-3^MSH-4) or the FHIR client that sent it
  std::string agency_id;      ///< empty when no route was found
  std::int64_t since_ms = 0;  ///< its last change (when it was held)
};

/// The RRI^I12 answers waiting for their clinic.
struct OutboundSummary {
  std::int64_t waiting = 0;            ///< not yet acknowledged
  std::int64_t retrying = 0;           ///< of those, tried at least once
  std::int64_t oldest_waiting_ms = 0;  ///< created_at of the oldest waiting (0: none)
  std::int64_t given_up = 0;           ///< refused for good (AR/CR), still kept
};

class OpsReads {
 public:
  virtual ~OpsReads() = default;
  /// Held referrals, longest held first, at most `limit`; `reason` empty: every reason.
  virtual Result<std::vector<HeldReferral>> held_referrals(const std::string& reason,
                                                           int limit) const = 0;
  virtual Result<OutboundSummary> outbound_summary() const = 0;
};

}  // namespace sdoh::pipeline
