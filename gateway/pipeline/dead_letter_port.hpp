#pragma once
// The dead letters an operator lists, reads and replays (/admin/deadletters). Implemented by the
// SQLite store (adapters/store); written only through CommitPort and Outbox::dead_letter_event.
#include <cstdint>
#include <string>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

/// A stored dead letter as an operator sees it (never PHI: the payload only on request).
struct DeadLetterInfo {
  std::string dead_letter_id;
  std::int64_t created_at_ms = 0;
  std::string stage;
  std::string error_code;
  std::string error_text;
  std::string location;
  std::string protocol;
  std::string sender;
  std::string message_id;
  std::string message_type;
  std::int64_t outbox_seq = 0;      ///< publish failures: the refused event (0: an inbound message)
  std::int64_t replayed_at_ms = 0;  ///< 0: not replayed
  std::string replay_outcome;
  bool payload_kept = false;
  std::string payload;  ///< filled only by dead_letter(id, true)
  /// Filled only by dead_letter(id, true): the answer the message got, which names what it
  /// stored (a held referral's resources), so that a replay finds them again.
  std::string answer;
};

/// The result of an operator's replay.
struct ReplayResult {
  std::string dead_letter_id;
  std::string outcome;  ///< what happened, for the operator
  std::int64_t events = 0;
};

class DeadLetters {
 public:
  virtual ~DeadLetters() = default;
  /// Dead letters, newest first, `limit` at most.
  virtual Result<std::vector<DeadLetterInfo>> dead_letters(int limit,
                                                           bool include_replayed) const = 0;
  virtual Result<DeadLetterInfo> dead_letter(const std::string& dead_letter_id,
                                             bool with_payload) const = 0;
  /// Replays a dead letter of an event Kafka refused: it is queued for publishing again.
  /// Exactly once: a second replay fails with kConflict.
  virtual Result<ReplayResult> replay_event(const std::string& dead_letter_id) = 0;
  /// Dead letters not yet replayed.
  virtual std::int64_t dead_letters_waiting() const = 0;
};

}  // namespace sdoh::pipeline
