#include "gateway/measures/timeline.hpp"

#include "gateway/mapping/lifecycle.hpp"

namespace sdoh::measures {

namespace {

using mapping::ReferralStatus;

bool is(std::string_view status, std::initializer_list<ReferralStatus> any) {
  const auto s = mapping::referral_status_from(status);
  if (!s) return false;
  for (auto a : any)
    if (*s == a) return true;
  return false;
}

void keep_first(std::string& kept, const std::string& offered) {
  if (kept.empty()) kept = offered;
}

}  // namespace

std::string_view ReferralTimeline::held_reason() const {
  const auto s = mapping::referral_status_from(status);
  if (!s || !mapping::held({*s, business_status})) return {};
  return business_status;
}

bool ReferralTimeline::reached_received() const {
  return received_ms != 0 || reached_accepted() ||
         is(status, {ReferralStatus::kReceived, ReferralStatus::kRejected});
}

bool ReferralTimeline::reached_accepted() const {
  // By the lifecycle's table, in-progress, on-hold, completed and failed come only after accepted.
  return accepted_ms != 0 ||
         is(status, {ReferralStatus::kAccepted, ReferralStatus::kInProgress,
                     ReferralStatus::kOnHold, ReferralStatus::kCompleted, ReferralStatus::kFailed});
}

ReferralTimeline advance(const std::optional<ReferralTimeline>& before,
                         const pipeline::ReferralState& after, std::int64_t at_ms) {
  if (before && after.sequence < before->sequence) return *before;
  ReferralTimeline t;
  if (before) {
    t = *before;
  } else {
    t.referral_id = after.referral_id;
    t.created_ms = at_ms;
  }
  const auto status = mapping::referral_status_from(after.status);
  // Held, or not there yet: what a release ends.
  bool was_waiting_for_release = true;
  if (before) {
    const auto prev = mapping::referral_status_from(before->status);
    was_waiting_for_release = prev && mapping::held({*prev, before->business_status});
  }
  const bool rerouted = before && !before->agency.empty() && !after.agency_id.empty() &&
                        before->agency != after.agency_id;
  t.status = after.status;
  t.business_status = after.business_status;
  t.sequence = after.sequence;
  if (!after.agency_id.empty()) t.agency = after.agency_id;
  if (!after.category.empty()) t.category = after.category;
  keep_first(t.clinic, after.clinic);
  keep_first(t.race, after.race);
  keep_first(t.ethnicity, after.ethnicity);
  keep_first(t.language, after.language);
  keep_first(t.zip3, after.zip3);
  if (!status) return t;  // not a lifecycle status: nothing to mark

  const bool held = mapping::held({*status, after.business_status});
  if (!held && !mapping::is_final(*status) &&
      (was_waiting_for_release || (rerouted && *status == ReferralStatus::kRequested)))
    t.released_ms = at_ms;
  if (t.received_ms == 0 && *status != ReferralStatus::kRequested &&
      *status != ReferralStatus::kCancelled)
    t.received_ms = at_ms;
  if (t.accepted_ms == 0 &&
      (*status == ReferralStatus::kAccepted || *status == ReferralStatus::kInProgress ||
       *status == ReferralStatus::kOnHold || *status == ReferralStatus::kCompleted ||
       *status == ReferralStatus::kFailed))
    t.accepted_ms = at_ms;
  if (t.closed_ms == 0 && mapping::is_final(*status)) {
    t.closed_ms = at_ms;
    t.outcome = after.status;
  }
  return t;
}

}  // namespace sdoh::measures
