// Which referral changes become notices for agencies' FHIR Subscriptions.
#include "gateway/pipeline/subscription_notices.hpp"

#include <gtest/gtest.h>

namespace sdoh::pipeline {
namespace {

mapping::StatusEvent change(std::string referral, std::string agency, int sequence,
                            mapping::ReferralStatus status) {
  mapping::StatusEvent e;
  e.event_id = "ev-" + referral + "-" + std::to_string(sequence);
  e.transition.referral_id = std::move(referral);
  e.transition.agency_id = std::move(agency);
  e.transition.sequence = sequence;
  e.transition.status = status;
  return e;
}

TEST(SubscriptionNotices, EachChangeIsANoticeForTheAgencyThatOwnsTheReferral) {
  CommitRequest r;
  ResourceWrite task;
  task.type = "Task";
  task.id = "ref-1";
  task.json = R"({"resourceType":"Task","id":"ref-1","status":"accepted"})";
  r.resources.push_back(task);
  auto notices = subscription_notices(
      r, {change("ref-1", "ehv-durham", 2, mapping::ReferralStatus::kAccepted),
          change("ref-2", "wic-east", 3, mapping::ReferralStatus::kCompleted)});
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_EQ(notices[0].agency_id, "ehv-durham");
  EXPECT_EQ(notices[0].referral_id, "ref-1");
  EXPECT_EQ(notices[0].sequence, 2);
  EXPECT_EQ(notices[0].status, "accepted");
  EXPECT_EQ(notices[0].task_json, task.json);
  EXPECT_EQ(notices[1].agency_id, "wic-east");
  EXPECT_EQ(notices[1].status, "completed");
  EXPECT_EQ(notices[1].task_json, "");  // no Task in the request: read when sent
}

TEST(SubscriptionNotices, AReferralHeldWithoutAnAgencyNotifiesNoOne) {
  CommitRequest r;
  auto notices =
      subscription_notices(r, {change("ref-1", "", 1, mapping::ReferralStatus::kRequested)});
  EXPECT_TRUE(notices.empty());
}

TEST(SubscriptionNotices, TheObserverAddsThemToTheCommitAndWakesTheSenderOnceCommitted) {
  int woken = 0;
  SubscriptionNotices observer([&woken] { ++woken; });
  CommitRequest r;
  const std::vector<mapping::StatusEvent> changes = {
      change("ref-1", "ehv-durham", 2, mapping::ReferralStatus::kReceived)};
  observer.preparing(r, changes);
  ASSERT_EQ(r.notices.size(), 1u);
  CommitOutcome duplicate;
  duplicate.status = CommitStatus::kDuplicate;
  observer.committed(duplicate, changes, false);
  EXPECT_EQ(woken, 0);
  observer.committed(CommitOutcome{}, changes, false);
  EXPECT_EQ(woken, 1);
}

}  // namespace
}  // namespace sdoh::pipeline
