#include "gateway/runtime/kafka_topics.hpp"

#include <algorithm>

namespace sdoh::runtime {

std::vector<KafkaTopic> kafka_topics(const config::KafkaTopics& topics,
                                     const mapping::RoutingTable& routing) {
  std::vector<KafkaTopic> out;
  auto add = [&out](const std::string& name, KafkaTopic::Use use, const std::string& agency) {
    if (name.empty()) return;
    if (std::any_of(out.begin(), out.end(), [&](const auto& t) { return t.name == name; })) return;
    out.push_back({name, use, agency});
  };
  using Use = KafkaTopic::Use;
  for (const auto* name :
       {&topics.screening, &topics.referral, &topics.referral_status, &topics.deadletter})
    add(*name, Use::kPublished, "");
  add(topics.audit_anchors, Use::kPublished, "");
  for (auto& t : out)
    t.keep_forever = t.keep_forever || t.name == topics.audit_anchors;
  add(topics.referral_updates, Use::kSharedUpdates, "");
  for (const auto& a : routing.agencies()) {
    add(a.topic, Use::kPublished, a.id);
    add(a.update_topic, Use::kAgencyUpdates, a.id);
  }
  return out;
}

std::vector<std::string> topic_names(const std::vector<KafkaTopic>& topics) {
  std::vector<std::string> out;
  out.reserve(topics.size());
  for (const auto& t : topics)
    out.push_back(t.name);
  return out;
}

}  // namespace sdoh::runtime
