#pragma once
// The overdue check: a referral its agency has not received or accepted within the agency's SLA
// gets one status event (status unchanged, businessStatus overdue, updatedBy gateway) and its
// Task shows it. Raised once per referral; counted in sdoh_referrals_overdue_total.
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "gateway/config/config.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/referral_port.hpp"
#include "gateway/pipeline/resource_port.hpp"
#include "gateway/referral/service.hpp"

namespace sdoh::runtime {

class OverdueCheck {
 public:
  using SlaOf = std::function<std::chrono::milliseconds(std::string_view agency_id)>;
  OverdueCheck(pipeline::ReferralRepository& referrals, const pipeline::ResourceReader& resources,
               pipeline::CommitPort& commits, std::string gateway_id, config::KafkaTopics topics,
               SlaOf sla_of, std::chrono::milliseconds shortest_sla, metrics::Registry& registry);

  /// One pass: every referral past its SLA gets its overdue event. Returns how many.
  boost::asio::awaitable<int> run_once();

 private:
  pipeline::ReferralRepository& referrals_;
  const pipeline::ResourceReader& resources_;
  pipeline::CommitPort& commits_;
  std::string gateway_id_;
  config::KafkaTopics topics_;
  referral::Service service_;
  SlaOf sla_of_;
  std::chrono::milliseconds shortest_sla_;
  metrics::Family<metrics::Counter>& overdue_;
  metrics::Counter& checks_;  // completed passes: a test (or an operator) sees the check running
};

}  // namespace sdoh::runtime
