#pragma once
// Kafka's acknowledgement of committed events, awaited (delivery.ack=delivered). Implemented by
// the SQLite store, which hears the relay's delivery reports; a fake in unit tests.
#include <chrono>
#include <cstdint>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

class DeliveryTracker {
 public:
  virtual ~DeliveryTracker() = default;
  /// Completes when every one of `seqs` (outbox sequence numbers) is delivered; kUnavailable
  /// when Kafka refused one for good or `timeout` passed first. Waits at most `timeout`.
  virtual boost::asio::awaitable<Result<void>> await_delivered(
      std::vector<std::int64_t> seqs, std::chrono::milliseconds timeout) = 0;
};

}  // namespace sdoh::pipeline
