// The shared samples (../shared/samples), as the HL7 and FHIR adapters normalize them, mapped
// with the shipped tables (schemas/mappings). Expected results come from samples/README.md.
#include <filesystem>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "gateway/events/schema_catalog.hpp"
#include "gateway/mapping/engine.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::mapping {
namespace {

namespace fs = std::filesystem;
using test::kSchemas;
constexpr const char* kLn = "http://loinc.org";

struct Answer {
  const char* question;
  std::vector<const char*> codes;
};

NormalizedScreening hl7_screening(const char* control_id, const char* panel,
                                  std::vector<Answer> answers,
                                  ResultStatus status = ResultStatus::kFinal) {
  NormalizedScreening s;
  s.protocol = "hl7v2";
  s.sender = "EHR^PEDS_CLINIC_A";
  s.message_id = control_id;
  s.panel = Coding{kLn, panel, ""};
  s.performed = "2026-11-20T10:00:00-05:00";
  s.facility = {"", "PEDS_CLINIC_A", ""};
  s.patient_authority = "PEDS_A";
  s.patient_identifier = "MRN12345";
  for (const auto& a : answers) {
    ItemResponse r;
    r.question = {kLn, a.question, ""};
    for (const auto* code : a.codes)
      r.answers.push_back({Coding{kLn, code, ""}, {}, {}, {}});
    r.status = status;
    s.items.push_back(std::move(r));
  }
  return s;
}

// A QuestionnaireResponse as the FHIR adapter normalizes it: answers by linkId, no panel.
NormalizedScreening fhir_questionnaire_response(
    const char* id, const char* questionnaire,
    std::vector<std::pair<const char*, const char*>> link_answers) {
  NormalizedScreening s;
  s.protocol = "fhir";
  s.sender = "fhir-client";
  s.message_id = id;
  s.resource_type = "QuestionnaireResponse";
  s.questionnaire = questionnaire;
  s.performed = "2026-11-20T10:00:00-05:00";
  s.facility = {"", "fhir-client", ""};
  s.patient_authority = "Patient";
  s.patient_identifier = "pat-sofia";
  for (auto [link, code] : link_answers) {
    ItemResponse r;
    r.link_id = link;
    r.answers.push_back({Coding{kLn, code, ""}, {}, {}, {}});
    s.items.push_back(std::move(r));
  }
  return s;
}

class SharedSamples : public ::testing::Test {
 protected:
  SharedSamples() {
    mapper_ = test::shipped_mapper(registry_);
    catalog_ = test::shipped_catalog();
  }

  // category → status, after checking the data against the screening schema.
  std::map<std::string, std::string> statuses(const NormalizedScreening& s,
                                              MappedScreening* out = nullptr) {
    auto mapped = mapper_->map(s);
    EXPECT_TRUE(mapped) << mapped.error().message;
    if (!mapped) return {};
    auto valid = catalog_->validate("urn:sdoh:schema:screening:v1", mapped->data);
    EXPECT_TRUE(valid) << valid.error().message << "\n" << mapped->data;
    std::map<std::string, std::string> result;
    for (const auto& d : mapped->domains)
      result[d.category] = std::string(to_string(d.status));
    if (out != nullptr) *out = *mapped;
    return result;
  }

