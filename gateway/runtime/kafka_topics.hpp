#pragma once
// Every Kafka topic a gateway needs, with what it is for: the ones it publishes to (the core
// topics and each agency's own referral topic), and the ones agencies write their updates to.
// One list, from the configuration and the routing, for what the embedded broker creates, what
// readiness checks, what kafka.provision_topics creates and what tools/kafka-provision prints.
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/mapping/routing.hpp"

namespace sdoh::runtime {

struct KafkaTopic {
  enum class Use {
    kPublished,      ///< the gateway writes it (and reads it back at restart reconciliation)
    kAgencyUpdates,  ///< one agency writes its updates; the gateway reads them
    kSharedUpdates,  ///< the shared development update topic (read in dev mode only)
  };
  std::string name;
  Use use = Use::kPublished;
  std::string agency;  ///< for an agency's own referral or update topic: its id
  /// Kept forever whatever kafka.topic_defaults.retention says: the audit trail's anchors, which
  /// must outlive the records they anchor (audit.retention, years).
  bool keep_forever = false;
};

/// The core topics (kafka.topics; the audit anchors' kept forever), then per agency of the routing
/// its referral topic (when it has one of its own) and its update topic; each name once, in this
/// stable order.
std::vector<KafkaTopic> kafka_topics(const config::KafkaTopics& topics,
                                     const mapping::RoutingTable& routing);

/// Their names only.
std::vector<std::string> topic_names(const std::vector<KafkaTopic>& topics);

}  // namespace sdoh::runtime
