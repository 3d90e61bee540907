#pragma once
// What a Kafka cluster needs for one gateway: its topics with their settings (kafka.topic_defaults)
// and the ACLs of every principal: the gateway writes what it publishes and reads it back (restart
// reconciliation), reads the agencies' update topics with its consumer group; each agency writes
// only its own update topic and reads only its referral topic. From kafka_topics.hpp's one list.
// Printed by `sdoh-gateway --kafka-provision` (tools/kafka-provision) as kafka-topics.sh and
// kafka-acls.sh commands; the same NewTopic specs are what kafka.provision_topics sends.
#include <string>
#include <vector>

#include "adapters/kafka/admin.hpp"
#include "gateway/config/config.hpp"
#include "gateway/runtime/kafka_topics.hpp"

namespace sdoh::runtime {

/// Each topic of `topics` with kafka.topic_defaults: partitions, replication factor and the
/// topic configs min.insync.replicas and retention.ms (-1 for a retention of 0: keep forever).
std::vector<kafka::NewTopic> new_topics(const config::KafkaConfig& kafka,
                                        const std::vector<KafkaTopic>& topics);

/// The Kafka principal of agency `agency_id`: parties.<id>.kafka_principal, else "User:<id>".
std::string agency_principal(const config::GatewayConfig& cfg, const std::string& agency_id);

/// A POSIX sh script: the kafka-topics.sh commands creating `topics` (--if-not-exists), then,
/// unless `topics_only`, the kafka-acls.sh commands. `source` names the config it came from.
std::string provision_script(const config::GatewayConfig& cfg,
                             const std::vector<KafkaTopic>& topics, const std::string& source,
                             bool topics_only);

}  // namespace sdoh::runtime
