#include "gateway/measures/referral_measures.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "gateway/mapping/lifecycle.hpp"

namespace sdoh::measures {

namespace {

std::string or_unknown(const std::string& s) {
  return s.empty() ? std::string(kUnknown) : s;
}

void count(FunnelRow& row, const ReferralTimeline& t) {
  ++row.requested;
  if (t.reached_received()) ++row.received;
  if (t.reached_accepted()) ++row.accepted;
  if (t.outcome == "completed") ++row.completed;
  if (t.outcome == "rejected") ++row.rejected;
  if (t.outcome == "failed") ++row.failed;
  if (t.outcome == "cancelled") ++row.cancelled;
  if (t.open()) ++row.open;
}

double seconds_between(std::int64_t from_ms, std::int64_t to_ms) {
  return std::max<double>(0.0, static_cast<double>(to_ms - from_ms) / 1000.0);
}

}  // namespace

std::vector<FunnelRow> funnel(std::span<const ReferralTimeline> timelines, Window window) {
  std::map<std::pair<std::string, std::string>, FunnelRow> by_pair, by_agency, by_category;
  FunnelRow total{std::string(kAll), std::string(kAll)};
  for (const auto& t : timelines) {
    if (!window.contains(t.released_ms)) continue;
    const auto agency = or_unknown(t.agency);
    const auto category = or_unknown(t.category);
    auto& pair = by_pair[{agency, category}];
    pair.agency = agency;
    pair.category = category;
    count(pair, t);
    auto& a = by_agency[{agency, std::string(kAll)}];
    a.agency = agency;
    a.category = std::string(kAll);
    count(a, t);
    auto& c = by_category[{std::string(kAll), category}];
    c.agency = std::string(kAll);
    c.category = category;
    count(c, t);
    count(total, t);
  }
  std::vector<FunnelRow> rows;
  for (const auto* part : {&by_pair, &by_agency, &by_category})
    for (const auto& [key, row] : *part)
      rows.push_back(row);
  rows.push_back(total);
  return rows;
}

AgencyDurations durations(std::span<const ReferralTimeline> timelines, Window window) {
  AgencyDurations out;
  for (const auto& t : timelines) {
    if (!window.contains(t.released_ms)) continue;
    const auto agency = or_unknown(t.agency);
    if (t.accepted_ms != 0)
      out.to_accept[agency].push_back(seconds_between(t.released_ms, t.accepted_ms));
    if (t.outcome == "completed" && t.closed_ms != 0)
      out.to_complete[agency].push_back(seconds_between(t.released_ms, t.closed_ms));
  }
  return out;
}

std::optional<double> quantile(std::vector<double> values, double q) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const auto lower = static_cast<std::size_t>(std::floor(rank));
  const auto upper = std::min(lower + 1, values.size() - 1);
  return values[lower] + (values[upper] - values[lower]) * (rank - static_cast<double>(lower));
}

DurationSummary summarize(const std::vector<double>& seconds) {
  return {static_cast<std::int64_t>(seconds.size()), quantile(seconds, 0.5),
          quantile(seconds, 0.9)};
}

std::vector<AgencyTimes> times(std::span<const ReferralTimeline> timelines, Window window) {
  const auto d = durations(timelines, window);
  std::map<std::string, AgencyTimes> by_agency;
  for (const auto& t : timelines) {
    if (window.contains(t.released_ms))
      by_agency[or_unknown(t.agency)].agency = or_unknown(t.agency);
  }
  for (auto& [agency, row] : by_agency) {
    if (auto it = d.to_accept.find(agency); it != d.to_accept.end())
      row.to_accept = summarize(it->second);
    if (auto it = d.to_complete.find(agency); it != d.to_complete.end())
      row.to_complete = summarize(it->second);
  }
  std::vector<AgencyTimes> rows;
  for (auto& [agency, row] : by_agency)
    rows.push_back(std::move(row));
  return rows;
}

std::vector<OverdueReferral> overdue(std::span<const ReferralTimeline> timelines,
                                     std::int64_t now_ms, const SlaLookup& sla) {
  std::vector<OverdueReferral> out;
  for (const auto& t : timelines) {
    const auto status = mapping::referral_status_from(t.status);
    if (!t.open() || !status || t.released_ms == 0 ||
        !mapping::awaiting_agency(*status, t.business_status))
      continue;
    const auto due = t.released_ms + sla(t.agency).count();
    if (now_ms < due) continue;  // within the SLA means strictly before the deadline
    out.push_back({t.referral_id, or_unknown(t.agency), or_unknown(t.category), t.status,
                   t.released_ms, due, seconds_between(due, now_ms)});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(b.overdue_seconds, a.referral_id) < std::tie(a.overdue_seconds, b.referral_id);
  });
  return out;
}

std::vector<HeldCount> held(std::span<const ReferralTimeline> timelines) {
  std::vector<HeldCount> out{{std::string(mapping::kNoRoute), 0},
                             {std::string(mapping::kAwaitingConsent), 0},
                             {std::string(mapping::kUncategorised), 0}};
  for (const auto& t : timelines) {
    if (!t.open()) continue;
    const auto reason = t.held_reason();
    for (auto& h : out)
      if (h.reason == reason) ++h.count;
  }
  return out;
}

}  // namespace sdoh::measures
