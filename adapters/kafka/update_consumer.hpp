#pragma once
// The agencies' referral updates on Kafka (org.sdoh.referral.update.v1 on
// sdoh.referral-updates.v1), read by a consumer group. The delivery promise in this direction:
// a record's offset is committed only after the handler committed the update (or its dead
// letter) to the store, so a crash re-reads it and the store's dedupe makes that harmless.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
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
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// What became of a record.
enum class UpdateDisposition {
  kCommitted,     ///< committed to the store (or a duplicate of something committed)
  kDeadLettered,  ///< refused; its dead letter is committed to the store
  kRetry,         ///< could not be stored now (store unavailable): hand it over again later
};

/// Called on the consumer's own thread; blocks until the store answered.
using UpdateHandler = std::function<UpdateDisposition(const UpdateRecord&)>;

class UpdateConsumer {
 public:
  /// A consumer in `group` of `topic`. Reads from the earliest offset when the group has none
  /// (updates sent before the gateway first started are not lost).
  static Result<std::unique_ptr<UpdateConsumer>> create(const config::KafkaConfig& cfg,
                                                        const std::string& bootstrap,
                                                        std::string group, std::string topic,
                                                        UpdateHandler handler,
                                                        metrics::Registry& registry);
  ~UpdateConsumer();
  UpdateConsumer(const UpdateConsumer&) = delete;
  UpdateConsumer& operator=(const UpdateConsumer&) = delete;

  void start();
  /// Stops polling (a record being retried is left uncommitted), leaves the group, joins.
  void stop();
  ops::CheckState health() const;

  struct Impl;

 private:
  explicit UpdateConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::kafka
