#pragma once
// The one commit path: every commit goes through it to the store, and every observer
// (commit_observer.hpp) takes part. It replaces a callback per caller ("wake the relay") with one
// place that knows a commit happened.
#include <vector>

#include "gateway/pipeline/commit_observer.hpp"
#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::pipeline {

class ObservedCommitPort final : public CommitPort {
 public:
  /// `inner` (the store) and the observers must outlive the port.
  ObservedCommitPort(CommitPort& inner, std::vector<CommitObserver*> observers)
      : inner_(inner), observers_(std::move(observers)) {}

  boost::asio::awaitable<Result<CommitOutcome>> commit(CommitRequest request) override;

 private:
  CommitPort& inner_;
  std::vector<CommitObserver*> observers_;
};

}  // namespace sdoh::pipeline
