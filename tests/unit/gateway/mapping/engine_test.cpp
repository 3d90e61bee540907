#include "gateway/mapping/engine.hpp"

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "gateway/events/schema_catalog.hpp"

namespace sdoh::mapping {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kSchemas = fs::path(SDOH_SOURCE_DIR) / "schemas";

// A scratch instrument exercising every rule kind, added purely as data in a temp dir.
constexpr const char* kInstrument = R"({
  "id": "test-screen", "title": "Test screen", "version": "1", "sources": ["unit test"],
  "panel": {"system": "http://example.org/q", "code": "PANEL", "display": "Test screen"},
  "questionnaires": ["http://example.org/Questionnaire/test-screen"],
  "items": [
    {"system": "http://example.org/q", "code": "F1", "display": "Food worry", "linkIds": ["/F1"],
     "category": "food-insecurity", "answerType": "coding",
     "answers": [{"code": "Y", "display": "Yes", "result": "positive"},
                 {"code": "N", "display": "No", "result": "negative"},
                 {"code": "D", "display": "Declined", "result": "declined"}]},
    {"system": "http://example.org/q", "code": "F2", "display": "Food ran out", "linkIds": ["/F2"],
     "category": "food-insecurity", "answerType": "coding",
     "answers": [{"code": "Y", "display": "Yes", "result": "positive"},
                 {"code": "N", "display": "No", "result": "negative"},
                 {"code": "D", "display": "Declined", "result": "declined"}]},
    {"system": "http://example.org/q", "code": "S1", "display": "Hurt", "category": "intimate-partner-violence",
     "answerType": "coding",
     "answers": [{"code": "1", "display": "Never", "result": "negative", "points": 1},
                 {"code": "3", "display": "Sometimes", "result": "positive", "points": 3}]},
    {"system": "http://example.org/q", "code": "S2", "display": "Threaten", "category": "intimate-partner-violence",
     "answerType": "coding",
     "answers": [{"code": "1", "display": "Never", "result": "negative", "points": 1},
                 {"code": "3", "display": "Sometimes", "result": "positive", "points": 3}]},
    {"system": "http://example.org/q", "code": "H1", "display": "Problems with your home", "category": "inadequate-housing",
     "answerType": "coding",
     "answers": [{"code": "MOLD", "display": "Mold", "result": "positive"},
                 {"code": "NOHEAT", "display": "Lack of heat", "result": "positive", "category": "utility-insecurity"},
                 {"code": "NONE", "display": "None of the above", "result": "negative"}]},
    {"system": "http://example.org/q", "code": "N1", "display": "Missed meals last week", "category": "food-insecurity",
     "answerType": "quantity", "ranges": [{"max": 1, "result": "negative"}, {"min": 1, "result": "positive"}]},
    {"system": "http://example.org/q", "code": "HELP", "display": "Would you like help?", "category": "food-insecurity",
     "answerType": "coding", "role": "assistance",
     "answers": [{"code": "Y", "display": "Yes", "result": "unknown"}, {"code": "N", "display": "No", "result": "unknown"}]}
  ],
  "domains": [{"category": "food-insecurity", "rule": "any-positive"},
              {"category": "intimate-partner-violence", "rule": "score-at-least", "threshold": 6}],
  "assistance": [{"item": "HELP", "categories": "all-positive",
                  "answers": [{"code": "Y", "display": "Yes", "requested": true},
                              {"code": "N", "display": "No", "requested": false}]}]
})";

