#include "gateway/identity/scopes.hpp"

#include <gtest/gtest.h>

namespace sdoh::identity {
namespace {

TEST(Scopes, V2PermissionsParseInCrudsOrder) {
  auto s = Scopes::parse("system/Task.rus system/QuestionnaireResponse.c");
  EXPECT_EQ(s.permissions("Task"), kRead | kUpdate | kSearch);
  EXPECT_EQ(s.permissions("QuestionnaireResponse"), kCreate);
  EXPECT_EQ(s.permissions("Patient"), 0);
  EXPECT_EQ(s.to_string(), "system/QuestionnaireResponse.c system/Task.rus");
}

TEST(Scopes, V1ReadAndWriteMapToV2) {
  auto s = Scopes::parse("system/Patient.read system/Task.write system/Consent.*");
  EXPECT_EQ(s.to_string(), "system/Consent.cruds system/Patient.rs system/Task.cud");
}

TEST(Scopes, WildcardTypeCoversEveryType) {
  auto s = Scopes::parse("system/*.cruds");
  EXPECT_TRUE(s.permits("Task", kDelete));
  EXPECT_TRUE(s.permits("Subscription", kCreate));
}

TEST(Scopes, WhatIsNotASystemScopeGrantsNothingAndIsListed) {
  std::vector<std::string> ignored;
  auto s = Scopes::parse(
      "launch patient/Task.r user/*.cruds system/Task.sr system/Task.rs?status=x "
      "system/task.r system/Task.x",
      &ignored);
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(ignored, (std::vector<std::string>{"launch", "patient/Task.r", "user/*.cruds",
                                               "system/Task.sr", "system/Task.rs?status=x",
                                               "system/task.r", "system/Task.x"}));
}

TEST(Scopes, IntersectionGrantsWhatBothAllow) {
  auto requested = Scopes::parse("system/*.rs system/Task.cruds");
  auto allowed = Scopes::parse("system/Task.rus system/QuestionnaireResponse.c");
  EXPECT_EQ(requested.intersect(allowed).to_string(), "system/Task.rus");
  EXPECT_EQ(allowed.intersect(requested).to_string(), "system/Task.rus");
  EXPECT_EQ(Scopes::parse("system/*.rs")
                .intersect(Scopes::parse("system/*.read system/Task.u"))
                .to_string(),
            "system/*.rs");
  EXPECT_TRUE(Scopes::parse("system/Patient.c").intersect(allowed).empty());
}

TEST(ScopeTable, EachInteractionNeedsItsPermission) {
  EXPECT_EQ(required_permission(Interaction::kRead), kRead);
  EXPECT_EQ(required_permission(Interaction::kVread), kRead);
  EXPECT_EQ(required_permission(Interaction::kHistoryInstance), kRead);
  EXPECT_EQ(required_permission(Interaction::kSearchType), kSearch);
  EXPECT_EQ(required_permission(Interaction::kCreate), kCreate);
  EXPECT_EQ(required_permission(Interaction::kUpdate), kUpdate);
  EXPECT_EQ(required_permission(Interaction::kPatch), kUpdate);
  EXPECT_EQ(required_permission(Interaction::kDelete), kDelete);
  EXPECT_EQ(interaction_name(Interaction::kDelete), "delete");
  EXPECT_EQ(interaction_name(Interaction::kSearchType), "search-type");
}

TEST(ScopeTable, TheMissingScopeIsNamed) {
  auto granted = Scopes::parse("system/Task.rs");
  EXPECT_EQ(missing_scope(granted, Interaction::kRead, "Task"), std::nullopt);
  EXPECT_EQ(missing_scope(granted, Interaction::kPatch, "Task"), "system/Task.u");
  EXPECT_EQ(missing_scope(granted, Interaction::kCreate, "QuestionnaireResponse"),
            "system/QuestionnaireResponse.c");
}

}  // namespace
}  // namespace sdoh::identity
