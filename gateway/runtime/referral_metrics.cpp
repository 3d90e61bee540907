#include "gateway/runtime/referral_metrics.hpp"

#include <map>
#include <memory>

#include "gateway/log/log.hpp"
#include "gateway/measures/equity.hpp"
#include "gateway/measures/referral_measures.hpp"

namespace sdoh::runtime {

namespace {

// Hours to weeks: how long agencies take.
std::vector<double> loop_buckets() {
  return {60,        300,       900,       3600,       4 * 3600,   12 * 3600, 86400,
          2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400};
}

std::string or_unknown(const std::string& s) {
  return s.empty() ? std::string(measures::kUnknown) : s;
}

// "the last 395 days (measures.window)": how every referral series says what it covers.
std::string window_text(std::chrono::milliseconds window) {
  const auto days = std::chrono::duration_cast<std::chrono::hours>(window).count() / 24;
  return "the last " + std::to_string(days) + " days (measures.window)";
}

template <class M>
using Children = std::map<std::vector<std::string>, std::unique_ptr<M>>;

void set(metrics::Family<metrics::Gauge>& family, Children<metrics::Gauge>& children,
         const std::vector<std::string>& labels, double value) {
  auto& slot = children[labels];
  if (!slot) slot = family.make();
  slot->set(value);
}

}  // namespace

ReferralMetrics::ReferralMetrics(const pipeline::TimelineReader& store, metrics::Registry& registry,
                                 Settings settings)
    : store_(store),
      settings_(std::move(settings)),
      by_status_(registry.gauge(
          "sdoh_referrals",
          "Referrals by current status, agency and need: those released (or, held since made, "
          "made) in " +
              window_text(settings_.window) + ", and every open one.",
          {"status", "agency", "category"})),
      held_(registry.gauge("sdoh_referrals_held",
                           "Referrals held by the gateway now: no-route (no agency found), "
                           "uncategorised (a need no table translates) or awaiting-consent "
                           "(whenever made; open referrals are never outside " +
                               window_text(settings_.window) + ").",
                           {"reason"})),
      by_group_(registry.gauge(
          "sdoh_referrals_by_group",
          "Referrals released in " + window_text(settings_.window) +
              " per group of families, by dimension (race, ethnicity, language, zip3) and group "
              "(the code; unknown when not given). Groups with fewer than measures.min_cell (" +
              std::to_string(settings_.min_cell) + ") referrals are omitted.",
          {"dimension", "group"})),
      closed_(registry.gauge(
          "sdoh_referrals_closed",
          "Closed referrals of those released in " + window_text(settings_.window) +
              ", by outcome (completed, failed, rejected, cancelled), dimension and group: "
              "completion rate per group = closed{outcome=\"completed\"} / by_group. Groups with "
              "fewer than measures.min_cell referrals are omitted.",
          {"outcome", "dimension", "group"})),
      to_accept_(registry.histogram("sdoh_referral_time_to_accept_seconds",
                                    "From the referral's release to its agency (its creation, or "
                                    "the release of a hold) to its acceptance, for referrals "
                                    "released in " +
                                        window_text(settings_.window) + ".",
                                    {"agency"}, loop_buckets())),
      to_complete_(registry.histogram("sdoh_referral_time_to_complete_seconds",
                                      "From the referral's release to its agency to its "
                                      "completion, for referrals released in " +
                                          window_text(settings_.window) + ".",
                                      {"agency"}, loop_buckets())) {
  if (!settings_.clock) {
    settings_.clock = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  // Present before the first scrape, at zero.
  for (const auto* reason : {"no-route", "uncategorised", "awaiting-consent"})
    held_.with({reason});
}

std::int64_t ReferralMetrics::now_ms() const {
  return settings_.clock();
}

void ReferralMetrics::update() {
  std::lock_guard lock(update_mutex_);
  const auto now = std::chrono::steady_clock::now();
  // Cleared before the read: a commit that lands during it makes the next scrape read again.
  if (!stale_.exchange(false) && now - computed_at_ < std::chrono::minutes(1)) return;
  computed_at_ = now;
  recompute();
}

void ReferralMetrics::recompute() {
  const auto to = now_ms();
  const measures::Window window{to - settings_.window.count(), to};
  auto read = store_.timelines(window.from_ms);
  if (!read) {
    stale_.store(true);  // try again at the next scrape; the last figures stay
    log::warn("measures.read_failed", {{"reason", read.error().message}});
    return;
  }
  const auto& timelines = *read;

  Children<metrics::Gauge> status, held, group, closed;
  for (const auto& t : timelines) {
    auto& slot = status[{t.status, or_unknown(t.agency), or_unknown(t.category)}];
    if (!slot) slot = by_status_.make();
    slot->inc();
  }
  for (const auto& h : measures::held(timelines))
    set(held_, held, {h.reason}, static_cast<double>(h.count));
  const auto equity = measures::equity(timelines, window, settings_.min_cell);
  for (const auto& d : equity.dimensions) {
    for (const auto& g : d.groups) {
      if (g.suppressed) continue;  // under min_cell: the series is not shown at all
      set(by_group_, group, {d.dimension, g.group}, static_cast<double>(g.figures.referrals));
    }
  }
  for (const auto& t : timelines) {
    if (t.open() || !window.contains(t.released_ms)) continue;
    for (auto dimension : measures::kDimensions) {
      std::vector<std::string> g{std::string(dimension), measures::group_of(t, dimension)};
      if (!group.contains(g)) continue;  // suppressed
      auto& slot = closed[{t.outcome, g[0], g[1]}];
      if (!slot) slot = closed_.make();
      slot->inc();
    }
  }

  Children<metrics::Histogram> accept, complete;
  const auto d = measures::durations(timelines, window);
  for (const auto& [source, family, target] :
       {std::tuple{&d.to_accept, &to_accept_, &accept},
        std::tuple{&d.to_complete, &to_complete_, &complete}}) {
    for (const auto& [agency, seconds] : *source) {
      auto h = family->make();
      for (double s : seconds)
        h->observe(s);
      (*target)[{agency}] = std::move(h);
    }
  }
  by_status_.replace(std::move(status));
  held_.replace(std::move(held));
  by_group_.replace(std::move(group));
  closed_.replace(std::move(closed));
  to_accept_.replace(std::move(accept));
  to_complete_.replace(std::move(complete));
}

}  // namespace sdoh::runtime