class Engine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("sdoh_engine_test_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ / "instruments");
    std::ofstream(*dir_ / "categories.json")
        << R"({"system": "http://example.org/categories", "categories": [
        {"code": "food-insecurity"}, {"code": "intimate-partner-violence"}, {"code": "inadequate-housing"},
        {"code": "utility-insecurity"}]})";
    // The engine tests exercise rules, not the table format: accept any object.
    std::ofstream(*dir_ / "instrument.schema.json")
        << R"({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"})";
    std::ofstream(*dir_ / "instruments" / "test-screen.json") << kInstrument;
    auto catalog = events::SchemaCatalog::load(kSchemas / "events");
    ASSERT_TRUE(catalog) << catalog.error().message;
    catalog_ = catalog->release();
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete catalog_;
  }

  Engine() {
    auto tables = MappingTables::load(*dir_);
    EXPECT_TRUE(tables) << tables.error().message;
    mapper_ = std::make_unique<ScreeningMapper>(*tables,
                                                identity::Pseudonymizer("k" + std::string(40, 'x')),
                                                ZipPolicy{{"036", "059"}}, registry_);
  }

  static NormalizedScreening screening(std::vector<ItemResponse> items) {
    NormalizedScreening s;
    s.protocol = "hl7v2";
    s.sender = "EHR^PEDS_A";
    s.message_id = "MSG-1";
    s.panel = Coding{"http://example.org/q", "PANEL", ""};
    s.performed = "2026-11-20T10:00:00-05:00";
    s.facility = {"", "PEDS_A", ""};
    s.patient_authority = "PEDS_A";
    s.patient_identifier = "MRN12345";
    s.items = std::move(items);
    return s;
  }
  static ItemResponse coded(const std::string& q, std::vector<std::string> answers,
                            ResultStatus status = ResultStatus::kFinal) {
    ItemResponse r;
    r.question = {"http://example.org/q", q, q + " text"};
    for (auto& a : answers)
      r.answers.push_back({Coding{"http://example.org/a", a, a + " display"}, {}, {}, {}});
    r.status = status;
    return r;
  }

  // Maps, checks the data against schemas/events/screening.v1.schema.json, returns it parsed.
  rapidjson::Document map_valid(const NormalizedScreening& s, MappedScreening* out = nullptr) {
    auto mapped = mapper_->map(s);
    EXPECT_TRUE(mapped) << mapped.error().message;
    rapidjson::Document doc;
    if (!mapped) return doc;
    auto valid = catalog_->validate("urn:sdoh:schema:screening:v1", mapped->data);
    EXPECT_TRUE(valid) << valid.error().message << "\n" << mapped->data;
    doc.Parse(mapped->data.c_str());
    if (out != nullptr) *out = *mapped;
    return doc;
  }

  static const rapidjson::Value* domain(const rapidjson::Document& d, const char* category) {
    for (const auto& dom : d["domains"].GetArray()) {
      if (std::string(dom["category"].GetString()) == category) return &dom;
    }
    return nullptr;
  }
  static std::string status(const rapidjson::Document& d, const char* category) {
    const auto* dom = domain(d, category);
    return dom == nullptr ? "absent" : dom->operator[]("status").GetString();
  }

  inline static fs::path* dir_ = nullptr;
  inline static events::SchemaCatalog* catalog_ = nullptr;
  metrics::Registry registry_;
  std::unique_ptr<ScreeningMapper> mapper_;
};

TEST_F(Engine, AnyPositiveItemMakesTheDomainPositive) {
  auto d = map_valid(screening({coded("F1", {"Y"}), coded("F2", {"N"})}));
  EXPECT_EQ(status(d, "food-insecurity"), "positive");
  const auto& items = (*domain(d, "food-insecurity"))["items"];
  ASSERT_EQ(items.Size(), 2u);
  EXPECT_STREQ(items[0]["result"].GetString(), "positive");
  EXPECT_STREQ(items[0]["answer"]["code"].GetString(), "Y");
  EXPECT_STREQ(items[1]["result"].GetString(), "negative");
  EXPECT_STREQ(d["instrument"]["id"].GetString(), "test-screen");
}

TEST_F(Engine, AllNegativeIsNegative) {
  EXPECT_EQ(
      status(map_valid(screening({coded("F1", {"N"}), coded("F2", {"N"})})), "food-insecurity"),
      "negative");
}

TEST_F(Engine, AllDeclinedIsDeclined) {
  EXPECT_EQ(
      status(map_valid(screening({coded("F1", {"D"}), coded("F2", {"D"})})), "food-insecurity"),
      "declined");
}

TEST_F(Engine, PartialAnswersStillDecide) {
  EXPECT_EQ(status(map_valid(screening({coded("F2", {"N"})})), "food-insecurity"), "negative");
  EXPECT_EQ(
      status(map_valid(screening({coded("F1", {"D"}), coded("F2", {"N"})})), "food-insecurity"),
      "negative");
}

TEST_F(Engine, UnknownAnswerCodeIsKeptWithResultUnknown) {
  MappedScreening m;
  auto d = map_valid(screening({coded("F1", {"MAYBE"})}), &m);
  EXPECT_EQ(status(d, "food-insecurity"), "unknown");
  EXPECT_STREQ((*domain(d, "food-insecurity"))["items"][0]["result"].GetString(), "unknown");
  EXPECT_EQ(m.unknown_answers, 1u);
  EXPECT_THAT(registry_.render(),
              HasSubstr("sdoh_mapping_unknown_answers_total{instrument=\"test-screen\"} 1"));
}

