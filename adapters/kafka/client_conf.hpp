#pragma once
// librdkafka configuration shared by the gateway's Kafka clients (the relay's producer, the
// restart reconciler's reader, the agency update consumer): bootstrap servers, client id and
// the operator's kafka.properties (security settings and tuning), secrets resolved.
// Internal to adapters/kafka: includes librdkafka.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::kafka {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

/// Builds a configuration with `fixed` settings first, then kafka.properties; errors name the
/// config key that caused them. kafka.properties apply to every client (a producer-only property
/// is ignored by a consumer, with a librdkafka warning) but may not set what the gateway's
/// clients depend on (group.id, offset commits, auto.offset.reset, isolation.level, partition
/// EOF, statistics). librdkafka's log goes to the gateway's JSON log.
Result<ConfPtr> build_client_conf(const config::KafkaConfig& cfg, const std::string& bootstrap,
                                  const std::string& client_id,
                                  const std::vector<std::pair<std::string, std::string>>& fixed);

}  // namespace sdoh::kafka
