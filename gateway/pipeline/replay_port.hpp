#pragma once
// An operator's replay of one dead letter: every commit the pipeline makes while re-reading the
// message is that replay (CommitRequest.replay_of), so the store marks the dead letter replayed
// exactly once, in the same transaction as what the message now gives.
#include <cstdint>
#include <string>

#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::pipeline {

/// What an operator is told of a replay.
struct ReplayOutcome {
  std::string dead_letter_id;
  std::string outcome;  ///< "replayed: N event(s) committed"
  std::int64_t events = 0;
};

class ReplayPort final : public CommitPort {
 public:
  /// `inner` must outlive the port.
  ReplayPort(CommitPort& inner, std::string dead_letter_id)
      : inner_(inner), dead_letter_id_(std::move(dead_letter_id)) {}

  boost::asio::awaitable<Result<CommitOutcome>> commit(CommitRequest request) override;

  /// The last commit's result: an error until the pipeline committed something.
  const Result<ReplayOutcome>& result() const { return result_; }

 private:
  CommitPort& inner_;
  std::string dead_letter_id_;
  Result<ReplayOutcome> result_ = fail(Error::internal("the pipeline committed nothing"));
};

}  // namespace sdoh::pipeline