TEST_F(Engine, UnknownQuestionIsKeptAsUnmappedAndCounted) {
  auto text_item = coded("ZZZ-1", {});
  text_item.answers.push_back({std::nullopt, {}, {}, "12 Elm St, Durham"});
  text_item.answers.push_back({Coding{"http://loinc.org", "LA33-6", "Yes"}, {}, {}, {}});
  MappedScreening m;
  auto d = map_valid(screening({coded("F1", {"N"}), text_item}), &m);
  ASSERT_EQ(d["unmapped"].Size(), 1u);
  const auto& u = d["unmapped"][0];
  EXPECT_STREQ(u["code"].GetString(), "ZZZ-1");
  EXPECT_TRUE(u["answers"][0]["redacted"].GetBool());
  EXPECT_STREQ(u["answers"][1]["code"].GetString(), "LA33-6");
  EXPECT_EQ(m.data.find("Elm St"), std::string::npos)
      << "free text of an unknown question must not leak";
  EXPECT_EQ(m.unmapped_items, 1u);
  EXPECT_THAT(registry_.render(),
              HasSubstr("sdoh_mapping_unmapped_items_total{instrument=\"test-screen\"} 1"));
}

TEST_F(Engine, ScoreRuleSumsPoints) {
  EXPECT_EQ(status(map_valid(screening({coded("S1", {"3"}), coded("S2", {"3"})})),
                   "intimate-partner-violence"),
            "positive");
  EXPECT_EQ(status(map_valid(screening({coded("S1", {"1"}), coded("S2", {"3"})})),
                   "intimate-partner-violence"),
            "negative");
}

TEST_F(Engine, ScoreBelowThresholdWithMissingItemsIsUnknown) {
  EXPECT_EQ(status(map_valid(screening({coded("S1", {"3"})})), "intimate-partner-violence"),
            "unknown");
}

TEST_F(Engine, MultiSelectAnswerCanMapToAnotherCategory) {
  auto d = map_valid(screening({coded("H1", {"MOLD", "NOHEAT"})}));
  EXPECT_EQ(status(d, "inadequate-housing"), "positive");
  EXPECT_EQ(status(d, "utility-insecurity"), "positive");
}

TEST_F(Engine, NumericAnswersUseRanges) {
  ItemResponse n;
  n.question = {"http://example.org/q", "N1", ""};
  n.answers.push_back({std::nullopt, 2.0, {}, {}});
  auto d = map_valid(screening({n}));
  EXPECT_EQ(status(d, "food-insecurity"), "positive");
  EXPECT_EQ((*domain(d, "food-insecurity"))["items"][0]["answer"]["value"].GetDouble(), 2.0);
}

TEST_F(Engine, AssistanceAnswerAppliesToPositiveDomains) {
  auto d = map_valid(screening(
      {coded("F1", {"Y"}), coded("S1", {"1"}), coded("S2", {"1"}), coded("HELP", {"Y"})}));
  EXPECT_TRUE((*domain(d, "food-insecurity"))["assistanceRequested"].GetBool());
  EXPECT_TRUE((*domain(d, "intimate-partner-violence"))["assistanceRequested"].IsNull());
}

TEST_F(Engine, NoAssistanceQuestionMeansNull) {
  auto d = map_valid(screening({coded("F1", {"Y"})}));
  EXPECT_TRUE((*domain(d, "food-insecurity"))["assistanceRequested"].IsNull());
}

TEST_F(Engine, DeclinedHelpIsFalse) {
  MappedScreening m;
  map_valid(screening({coded("F1", {"Y"}), coded("HELP", {"N"})}), &m);
  ASSERT_EQ(m.domains.size(), 1u);
  EXPECT_EQ(m.domains[0].assistance_requested, false);
}

TEST_F(Engine, CancelledItemsCountTowardNoDomain) {
  auto d = map_valid(screening({coded("F1", {"Y"}, ResultStatus::kCancelled), coded("F2", {"N"})}));
  EXPECT_EQ(status(d, "food-insecurity"), "negative");
}

