#pragma once
// The closed loop's figures, computed from referral timelines (timeline.hpp): the funnel per
// agency and need, how long agencies take to accept and to complete referrals (from release),
// the referrals overdue now and those the gateway holds. Pure functions over what the store
// read (pipeline::TimelineReader); /metrics, /ops/api/v1/referrals and tools/report show them.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/measures/timeline.hpp"

namespace sdoh::measures {

/// The measures' period, Unix milliseconds, both ends included.
struct Window {
  std::int64_t from_ms = 0;
  std::int64_t to_ms = 0;
  bool contains(std::int64_t ms) const { return ms != 0 && ms >= from_ms && ms <= to_ms; }
};

/// The group name of a value not given ("unknown" is a group like any other).
inline constexpr std::string_view kUnknown = "unknown";
/// The total over every agency or every need in a funnel row.
inline constexpr std::string_view kAll = "*";

/// One row of the funnel: referrals released to an agency in the window, and how far they got.
/// requested >= received >= accepted >= completed (timeline.hpp: the steps are monotone);
/// rejected, failed and cancelled are the other ends; open = requested - every end.
struct FunnelRow {
  std::string agency;    ///< or kAll
  std::string category;  ///< or kAll
  std::int64_t requested = 0;
  std::int64_t received = 0;
  std::int64_t accepted = 0;
  std::int64_t completed = 0;
  std::int64_t rejected = 0;
  std::int64_t failed = 0;
  std::int64_t cancelled = 0;
  std::int64_t open = 0;
};

/// Rows per agency and need, then per agency (category kAll), per need (agency kAll) and the
/// total (both kAll), each part sorted by name. Counts referrals released in `window`.
std::vector<FunnelRow> funnel(std::span<const ReferralTimeline> timelines, Window window);

/// Seconds from release to acceptance and to completion of the referrals released in `window`,
/// per agency (unsorted). Histograms and medians are made from them.
struct AgencyDurations {
  std::map<std::string, std::vector<double>> to_accept;
  std::map<std::string, std::vector<double>> to_complete;
};
AgencyDurations durations(std::span<const ReferralTimeline> timelines, Window window);

/// The q-quantile (0..1) of `values`, linear between the two nearest ranks (the median of 1, 2,
/// 3, 4 is 2.5); nullopt when there are none.
std::optional<double> quantile(std::vector<double> values, double q);

struct DurationSummary {
  std::int64_t count = 0;
  std::optional<double> median_seconds;  ///< nullopt when count is 0
  std::optional<double> p90_seconds;
};
DurationSummary summarize(const std::vector<double>& seconds);

struct AgencyTimes {
  std::string agency;
  DurationSummary to_accept;
  DurationSummary to_complete;
};
/// Per agency (sorted), from durations().
std::vector<AgencyTimes> times(std::span<const ReferralTimeline> timelines, Window window);

/// A referral its agency has not received past its SLA, counted from its release.
struct OverdueReferral {
  std::string referral_id;
  std::string agency;
  std::string category;
  std::string status;
  std::int64_t released_ms = 0;
  std::int64_t due_ms = 0;
  double overdue_seconds = 0;
};
/// The agency's SLA (routing's `sla`, else referrals.default_sla).
using SlaLookup = std::function<std::chrono::milliseconds(std::string_view agency)>;
/// Referrals waiting for their agency now (mapping::awaiting_agency) whose release plus their
/// agency's SLA is at or before `now_ms` (the overdue check's rule), longest overdue first.
std::vector<OverdueReferral> overdue(std::span<const ReferralTimeline> timelines,
                                     std::int64_t now_ms, const SlaLookup& sla);

struct HeldCount {
  std::string reason;  ///< no-route | awaiting-consent | uncategorised
  std::int64_t count = 0;
};
/// Referrals the gateway holds now, by reason: always the three, in that order.
std::vector<HeldCount> held(std::span<const ReferralTimeline> timelines);

}  // namespace sdoh::measures
