#pragma once
// What the HL7 pipeline needs to know about referrals it has seen: to link an agency's
// RRI^I12 to the referral (by referralId, the clinic's number, or the REF's control id), to
// number its status events (`sequence`) and give `previousStatus`, and to keep two messages
// from changing one referral at once.
//
// This is a port. The closed-loop work (issue 7) owns the referral lifecycle and its durable
// state in the store; it implements this interface there. Until then InMemoryReferralLedger
// serves: correct while the process runs, empty after a restart. An RRI for a referral the
// ledger does not know is refused (AE, ERR-3 204) and dead-lettered, never guessed, so it can
// be replayed once the referral is known again.
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "gateway/mapping/referral.hpp"

namespace sdoh::hl7v2 {

struct ReferralRecord {
  std::string referral_id;
  std::string clinic_number_system;
  std::string clinic_number_value;
  std::string source_control_id;  ///< MSH-10 of the REF that created it
  std::string agency_id;
  std::string category;
  mapping::ReferralStatus status = mapping::ReferralStatus::kRequested;
  std::string business_status;
  int sequence = 1;  ///< of the last status event
};

/// The keys an RRI gives, most specific first; empty ones are skipped.
struct ReferralKeys {
  std::string referral_id;
  std::string clinic_number_system;  ///< empty: match the number alone when it is unique
  std::string clinic_number_value;
  std::string source_control_id;
};

class ReferralLedger {
 public:
  virtual ~ReferralLedger() = default;
  virtual std::optional<ReferralRecord> find(const ReferralKeys& keys) const = 0;
  /// Claims a referral for one change; false while another message holds it. Never blocks.
  virtual bool claim(const std::string& referral_id) = 0;
  virtual void release(const std::string& referral_id) = 0;
  /// Records the referral's state once the events that changed it are committed.
  virtual void record(ReferralRecord record) = 0;
};

/// Thread-safe (one mutex; every call is short and never waits on I/O).
class InMemoryReferralLedger final : public ReferralLedger {
 public:
  std::optional<ReferralRecord> find(const ReferralKeys& keys) const override;
  bool claim(const std::string& referral_id) override;
  void release(const std::string& referral_id) override;
  void record(ReferralRecord record) override;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, ReferralRecord> by_id_;  // guarded by mutex_
  std::set<std::string> claimed_;                // guarded by mutex_
};

/// Holds a claim for the lifetime of a scope (across co_await: it lives in the coroutine frame).
class ReferralClaim {
 public:
  ReferralClaim(ReferralLedger& ledger, std::string referral_id)
      : ledger_(ledger), id_(std::move(referral_id)), held_(ledger_.claim(id_)) {}
  ~ReferralClaim() {
    if (held_) ledger_.release(id_);
  }
  ReferralClaim(const ReferralClaim&) = delete;
  ReferralClaim& operator=(const ReferralClaim&) = delete;
  bool held() const { return held_; }

 private:
  ReferralLedger& ledger_;
  std::string id_;
  bool held_;
};

}  // namespace sdoh::hl7v2
