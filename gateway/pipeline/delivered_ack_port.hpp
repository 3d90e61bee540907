#pragma once
// delivery.ack=delivered: a positive answer waits until Kafka acknowledged every event of the
// message (and of the original, for a resend). A timeout is a negative answer; the events stay
// committed, and the sender's resend is answered positively once they are delivered.
#include <chrono>

#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/delivery_port.hpp"

namespace sdoh::pipeline {

class DeliveredAckPort final : public CommitPort {
 public:
  /// `inner` and `tracker` must outlive the port. A commit waits at most `timeout` for Kafka.
  DeliveredAckPort(CommitPort& inner, DeliveryTracker& tracker, std::chrono::milliseconds timeout)
      : inner_(inner), tracker_(tracker), timeout_(timeout) {}

  boost::asio::awaitable<Result<CommitOutcome>> commit(CommitRequest request) override;

 private:
  CommitPort& inner_;
  DeliveryTracker& tracker_;
  std::chrono::milliseconds timeout_;
};

/// Whether an answer code is positive: HL7 AA/CA, HTTP 2xx.
bool positive_answer(std::string_view code);

}  // namespace sdoh::pipeline
