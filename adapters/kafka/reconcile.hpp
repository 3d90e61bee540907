#pragma once
// Restart reconciliation. After a crash (kill -9, power loss) the outbox may hold events Kafka
// already has: produced, acknowledged, but not yet marked delivered in the store. Publishing
// them again would duplicate them on the topics. Before the relay publishes anything, the
// reconciler reads each partition from just after the highest offset the store recorded for
// our deliveries up to the partition's end, finds our undelivered events by their `ce_id`
// header and marks them delivered. What it does not find was never written and is published.
#include <chrono>
#include <cstdint>
#include <string>

#include "gateway/pipeline/outbox_port.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::kafka {

struct ReconcileReport {
  std::int64_t undelivered = 0;  ///< undelivered events in the outbox before
  std::int64_t partitions = 0;   ///< partitions read
  std::int64_t scanned = 0;      ///< messages read from them
  std::int64_t found = 0;        ///< undelivered events found in Kafka, now marked delivered
};

/// Fails (kUnavailable) when Kafka cannot be read within `timeout`; the caller retries and
/// publishes nothing until it succeeds.
Result<ReconcileReport> reconcile_outbox(pipeline::Outbox& store, const config::KafkaConfig& cfg,
                                         const std::string& bootstrap_servers,
                                         std::chrono::milliseconds timeout);

}  // namespace sdoh::kafka
