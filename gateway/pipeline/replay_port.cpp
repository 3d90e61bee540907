#include "gateway/pipeline/replay_port.hpp"

namespace sdoh::pipeline {

boost::asio::awaitable<Result<CommitOutcome>> ReplayPort::commit(CommitRequest request) {
  request.replay_of = dead_letter_id_;
  auto outcome = co_await inner_.commit(std::move(request));
  if (outcome) {
    const auto events = static_cast<std::int64_t>(outcome->undelivered.size());
    result_ = ReplayOutcome{dead_letter_id_,
                            "replayed: " + std::to_string(events) + " event(s) committed", events};
  } else {
    result_ = fail(outcome.error());
  }
  co_return outcome;
}

}  // namespace sdoh::pipeline
