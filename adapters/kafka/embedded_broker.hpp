#pragma once
// librdkafka's in-process Kafka-protocol broker (rdkafka_mock.h): the development default when
// no kafka.brokers are configured, and the broker of the tests. It speaks the real protocol on
// loopback TCP, so kcat and other real clients can produce and consume. It keeps everything
// in memory: a restart loses every message, which is why production mode refuses it.
// Consumer groups work (librdkafka 2.0's mock group coordinator: JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch), with two quirks of its own: a group's first
// join is answered after a fixed 3 s, and a member whose session.timeout.ms runs out meanwhile is
// dropped without an answer, so sessions must be longer than that (librdkafka's default 45 s is).
// A later join or leave settles after session.timeout.ms - 1 s. A consumer never creates the
// topic it subscribes to: start() creates the configured topics, create_topic() others.
#include <memory>
#include <string>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::kafka {

class EmbeddedBroker {
 public:
  /// Starts `brokers` brokers and creates `topics` with `partitions` partitions each.
  static Result<std::unique_ptr<EmbeddedBroker>> start(int brokers,
                                                       const std::vector<std::string>& topics,
                                                       int partitions);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  /// "127.0.0.1:41235,127.0.0.1:39811" — for clients and runtime.json.
  const std::string& bootstrap_servers() const;
  int broker_count() const;

  /// Fault injection for tests and tools/kafka-broker: a broker stops answering, then returns.
  Result<void> set_broker_down(int broker_id);
  Result<void> set_broker_up(int broker_id);
  /// The next `count` requests of API `api_key` (e.g. 0 = Produce) fail with `error_code`
  /// (a Kafka protocol error number, e.g. 19 NOT_ENOUGH_REPLICAS, 7 REQUEST_TIMED_OUT).
  void push_request_errors(int api_key, int count, int error_code);
  Result<void> create_topic(const std::string& topic, int partitions);

 private:
  struct Impl;
  explicit EmbeddedBroker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::kafka