TEST_F(Engine, CorrectionSupersedesTheEarlierScreening) {
  auto s = screening({coded("F1", {"N"}, ResultStatus::kCorrected)});
  s.supersedes = std::string(32, 'a');
  auto d = map_valid(s);
  EXPECT_STREQ(d["resultStatus"].GetString(), "corrected");
  EXPECT_STREQ(d["supersedes"].GetString(), std::string(32, 'a').c_str());
}

TEST_F(Engine, FoundByQuestionnaireOrFirstKnownQuestionWithoutPanel) {
  auto s = screening({coded("F1", {"Y"})});
  s.panel.reset();
  s.questionnaire = "http://example.org/Questionnaire/test-screen|2.0";
  EXPECT_STREQ(map_valid(s)["instrument"]["id"].GetString(), "test-screen");
  s.questionnaire.clear();
  EXPECT_STREQ(map_valid(s)["instrument"]["id"].GetString(), "test-screen");
}

TEST_F(Engine, FhirLinkIdFindsTheQuestion) {
  ItemResponse r;
  r.link_id = "/F1";
  r.answers.push_back({Coding{"http://example.org/a", "Y", "Yes"}, {}, {}, {}});
  EXPECT_EQ(status(map_valid(screening({r})), "food-insecurity"), "positive");
}

TEST_F(Engine, UnknownInstrumentKeepsEveryItemUnmapped) {
  auto s = screening({coded("Q-1", {"A"})});
  s.panel = Coding{"http://example.org/other", "OTHER", "Other form"};
  auto d = map_valid(s);
  EXPECT_STREQ(d["instrument"]["id"].GetString(), "unknown");
  EXPECT_STREQ(d["instrument"]["code"].GetString(), "OTHER");
  EXPECT_EQ(d["domains"].Size(), 0u);
  EXPECT_EQ(d["unmapped"].Size(), 1u);
}

TEST_F(Engine, EquityFieldsAndSafeHarborZip) {
  auto s = screening({coded("F1", {"Y"})});
  s.race = {{"urn:oid:2.16.840.1.113883.6.238", "2106-3", "White"}};
  s.ethnicity = {{"urn:oid:2.16.840.1.113883.6.238", "2135-2", "Hispanic or Latino"}};
  s.language = Coding{"urn:ietf:bcp:47", "es", "Spanish"};
  s.postal_code = "27701-1234";
  auto d = map_valid(s);
  EXPECT_STREQ(d["equity"]["zip3"].GetString(), "277");
  EXPECT_STREQ(d["equity"]["race"][0]["code"].GetString(), "2106-3");
  EXPECT_STREQ(d["equity"]["language"]["code"].GetString(), "es");
  s.postal_code = "03601";
  EXPECT_STREQ(map_valid(s)["equity"]["zip3"].GetString(), "000");
  s.postal_code = "SW1A 1AA";
  EXPECT_FALSE(map_valid(s)["equity"].HasMember("zip3"));
}

TEST_F(Engine, NoNamesOrIdentifiersInTheEvent) {
  MappedScreening m;
  map_valid(screening({coded("F1", {"Y"})}), &m);
  EXPECT_EQ(m.data.find("MRN12345"), std::string::npos);
  EXPECT_EQ(m.patient_pseudonym.size(), 64u);
  EXPECT_THAT(m.data, HasSubstr(m.patient_pseudonym));
}

TEST_F(Engine, AgeBandFromBirthDate) {
  auto s = screening({coded("F1", {"Y"})});
  s.birth_date = "2026-05-01";
  EXPECT_STREQ(map_valid(s)["patient"]["ageBand"].GetString(), "0-11m");
  EXPECT_EQ(age_band("20240101", "2026-11-20"), "2-4y");
  EXPECT_EQ(age_band("2025-11-21", "2026-11-20"), "0-11m");
  EXPECT_EQ(age_band("2025-11-20", "2026-11-20"), "12-23m");
  EXPECT_EQ(age_band("2008-01-01", "2026-11-20"), "18y+");
  EXPECT_EQ(age_band("garbage", "2026-11-20"), "");
}

TEST(AgeInMonths, CompletedMonthsOnTheDate) {
  EXPECT_EQ(age_in_months("2026-05-01", "2026-11-20"), 6);
  EXPECT_EQ(age_in_months("2023-11-21", "2026-11-20"), 35);  // the day before the third birthday
  EXPECT_EQ(age_in_months("2023-11-20", "2026-11-20"), 36);
  EXPECT_EQ(age_in_months("2026-11-20", "2026-11-20T10:00:00-05:00"), 0);
  EXPECT_EQ(age_in_months("2026-11-21", "2026-11-20"), std::nullopt);
  EXPECT_EQ(age_in_months("", "2026-11-20"), std::nullopt);
}

