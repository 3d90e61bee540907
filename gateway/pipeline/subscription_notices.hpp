#pragma once
// Takes part in every commit (ObservedCommitPort): each referral status change becomes a notice
// for the FHIR Subscriptions of the agency that owns the referral (CommitRequest::notices),
// written in the same transaction as the change, so a notification exists exactly when the
// change does. Only the owning agency's Subscriptions get it (the store matches the agency):
// a referral held for no route has no agency and notifies no one.
#include <functional>
#include <utility>
#include <vector>

#include "gateway/pipeline/commit_observer.hpp"

namespace sdoh::pipeline {

/// The notices for a request's status events (`changes`): one per change with an agency, the
/// Task as the request writes it (full-resource payloads) when the request writes it.
std::vector<SubscriptionNotice> subscription_notices(
    const CommitRequest& request, const std::vector<mapping::StatusEvent>& changes);

class SubscriptionNotices final : public CommitObserver {
 public:
  /// `wake_sender` is called once a commit that queued notices is durable.
  explicit SubscriptionNotices(std::function<void()> wake_sender)
      : wake_sender_(std::move(wake_sender)) {}

  void preparing(CommitRequest& request, const std::vector<mapping::StatusEvent>& changes) override;
  void committed(const CommitOutcome& outcome, const std::vector<mapping::StatusEvent>& changes,
                 bool outbound) override;

 private:
  std::function<void()> wake_sender_;
};

}  // namespace sdoh::pipeline
