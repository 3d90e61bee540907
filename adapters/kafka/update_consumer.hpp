#pragma once
// The agencies' referral updates on Kafka (org.sdoh.referral.update.v1 on each agency's
// sdoh.referral-updates.<agency>, and in dev mode the shared sdoh.referral-updates.v1), read by
// a consumer group. The delivery promise in this direction:
// a record's offset is committed only after the handler committed the update (or its dead
// letter) to the store, so a crash re-reads it and the store's dedupe makes that harmless.
//
// Worst cases, stated once:
// - Per partition, records reach the handler in offset order, one at a time, and the next one
//   is taken only after the previous one's offset was stored and a synchronous commit was
//   tried. A commit that fails (coordinator moving, group rebalancing) is not retried in
//   place: the stored offset goes out with the next commit or when the partition is revoked.
//   A commit never covers a record the handler has not answered kCommitted/kDeadLettered for;
//   a failed one only means the next owner reads a handled record again.
// - kRetry: nothing is committed; the consumer seeks back and hands the same record again
//   after 100 ms, doubling up to 5 s, before anything later of that partition. It never skips a
//   record on its own: a record that can never be stored must be dead-lettered by the handler.
// - stop() waits for the handler call in progress (if any), then at most one poll (200 ms) and
//   the group leave (bounded by librdkafka's socket timeouts when the brokers are gone).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/health.hpp"

namespace sdoh::kafka {

struct UpdateRecord {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;  ///< may hold notes about a family: never logged
  std::vector<std::pair<std::string, std::string>> headers;
};

/// What became of a record.
enum class UpdateDisposition {
  kCommitted,     ///< committed to the store (or a duplicate of something committed)
  kDeadLettered,  ///< refused; its dead letter is committed to the store
  kRetry,         ///< could not be stored now (store unavailable): hand it over again later
};

/// Called on the consumer's own thread, one record at a time; blocks until the store answered.
using UpdateHandler = std::function<UpdateDisposition(const UpdateRecord&)>;

/// A librdkafka KafkaConsumer in a group (rd_kafka_subscribe) with its own thread. Every
/// rd_kafka_* call of it lives in update_consumer.cpp. Metrics:
/// sdoh_kafka_updates_total{outcome=committed|dead_lettered|retry},
/// sdoh_kafka_update_offset_commit_failures_total and sdoh_kafka_updates_lag (records on this
/// instance's partitions after the group's committed offset, from librdkafka's statistics).
class UpdateConsumer {
 public:
  /// A consumer in `group` of `topics` (the agencies' own update topics, and in dev mode the
  /// shared one), with kafka.properties (security settings included)
  /// applied as for the producer; client.id is kafka.client_id + "-updates". Reads from the
  /// earliest offset when the group has none (updates sent before the gateway first started
  /// are not lost) and only records of committed transactions. Fails with kConfig when
  /// librdkafka refuses the configuration; never connects (start() does).
  static Result<std::unique_ptr<UpdateConsumer>> create(
      const config::KafkaConfig& cfg, const std::string& bootstrap, std::string group,
      std::vector<std::string> topics, UpdateHandler handler, metrics::Registry& registry);
  /// Stops (see stop()).
  ~UpdateConsumer();
  UpdateConsumer(const UpdateConsumer&) = delete;
  UpdateConsumer& operator=(const UpdateConsumer&) = delete;

  /// Subscribes and starts the consumer thread. Call once.
  void start();
  /// Stops polling (a record being retried is left uncommitted, its backoff cut short), commits
  /// what was handled, leaves the group and joins the thread. Idempotent.
  void stop();
  /// Cached, never blocks. Not ok before start(), after stop(), while no broker can be reached
  /// or the group coordinator has been away for a while, while the subscribed topic is missing
  /// or not readable, after a failed offset commit (until one succeeds) and while a record
  /// waits for the store (kRetry). The detail names the cause, never a record's content.
  ops::CheckState health() const;

  struct Impl;  // opaque; public only so librdkafka's C callbacks can reach it

 private:
  explicit UpdateConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::kafka
