#include "adapters/hl7v2/referral_ledger.hpp"

namespace sdoh::hl7v2 {

std::optional<ReferralRecord> InMemoryReferralLedger::find(const ReferralKeys& keys) const {
  std::lock_guard lock(mutex_);
  if (!keys.referral_id.empty()) {
    if (auto it = by_id_.find(keys.referral_id); it != by_id_.end()) return it->second;
  }
  // The clinic's number, then the REF's control id: each only when exactly one referral has it.
  auto unique = [this](auto&& matches) -> std::optional<ReferralRecord> {
    const ReferralRecord* found = nullptr;
    for (const auto& [id, r] : by_id_) {
      if (!matches(r)) continue;
      if (found != nullptr) return std::nullopt;
      found = &r;
    }
    return found == nullptr ? std::nullopt : std::optional<ReferralRecord>(*found);
  };
  if (!keys.clinic_number_value.empty()) {
    auto found = unique([&keys](const ReferralRecord& r) {
      return r.clinic_number_value == keys.clinic_number_value &&
             (keys.clinic_number_system.empty() ||
              r.clinic_number_system == keys.clinic_number_system);
    });
    if (found) return found;
  }
  if (!keys.source_control_id.empty()) {
    return unique(
        [&keys](const ReferralRecord& r) { return r.source_control_id == keys.source_control_id; });
  }
  return std::nullopt;
}

bool InMemoryReferralLedger::claim(const std::string& referral_id) {
  std::lock_guard lock(mutex_);
  return claimed_.insert(referral_id).second;
}

void InMemoryReferralLedger::release(const std::string& referral_id) {
  std::lock_guard lock(mutex_);
  claimed_.erase(referral_id);
}

void InMemoryReferralLedger::record(ReferralRecord record) {
  std::lock_guard lock(mutex_);
  auto id = record.referral_id;
  by_id_.insert_or_assign(std::move(id), std::move(record));
}

}  // namespace sdoh::hl7v2
