#include "gateway/runtime/overdue.hpp"

#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"
#include "gateway/mapping/lifecycle.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::runtime {

namespace asio = boost::asio;

OverdueCheck::OverdueCheck(pipeline::ReferralRepository& referrals,
                           const pipeline::ResourceReader& resources, pipeline::CommitPort& commits,
                           std::string gateway_id, config::KafkaTopics topics, SlaOf sla_of,
                           std::chrono::milliseconds shortest_sla, metrics::Registry& registry)
    : referrals_(referrals),
      resources_(resources),
      commits_(commits),
      gateway_id_(std::move(gateway_id)),
      topics_(std::move(topics)),
      service_({gateway_id_, topics_.referral_status}),
      sla_of_(std::move(sla_of)),
      shortest_sla_(shortest_sla),
      overdue_(registry.counter("sdoh_referrals_overdue_total",
                                "Referrals their agency did not receive or accept within its SLA "
                                "(one overdue status event each).",
                                {"agency"})),
      checks_(registry
                  .counter("sdoh_referrals_overdue_checks_total",
                           "Passes of the overdue check over the referrals waiting for an agency.")
                  .with()) {}

asio::awaitable<int> OverdueCheck::run_once() {
  const auto now = mapping::Clock::now();
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  auto candidates = referrals_.referrals_awaiting_agency(now_ms - shortest_sla_.count(), 500);
  if (!candidates) {
    log::warn("referrals.overdue_check_failed", {{"reason", candidates.error().message}});
    co_return 0;
  }
  int raised = 0;
  for (auto& [referral, waiting_since_ms] : *candidates) {
    // The lifecycle decides (mapping::overdue_due, the rule its tests specify); the store's
    // query only narrows the candidates.
    const auto sla = sla_of_(referral.agency_id);
    const auto current = referral::Referral::from(referral);
    if (!current) continue;
    const auto waiting_since =
        mapping::Clock::time_point(std::chrono::milliseconds(waiting_since_ms));
    if (!mapping::overdue_due(current->lifecycle(), waiting_since, sla, now)) continue;
    auto task = resources_.read_resource("Task", referral.referral_id);
    if (!task || !*task) continue;  // a referral without its Task (none yet): next pass
    const auto received_at = events::now_rfc3339();
    auto alert = service_.overdue(*current, &**task, waiting_since, sla, now, received_at);
    if (!alert) continue;
    pipeline::CommitRequest commit;
    commit.inbound = {"gateway",
                      "overdue-check",
                      "overdue|" + referral.referral_id,
                      "referral-overdue",
                      "200",
                      "",
                      ""};
    commit.actor = {"overdue-check", "gateway", ""};
    service_.add_to(commit, *alert, received_at);
    auto outcome = co_await commits_.commit(std::move(commit));
    if (!outcome) {
      log::warn("referrals.overdue_not_stored",
                {{"referral", referral.referral_id}, {"reason", outcome.error().message}});
      continue;
    }
    ++raised;
    overdue_.with({referral.agency_id}).inc();
    log::info("referrals.overdue", {{"referral", referral.referral_id},
                                    {"agency", referral.agency_id},
                                    {"sla_ms", static_cast<std::int64_t>(sla.count())}});
  }
  checks_.inc();
  co_return raised;
}

}  // namespace sdoh::runtime