  metrics::Registry registry_;
  std::unique_ptr<ScreeningMapper> mapper_;
  std::unique_ptr<events::SchemaCatalog> catalog_;
};

// oru-r01-ahc-hrsn-positive.hl7
TEST_F(SharedSamples, AhcHrsnPositive) {
  MappedScreening m;
  auto st = statuses(hl7_screening("A1000001", "96777-8",
                                   {{"71802-3", {"LA31994-9"}},
                                    {"96778-6", {"LA28580-1", "LA31996-4"}},
                                    {"88122-7", {"LA28397-0"}},
                                    {"88123-5", {"LA6729-3"}},
                                    {"93030-5", {"LA32-8"}},
                                    {"96779-4", {"LA32-8"}}}),
                     &m);
  EXPECT_EQ(m.instrument_id, "ahc-hrsn");
  EXPECT_EQ(st["housing-instability"], "positive");
  EXPECT_EQ(st["food-insecurity"], "positive");
  EXPECT_EQ(st["transportation-insecurity"], "negative");
  EXPECT_EQ(st["utility-insecurity"], "negative");
  EXPECT_EQ(st["inadequate-housing"], "positive");
  EXPECT_EQ(m.unmapped_items, 0u);
  EXPECT_EQ(m.unknown_answers, 0u);
}

// oru-r01-hunger-vital-sign-negative.hl7
TEST_F(SharedSamples, HungerVitalSignNegative) {
  MappedScreening m;
  auto st = statuses(hl7_screening("B2000017", "88121-9",
                                   {{"88122-7", {"LA28398-8"}}, {"88123-5", {"LA28398-8"}}}),
                     &m);
  EXPECT_EQ(m.instrument_id, "hunger-vital-sign");
  EXPECT_EQ(st["food-insecurity"], "negative");
  EXPECT_EQ(st.size(), 1u);
}

// oru-r01-escapes-crlf-v23.hl7 and the first message of batch-two-screenings.hl7
TEST_F(SharedSamples, HungerVitalSignSometimesTrueIsPositive) {
  auto st = statuses(
      hl7_screening("C3|01", "88121-9", {{"88122-7", {"LA6729-3"}}, {"88123-5", {"LA28398-8"}}}));
  EXPECT_EQ(st["food-insecurity"], "positive");
}

// oru-r01-corrected.hl7: OBX-11 C on the housing answer
TEST_F(SharedSamples, CorrectedHousingAnswer) {
  auto s =
      hl7_screening("A1000002", "96777-8", {{"71802-3", {"LA31993-1"}}}, ResultStatus::kCorrected);
  MappedScreening m;
  auto st = statuses(s, &m);
  EXPECT_EQ(st["housing-instability"], "negative");
  EXPECT_NE(m.data.find("\"resultStatus\":\"corrected\""), std::string::npos);
}

// questionnaireresponse-hunger-vital-sign.json
TEST_F(SharedSamples, FhirHungerVitalSignQuestionnaireResponse) {
  auto s = fhir_questionnaire_response(
      "QR-A-0001",
      "http://hl7.org/fhir/us/sdoh-clinicalcare/Questionnaire/SDOHCC-QuestionnaireHungerVitalSign",
      {{"/88122-7", "LA28397-0"}, {"/88123-5", "LA6729-3"}, {"/88124-3", "LA19952-3"}});
  MappedScreening m;
  auto st = statuses(s, &m);
  EXPECT_EQ(m.instrument_id, "hunger-vital-sign");
  EXPECT_EQ(st["food-insecurity"], "positive");
  EXPECT_EQ(m.unmapped_items, 0u);
}

// observation-screening-response-food.json: a single Observation, no panel
TEST_F(SharedSamples, FhirSingleObservation) {
  auto s = hl7_screening("obs-hvs-88122-7-sofia", "", {{"88122-7", {"LA28397-0"}}});
  s.protocol = "fhir";
  s.resource_type = "Observation";
  s.panel.reset();
  MappedScreening m;
  auto st = statuses(s, &m);
  EXPECT_EQ(st["food-insecurity"], "positive");
}

// bundle-transaction-screening-consent-referral.json: the AHC HRSN QuestionnaireResponse
TEST_F(SharedSamples, FhirAhcHrsnInBundle) {
  auto s = fhir_questionnaire_response(
      "QR-A-0002",
      "http://hl7.org/fhir/us/sdoh-clinicalcare/Questionnaire/SDOHCC-QuestionnaireAHCHRSN",
      {{"/71802-3", "LA31994-9"},
       {"/88122-7", "LA6729-3"},
       {"/88123-5", "LA28398-8"},
       {"/93030-5", "LA33-6"},
       {"/96779-4", "LA32-8"}});
  MappedScreening m;
  auto st = statuses(s, &m);
  EXPECT_EQ(m.instrument_id, "ahc-hrsn");
  EXPECT_EQ(st["housing-instability"], "positive");
  EXPECT_EQ(st["food-insecurity"], "positive");
  EXPECT_EQ(st["transportation-insecurity"], "positive");
  EXPECT_EQ(st["utility-insecurity"], "negative");
}

// The AHC HRSN interpersonal-safety questions: positive at a score of 11 or more.
TEST_F(SharedSamples, AhcHrsnSafetyScore) {
  const auto* ins = mapper_->tables().by_id("ahc-hrsn");
  ASSERT_NE(ins, nullptr);
  std::vector<const ItemRule*> safety;
  std::string category;
  for (const auto& d : ins->domains) {
    if (d.kind == DomainRuleKind::kScoreAtLeast) category = d.category;
  }
  ASSERT_FALSE(category.empty()) << "ahc-hrsn has a score rule for the safety questions";
  for (const auto& item : ins->items) {
    if (item.category == category && !item.derived) safety.push_back(&item);
  }
  ASSERT_EQ(safety.size(), 4u);
  auto answer_with_points = [](const ItemRule& item, int points) -> std::string {
    for (const auto& a : item.answers) {
      if (a.points == points) return a.code;
    }
    return "";
  };
  auto run = [&](int p1, int p2, int p3, int p4) {
    auto s = hl7_screening("SAFE", "96777-8", {});
    int points[] = {p1, p2, p3, p4};
    for (int i = 0; i < 4; ++i) {
      ItemResponse r;
      r.question = {kLn, safety[static_cast<std::size_t>(i)]->code, ""};
      r.answers.push_back(
          {Coding{kLn, answer_with_points(*safety[static_cast<std::size_t>(i)], points[i]), ""},
           {},
           {},
           {}});
      s.items.push_back(std::move(r));
    }
    return statuses(s)[category];
  };
  EXPECT_EQ(run(3, 3, 3, 2), "positive");  // 11
  EXPECT_EQ(run(3, 3, 2, 2), "negative");  // 10
  EXPECT_EQ(run(1, 1, 1, 1), "negative");
}

}  // namespace
}  // namespace sdoh::mapping

namespace sdoh::mapping {
namespace {

// AHC HRSN supplemental 96780-2: the family asks for help finding work.
TEST_F(SharedSamples, AhcHrsnHelpRequestSetsAssistance) {
  MappedScreening m;
  statuses(
      hl7_screening("HELP-1", "96777-8", {{"88122-7", {"LA28397-0"}}, {"96780-2", {"LA31981-6"}}}),
      &m);
  std::map<std::string, std::optional<bool>> help;
  for (const auto& d : m.domains)
    help[d.category] = d.assistance_requested;
  EXPECT_EQ(help["employment-status"], true);
  EXPECT_EQ(help["food-insecurity"], std::nullopt);
}

}  // namespace
}  // namespace sdoh::mapping
