#pragma once
// Creating the gateway's topics on a real cluster (kafka.provision_topics): librdkafka's Admin
// API (CreateTopics) behind one function. Every rd_kafka_* call of it lives in admin.cpp.
// librdkafka's mock broker (the embedded dev broker, tests' mock-kafka) has no CreateTopics
// handler, so this only ever runs against real clusters; the embedded broker creates its topics
// itself (embedded_broker.hpp).
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::kafka {

/// One topic to create: what a CreateTopics request carries for it (and what the
/// kafka-topics.sh commands of tools/kafka-provision say).
struct NewTopic {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
  std::vector<std::pair<std::string, std::string>> configs;  ///< topic configs, in this order
  friend bool operator==(const NewTopic&, const NewTopic&) = default;
};

/// Sends one CreateTopics request for `topics` through `bootstrap_servers` (with kafka.properties:
/// SASL, TLS) and waits at most `timeout`. A topic that already exists is left as it is (its
/// settings are not compared). Returns the topics it created; any other refusal fails with a
/// kConfig error on kafka.provision_topics naming each topic, librdkafka's error name and text.
Result<std::vector<std::string>> create_topics(const config::KafkaConfig& cfg,
                                               const std::string& bootstrap_servers,
                                               const std::vector<NewTopic>& topics,
                                               std::chrono::milliseconds timeout);

}  // namespace sdoh::kafka
