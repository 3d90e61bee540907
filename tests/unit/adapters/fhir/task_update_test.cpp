// adapters/fhir/task_update.cpp: an agency's JSON Patch and PUT of a referral Task.
#include "adapters/fhir/task_update.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/unit/support/shipped.hpp"

namespace sdoh::fhir {
namespace {

// The referral Task of bundle-transaction-screening-consent-referral.json as the gateway stores it.
constexpr const char* kStoredTask = R"({"resourceType":"Task","id":"ref1","status":"requested",
  "intent":"order","code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},
  "focus":{"reference":"ServiceRequest/sr1"},"for":{"reference":"Patient/p1"},
  "authoredOn":"2026-11-20T10:12:00-05:00","requester":{"reference":"Practitioner/pr-rivera"},
  "owner":{"reference":"Organization/ehv-durham","display":"Early Start Home Visiting"},
  "meta":{"versionId":"1"}})";

std::string sample(const std::string& name) {
  return test::shared_sample("fhir", name);
}

// task-patch-accepted.json: Task accepted; status event.
TEST(TaskPatch, SharedSampleAcceptsTheReferral) {
  auto patched = apply_json_patch(kStoredTask, sample("task-patch-accepted.json"));
  ASSERT_TRUE(patched) << patched.error().operation_outcome();
  auto u = read_task_update("ref1", kStoredTask, *patched);
  ASSERT_TRUE(u) << u.error().operation_outcome();
  EXPECT_EQ(u->previous, mapping::ReferralStatus::kRequested);
  EXPECT_EQ(u->status, mapping::ReferralStatus::kAccepted);
  EXPECT_EQ(u->business_status, "family-contacted");
  rapidjson::Document doc;
  doc.Parse(patched->c_str());
  EXPECT_STREQ(doc["note"][0]["text"].GetString(),
               "Reached mother by phone in Spanish; first visit on 2026-11-25.");
  EXPECT_STREQ(doc["status"].GetString(), "accepted");
}

TEST(TaskPatch, AddInsertsIntoArraysAndRemoveDeletes) {
  auto p = apply_json_patch(R"({"resourceType":"Task","id":"a","note":[{"text":"b"}]})",
                            R"([{"op":"add","path":"/note/0","value":{"text":"a"}},
                                {"op":"add","path":"/note/-","value":{"text":"c"}},
                                {"op":"remove","path":"/note/1"}])");
  ASSERT_TRUE(p) << p.error().operation_outcome();
  EXPECT_EQ(*p, R"({"resourceType":"Task","id":"a","note":[{"text":"a"},{"text":"c"}]})");
}

TEST(TaskPatch, FailedTestIs422) {
  auto p = apply_json_patch(kStoredTask, R"([{"op":"test","path":"/status","value":"received"},
                                              {"op":"replace","path":"/status","value":"accepted"}])");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().http_status(), 422);
  EXPECT_EQ(p.error().first_error().expression, "Patch[0].value");
}

TEST(TaskPatch, ReplacingAMissingPathIs400) {
  auto p = apply_json_patch(kStoredTask,
                            R"([{"op":"replace","path":"/statusReason/text","value":"x"}])");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().http_status(), 400);
  EXPECT_EQ(p.error().first_error().expression, "Patch[0].path");
}

TEST(TaskPatch, APatchThatIsNotAnArrayIs400) {
  auto p = apply_json_patch(kStoredTask, R"({"op":"replace"})");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().http_status(), 400);
}

TEST(TaskPatch, ChangingTheIdIsRefused) {
  auto p = apply_json_patch(kStoredTask, R"([{"op":"replace","path":"/id","value":"other"}])");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().http_status(), 422);
}

TEST(TaskUpdate, OwnerCannotChange) {
  auto p = apply_json_patch(
      kStoredTask, R"([{"op":"replace","path":"/owner/reference","value":"Organization/wic"}])");
  ASSERT_TRUE(p);
  auto u = read_task_update("ref1", kStoredTask, *p);
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().http_status(), 422);
  EXPECT_EQ(u.error().first_error().expression, "Task.owner");
}

TEST(TaskUpdate, IdMustMatchTheUrl) {
  auto u = read_task_update("other", kStoredTask, kStoredTask);
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().http_status(), 400);
  EXPECT_EQ(u.error().first_error().expression, "Task.id");
}

TEST(TaskUpdate, RejectionCarriesItsReason) {
  auto p = apply_json_patch(kStoredTask, R"([{"op":"replace","path":"/status","value":"rejected"},
     {"op":"add","path":"/statusReason","value":{"text":"outside service area"}}])");
  ASSERT_TRUE(p);
  auto u = read_task_update("ref1", kStoredTask, *p);
  ASSERT_TRUE(u) << u.error().operation_outcome();
  EXPECT_EQ(u->status, mapping::ReferralStatus::kRejected);
  EXPECT_EQ(u->reason, "outside service area");
  EXPECT_TRUE(u->warnings.empty() || u->warnings.front().expression != "Task.statusReason.text");
}

TEST(TaskUpdate, StatusOutsideTheReferralWorkflowIs422) {
  auto p = apply_json_patch(kStoredTask, R"([{"op":"replace","path":"/status","value":"ready"}])");
  ASSERT_TRUE(p);
  auto u = read_task_update("ref1", kStoredTask, *p);
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().http_status(), 422);
  EXPECT_EQ(u.error().first_error().expression, "Task.status");
}

TEST(TaskPatch, APatchNestedPastTheDepthLimitIsRefusedNotACrash) {
  auto p = apply_json_patch(kStoredTask, std::string(150'000, '['));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().http_status(), 400);
  auto dup = apply_json_patch(
      kStoredTask, R"([{"op":"replace","op":"add","path":"/status","value":"received"}])");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().http_status(), 400);
}

}  // namespace
}  // namespace sdoh::fhir
