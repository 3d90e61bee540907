#pragma once
// The gateway's Kafka producer: librdkafka behind a narrow facade. Every rd_kafka_* call of
// the producer lives in producer.cpp. The producer is idempotent with acks=all; a delivery
// report becomes a value (delivered, retryable, fatal) handed to the caller's callback.
#include <chrono>
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

struct Message {
  std::string topic;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};

enum class Delivery {
  kDelivered,  ///< acknowledged by all in-sync replicas
  kRetryable,  ///< not delivered now (broker down, timeout, purged at shutdown): try again later
  kFatal,      ///< will never succeed as it is (topic missing, message too large): dead-letter it
};

struct DeliveryReport {
  Delivery outcome = Delivery::kRetryable;
  std::string error;       ///< librdkafka's text, empty when delivered
  std::string error_name;  ///< librdkafka's error name ("MSG_SIZE_TOO_LARGE"), empty when delivered
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  bool possibly_persisted = false;  ///< the broker may have it: an idempotent resend is safe
};

/// Runs on the producer's poll thread. Keep it short; hand heavy work to another thread.
using DeliveryCallback = std::function<void(const DeliveryReport&)>;

class Producer {
 public:
  /// Connects to `bootstrap_servers` with the settings and properties of `cfg`. health() is not
  /// ok while any of `topics` (empty: kafka.topics) is missing, and names each one missing.
  static Result<std::unique_ptr<Producer>> create(const config::KafkaConfig& cfg,
                                                  const std::string& bootstrap_servers,
                                                  std::vector<std::string> topics,
                                                  metrics::Registry& registry);
  /// Checks that librdkafka accepts every configured property and that every secret resolves,
  /// without connecting (for --check-config).
  static Result<void> validate(const config::KafkaConfig& cfg);

  /// Flushes for at most kafka.flush_timeout, then purges what is left (their callbacks run
  /// with kRetryable) and stops.
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  /// Queues one message. `on_delivery` runs exactly once, on the poll thread. Fails with
  /// kUnavailable when librdkafka's local queue is full (back off and retry).
  Result<void> produce(const Message& message, DeliveryCallback on_delivery);
  /// The same, taking the value over: librdkafka queues it without copying it at produce time
  /// (it still copies small values into its request buffer when it sends), and it is freed after
  /// the delivery report. On failure the value is dropped with the message.
  Result<void> produce(Message&& message, DeliveryCallback on_delivery);

  /// Waits at most `timeout` for every queued message to be reported; returns how many remain.
  int flush(std::chrono::milliseconds timeout);
  /// Messages queued and not yet reported.
  std::uint64_t in_flight() const;

  /// Broker reachability and topic presence from the last metadata refresh (never blocks).
  ops::CheckState health() const;

  struct Impl;  // opaque; public only so librdkafka's C callbacks can reach it

 private:
  explicit Producer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::kafka
