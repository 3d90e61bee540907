#include "gateway/runtime/referral_metrics.hpp"

#include <chrono>
#include <map>

#include <rapidjson/document.h>

#include "gateway/mapping/lifecycle.hpp"
#include "gateway/mapping/referral.hpp"

namespace sdoh::runtime {

namespace {

// Hours to weeks: how long agencies take.
std::vector<double> loop_buckets() {
  return {60,        300,       900,       3600,       4 * 3600,   12 * 3600, 86400,
          2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400};
}

std::string or_unknown(const std::string& s) {
  return s.empty() ? "unknown" : s;
}

void zero(metrics::Family<metrics::Gauge>& g) {
  g.for_each([](const auto&, metrics::Gauge& m) { m.set(0); });
}

}  // namespace

ReferralMetrics::ReferralMetrics(pipeline::ReferralRepository& store, metrics::Registry& registry)
    : store_(store),
      by_status_(registry.gauge("sdoh_referrals", "Referrals by status, agency and need.",
                                {"status", "agency", "category"})),
      held_(registry.gauge("sdoh_referrals_held",
                           "Referrals held by the gateway: no-route (no agency found), "
                           "uncategorised (a need no table translates) or awaiting-consent.",
                           {"reason"})),
      by_group_(registry.gauge("sdoh_referrals_by_group",
                               "Referrals by the family's race, ethnicity and preferred language "
                               "(codes; unknown when not given).",
                               {"race", "ethnicity", "language"})),
      closed_(registry.gauge("sdoh_referrals_closed",
                             "Closed referrals by outcome (completed, failed, rejected, cancelled) "
                             "and the family's race, ethnicity and preferred language: completion "
                             "rate per group = closed{outcome=\"completed\"} / by_group.",
                             {"outcome", "race", "ethnicity", "language"})),
      to_accept_(registry.histogram("sdoh_referral_time_to_accept_seconds",
                                    "From the referral to its agency's acceptance.", {"agency"},
                                    loop_buckets())),
      to_complete_(registry.histogram("sdoh_referral_time_to_complete_seconds",
                                      "From the referral to its completion.", {"agency"},
                                      loop_buckets())) {}

void ReferralMetrics::refresh() {
  auto counts = store_.referral_counts();
  if (!counts) return;
  std::map<std::vector<std::string>, double> status, held, group, closed;
  for (const auto& c : *counts) {
    const auto n = static_cast<double>(c.count);
    status[{c.status, or_unknown(c.agency_id), c.category}] += n;
    if (auto s = mapping::referral_status_from(c.status);
        s && mapping::held({*s, c.business_status}))
      held[{c.business_status}] += n;
    const std::vector<std::string> g{or_unknown(c.race), or_unknown(c.ethnicity),
                                     or_unknown(c.language)};
    group[g] += n;
    auto s = mapping::referral_status_from(c.status);
    if (s && mapping::is_final(*s)) closed[{c.status, g[0], g[1], g[2]}] += n;
  }
  for (const auto& [family, values] :
       {std::pair{&by_status_, &status}, std::pair{&held_, &held}, std::pair{&by_group_, &group},
        std::pair{&closed_, &closed}}) {
    zero(*family);
    for (const auto& [labels, n] : *values)
      family->with(labels).set(n);
  }
  held_.with({std::string(mapping::kNoRoute)});
  held_.with({std::string(mapping::kUncategorised)});
  held_.with({std::string(mapping::kAwaitingConsent)});
}

void ReferralMetrics::observe(const std::vector<mapping::StatusEvent>& changes) {
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (const auto& [event_id, t] : changes) {
    (void)event_id;
    const bool accepted = t.status == mapping::ReferralStatus::kAccepted && t.previous != t.status;
    const bool completed =
        t.status == mapping::ReferralStatus::kCompleted && t.previous != t.status;
    if (!accepted && !completed) continue;
    auto referral = store_.find_referral({t.referral_id, "", "", ""});
    if (!referral || !*referral || (*referral)->created_at_ms == 0) continue;
    const auto seconds = static_cast<double>(now_ms - (*referral)->created_at_ms) / 1000.0;
    auto& h = accepted ? to_accept_ : to_complete_;
    h.with({or_unknown((*referral)->agency_id)}).observe(std::max(0.0, seconds));
  }
}

}  // namespace sdoh::runtime