TEST_F(Engine, IdsAreDeterministicFromTheSourceMessage) {
  auto s = screening({coded("F1", {"Y"})});
  MappedScreening a, b, c;
  map_valid(s, &a);
  map_valid(s, &b);
  s.position = 1;
  map_valid(s, &c);
  EXPECT_EQ(a.screening_id, b.screening_id);
  EXPECT_NE(a.screening_id, c.screening_id);
  EXPECT_EQ(a.screening_id.size(), 32u);
}

TEST_F(Engine, MissingPatientIdentifierIsAnError) {
  auto s = screening({coded("F1", {"Y"})});
  s.patient_identifier.clear();
  auto r = mapper_->map(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  EXPECT_EQ(r.error().where.expression, "patient.identifier");
}

TEST_F(Engine, NoItemsIsAnError) {
  auto r = mapper_->map(screening({}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().where.expression, "items");
}

TEST_F(Engine, AskedNotAnsweredIsRecordedAsUnansweredAndCounted) {
  MappedScreening m;
  auto d = map_valid(screening({coded("F1", {"Y"}), coded("F2", {})}), &m);
  EXPECT_EQ(status(d, "food-insecurity"), "positive");
  ASSERT_EQ((*domain(d, "food-insecurity"))["items"].Size(), 1u) << "F2 counts toward nothing";
  ASSERT_EQ(d["unanswered"].Size(), 1u);
  EXPECT_STREQ(d["unanswered"][0]["code"].GetString(), "F2");
  EXPECT_STREQ(d["unanswered"][0]["system"].GetString(), "http://example.org/q");
  EXPECT_STREQ(d["unanswered"][0]["category"].GetString(), "food-insecurity");
  EXPECT_FALSE(d["unanswered"][0].HasMember("answers"));
  EXPECT_EQ(m.unanswered_items, 1u);
  EXPECT_THAT(registry_.render(),
              HasSubstr("sdoh_mapping_unanswered_items_total{instrument=\"test-screen\"} 1"));
}

TEST_F(Engine, EveryDomainQuestionUnansweredLeavesTheDomainOut) {
  auto d = map_valid(screening({coded("F1", {}), coded("F2", {}), coded("S1", {"1"})}));
  EXPECT_EQ(status(d, "food-insecurity"), "absent");
  EXPECT_EQ(d["unanswered"].Size(), 2u);
}

TEST_F(Engine, OnlyUnansweredQuestionsStillMakeAnEvent) {
  MappedScreening m;
  auto d = map_valid(screening({coded("F1", {}, ResultStatus::kCorrected)}), &m);
  EXPECT_EQ(d["domains"].Size(), 0u);
  EXPECT_EQ(d["unanswered"].Size(), 1u);
  EXPECT_STREQ(d["resultStatus"].GetString(), "corrected");
}

TEST_F(Engine, UnansweredScoreQuestionLeavesTheScoreUnknown) {
  auto d = map_valid(screening({coded("S1", {"1"}), coded("S2", {})}));
  EXPECT_EQ(status(d, "intimate-partner-violence"), "unknown");
}

TEST_F(Engine, PreliminaryOrCancelledItemWithoutAnswerIsNotUnanswered) {
  auto d = map_valid(screening({coded("F1", {"N"}), coded("F2", {}, ResultStatus::kPreliminary),
                                coded("S1", {}, ResultStatus::kCancelled)}));
  EXPECT_EQ(d["unanswered"].Size(), 0u);
}

TEST_F(Engine, UnansweredUnknownQuestionHasNoCategory) {
  auto d = map_valid(screening({coded("F1", {"N"}), coded("ZZZ-9", {})}));
  ASSERT_EQ(d["unanswered"].Size(), 1u);
  EXPECT_STREQ(d["unanswered"][0]["code"].GetString(), "ZZZ-9");
  EXPECT_FALSE(d["unanswered"][0].HasMember("category"));
  EXPECT_EQ(d["unmapped"].Size(), 0u);
}

TEST_F(Engine, UnansweredItemWithOnlyAnUnknownLinkIdIsTakenForADisplayItem) {
  ItemResponse display;
  display.link_id = "intro-text";
  ItemResponse by_link;
  by_link.link_id = "/F2";
  auto d = map_valid(screening({coded("F1", {"N"}), display, by_link}));
  ASSERT_EQ(d["unanswered"].Size(), 1u);
  EXPECT_STREQ(d["unanswered"][0]["linkId"].GetString(), "/F2");
  EXPECT_STREQ(d["unanswered"][0]["category"].GetString(), "food-insecurity");
}

TEST_F(Engine, ClinicPolicyIsOffByDefault) {
  MappedScreening m;
  map_valid(screening({coded("F1", {"Y"})}), &m);
  ASSERT_EQ(m.domains.size(), 1u);
  EXPECT_EQ(m.domains[0].assistance_requested, std::nullopt);
}

TEST_F(Engine, ClinicPolicyMakesAPositiveDomainARequestForHelp) {
  AssistancePolicy policy;
  policy.by_sender["EHR^PEDS_A"] = AssistancePolicy::Rule::kPositiveDomainRequestsHelp;
  mapper_->set_assistance_policy(policy);
  MappedScreening m;
  auto d = map_valid(screening({coded("F1", {"Y"}), coded("H1", {"NONE"}), coded("S1", {"3"}),
                                coded("S2", {"3"})}),
                     &m);
  const auto* food = domain(d, "food-insecurity");
  EXPECT_TRUE((*food)["assistanceRequested"].GetBool());
  EXPECT_STREQ((*food)["assistanceBasis"].GetString(), "clinic-policy");
  EXPECT_TRUE((*domain(d, "intimate-partner-violence"))["assistanceRequested"].GetBool())
      << "a score rule's positive counts too";
  EXPECT_TRUE((*domain(d, "inadequate-housing"))["assistanceRequested"].IsNull())
      << "a negative domain is no request";
  EXPECT_FALSE((*domain(d, "inadequate-housing")).HasMember("assistanceBasis"));
  ASSERT_EQ(m.domains.size(), 3u);
  EXPECT_TRUE(m.domains[0].by_clinic_policy);
}

TEST_F(Engine, ClinicPolicyAppliesOnlyToTheSenderItNames) {
  AssistancePolicy policy;
  policy.by_sender["EHR^PEDS_B"] = AssistancePolicy::Rule::kPositiveDomainRequestsHelp;
  mapper_->set_assistance_policy(policy);
  auto d = map_valid(screening({coded("F1", {"Y"})}));
  EXPECT_TRUE((*domain(d, "food-insecurity"))["assistanceRequested"].IsNull());
}

TEST_F(Engine, TheFamilysOwnAnswerBeatsTheClinicPolicy) {
  AssistancePolicy policy;
  policy.default_rule = AssistancePolicy::Rule::kPositiveDomainRequestsHelp;
  mapper_->set_assistance_policy(policy);
  auto d = map_valid(screening({coded("F1", {"Y"}), coded("HELP", {"N"})}));
  const auto* food = domain(d, "food-insecurity");
  EXPECT_FALSE((*food)["assistanceRequested"].GetBool());
  EXPECT_STREQ((*food)["assistanceBasis"].GetString(), "question");
}

TEST(AssistancePolicyText, ParsesTheConfigWords) {
  EXPECT_EQ(AssistancePolicy::parse("none"), AssistancePolicy::Rule::kNone);
  EXPECT_EQ(AssistancePolicy::parse("positive-domain"),
            AssistancePolicy::Rule::kPositiveDomainRequestsHelp);
  EXPECT_EQ(AssistancePolicy::parse("yes"), std::nullopt);
}

TEST(Pseudonym, KeyedDeterministicAndAliased) {
  identity::Pseudonymizer p("secret-key-one", {{"PEDS_A", "urn:oid:1.2.3"}});
  const auto a = p.pseudonym("PEDS_A", "MRN12345");
  EXPECT_EQ(a, p.pseudonym(" urn:oid:1.2.3 ", "MRN12345 "));
  EXPECT_NE(a, identity::Pseudonymizer("secret-key-two").pseudonym("urn:oid:1.2.3", "MRN12345"));
  EXPECT_NE(a, p.pseudonym("PEDS_A", "MRN12346"));
  // HMAC-SHA256("secret-key-one", "urn:oid:1.2.3|MRN12345"), computed with openssl dgst -hmac.
  EXPECT_EQ(a, "1c9e3472b6f5721f48d69ae8a021aef0c9e61378c7986cc7de7276c109bd5d9e");
}

}  // namespace
}  // namespace sdoh::mapping
