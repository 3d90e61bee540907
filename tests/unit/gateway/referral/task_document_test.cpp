// gateway/referral/task_document.cpp: the referral's Task as every path edits, stamps and
// indexes it.
#include "gateway/referral/task_document.hpp"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

namespace sdoh::referral {
namespace {

std::string field(const std::string& json, const char* pointer) {
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  if (doc.HasParseError()) return "<invalid>";
  const auto* v = rapidjson::Pointer(pointer).Get(doc);
  if (v == nullptr) return "<absent>";
  if (v->IsString()) return v->GetString();
  return "<other>";
}

bool has(const std::vector<std::pair<std::string, std::string>>& params, const std::string& name,
         const std::string& value) {
  return std::find(params.begin(), params.end(), std::pair{name, value}) != params.end();
}

TEST(TaskWithStatus, SetsStatusCodedBusinessStatusAndReasonAsText) {
  const std::string task =
      R"({"resourceType":"Task","id":"t1","status":"accepted","businessStatus":{"text":"old"},)"
      R"("intent":"order"})";
  auto out = with_status(task, "failed", "unable-to-contact", "");
  ASSERT_TRUE(out);
  EXPECT_EQ(field(*out, "/status"), "failed");
  // The lifecycle's code in its system, with its display as the text (the old text is gone).
  EXPECT_EQ(field(*out, "/businessStatus/coding/0/system"),
            "urn:sdoh:codesystem:referral-business-status");
  EXPECT_EQ(field(*out, "/businessStatus/coding/0/code"), "unable-to-contact");
  EXPECT_EQ(field(*out, "/businessStatus/text"), "Unable to contact");
  // A code the vocabulary does not know stays text only.
  auto unknown = with_status(task, "failed", "some-local-code", "");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(field(*unknown, "/businessStatus/text"), "some-local-code");
  EXPECT_EQ(field(*unknown, "/businessStatus/coding"), "<absent>");
  EXPECT_EQ(field(*out, "/statusReason"), "<absent>");
  EXPECT_EQ(field(*out, "/intent"), "order");
  auto reason = with_status(task, "rejected", "", "no capacity");
  ASSERT_TRUE(reason);
  EXPECT_EQ(field(*reason, "/businessStatus"), "<absent>");
  EXPECT_EQ(field(*reason, "/statusReason/text"), "no capacity");
  EXPECT_FALSE(with_status("not json", "failed", "", ""));
  EXPECT_FALSE(with_status("[1]", "failed", "", ""));
  auto noted = with_status(*reason, "rejected", "", "no capacity", "call back in May",
                           "2026-11-25T10:00:00Z");
  ASSERT_TRUE(noted);
  EXPECT_EQ(field(*noted, "/note/0/text"), "call back in May");
  EXPECT_EQ(field(*noted, "/note/0/time"), "2026-11-25T10:00:00Z");
}

TEST(TaskWithBusinessStatus, KeepsTheSendersTextForAKnownCode) {
  const std::string task = R"({"resourceType":"Task","businessStatus":{"text":"Mom called back"}})";
  const auto out = with_business_status(task, "family-contacted");
  EXPECT_EQ(field(out, "/businessStatus/coding/0/code"), "family-contacted");
  EXPECT_EQ(field(out, "/businessStatus/text"), "Mom called back");
  EXPECT_EQ(field(with_business_status(task, ""), "/businessStatus"), "<absent>");
}

TEST(TaskOwner, NamesTheAgencyOrganization) {
  const auto out = with_owner(R"({"resourceType":"Task","owner":{"display":"old"}})", "wic-durham",
                              "WIC Durham");
  EXPECT_EQ(field(out, "/owner/reference"), "Organization/wic-durham");
  EXPECT_EQ(field(out, "/owner/display"), "WIC Durham");
}

TEST(TaskMeta, ReplacesVersionAndLastUpdatedKeepingTheRest) {
  const auto out = with_meta(R"({"resourceType":"Task","meta":{"versionId":"1","profile":["p"]}})",
                             7, "2026-12-01T00:00:00Z");
  EXPECT_EQ(field(out, "/meta/versionId"), "7");
  EXPECT_EQ(field(out, "/meta/lastUpdated"), "2026-12-01T00:00:00Z");
  EXPECT_EQ(field(out, "/meta/profile/0"), "p");
}

TEST(Tokens, BusinessStatusAndAgencyIds) {
  EXPECT_EQ(business_status_token("Family contacted"), "family-contacted");
  EXPECT_EQ(business_status_token("  --Waiting  LIST!"), "waiting-list");
  EXPECT_EQ(business_status_token(std::string(100, 'a')).size(), 64u);
  EXPECT_EQ(agency_id_from("WIC_01"), "wic_01");
  EXPECT_EQ(agency_id_from("EHV Durham"), "ehv-durham");
  EXPECT_EQ(agency_id_from("caf\xc3\xa9"), "caf--");
}

TEST(TaskIndex, IsWhatATaskIsSearchedBy) {
  const std::string task = R"({"resourceType":"Task","id":"r1","status":"accepted",)"
                           R"("identifier":[{"system":"urn:clinic","value":"R-1"},{"system":"x"}],)"
                           R"("focus":{"reference":"ServiceRequest/sr1"},)"
                           R"("for":{"reference":"Patient/p1/_history/2"},)"
                           R"("requester":{"reference":"urn:uuid:abc"},)"
                           R"("owner":{"identifier":{"value":"WIC-Durham"}},)"
                           R"("businessStatus":{"coding":[{"code":"Scheduled"}],"text":"x"}})";
  const auto index = index_task(task);
  ASSERT_EQ(index.identifiers.size(), 1u);  // the one with a value
  EXPECT_EQ(index.identifiers[0], (std::pair<std::string, std::string>{"urn:clinic", "R-1"}));
  EXPECT_TRUE(has(index.search, "status", "accepted"));
  EXPECT_TRUE(has(index.search, "focus", "ServiceRequest/sr1"));
  EXPECT_TRUE(has(index.search, "patient", "Patient/p1"));
  EXPECT_TRUE(has(index.search, "owner", "wic-durham"));
  EXPECT_TRUE(has(index.search, "identifier", "urn:clinic|R-1"));
  EXPECT_TRUE(has(index.search, "business-status", "scheduled"));
  // An absolute or urn reference is not a requester the gateway can search by.
  EXPECT_FALSE(std::any_of(index.search.begin(), index.search.end(),
                           [](const auto& p) { return p.first == "requester"; }));
  EXPECT_TRUE(index_task("not json").search.empty());
}

TEST(TaskVersion, IsTheStoreWriteOfOneVersion) {
  const auto w = task_version("r1",
                              R"({"resourceType":"Task","id":"r1","status":"received",)"
                              R"("owner":{"reference":"Organization/wic-durham"}})",
                              3, "2026-12-01T00:00:00Z", "clinic-a");
  EXPECT_EQ(w.type, "Task");
  EXPECT_EQ(w.version, 3);
  EXPECT_EQ(w.expected_version, 2);
  EXPECT_EQ(w.source, "clinic-a");
  EXPECT_EQ(field(w.json, "/meta/versionId"), "3");
  EXPECT_TRUE(has(w.search, "_id", "r1"));
  EXPECT_TRUE(has(w.search, "_sender", "clinic-a"));
  EXPECT_TRUE(has(w.search, "owner", "wic-durham"));
  EXPECT_TRUE(has(w.search, "status", "received"));
}

}  // namespace
}  // namespace sdoh::referral
