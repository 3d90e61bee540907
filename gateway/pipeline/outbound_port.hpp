#pragma once
// Messages the gateway sends out (an RRI^I12 to an HL7 clinic), queued with what caused them
// (CommitRequest::outbound) and sent until the destination acknowledges them. Implemented by
// the SQLite store (adapters/store). Reads never wait for the writer; record_outbound_attempt()
// queues to the writer and returns at once.
#include <cstdint>
#include <string>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

/// A queued outbound message.
struct OutboundRow {
  std::int64_t id = 0;
  std::string destination;
  std::string referral_id;
  std::string message;
  int attempts = 0;
};

class OutboundQueue {
 public:
  virtual ~OutboundQueue() = default;
  /// Outbound messages due for a (re)send at `now_ms`, oldest first.
  virtual Result<std::vector<OutboundRow>> due_outbound(std::int64_t now_ms, int limit) const = 0;
  /// Records a send attempt: `done` (acknowledged, or given up) with its outcome, or the error
  /// and when to try again.
  virtual void record_outbound_attempt(std::int64_t id, bool done, std::string outcome,
                                       std::string error, std::int64_t next_attempt_ms) = 0;
};

}  // namespace sdoh::pipeline
