// The SDOH Clinical Care IG's own example QuestionnaireResponses (HL7/fhir-sdoh-clinicalcare,
// converted from FSH to JSON in tests/data/ig-examples/, see its README.md) through the FHIR
// adapter and the shipped mapping tables: each maps to the domains its answers mean.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "adapters/fhir/ingest.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::fhir {
namespace {

std::string ig_example(const std::string& name) {
  std::ifstream in(std::filesystem::path(SDOH_SOURCE_DIR) / "tests" / "data" / "ig-examples" / name,
                   std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_FALSE(s.str().empty()) << name;
  return s.str();
}

class IgExample : public ::testing::Test {
 protected:
  IgExample() {
    mapper_ = test::shipped_mapper(registry_);
    catalog_ = test::shipped_catalog();
    ctx_.mapper = mapper_.get();
    ctx_.sender = "clinic-a";
    ctx_.facility = {"urn:oid:2.16.840.1.113883.3.9999", "PEDS_CLINIC_A", "Peds Clinic A"};
  }

  // The one screening event's data, checked against its schema; the examples' Patient is not
  // sent, so the screening is linked by its subject reference.
  rapidjson::Document screening(const std::string& name, std::string* text = nullptr) {
    auto r = ingest({ig_example(name), "QuestionnaireResponse", "", "2026-11-20T15:30:00.000Z", {}},
                    ctx_);
    EXPECT_TRUE(r) << (r ? "" : r.error().problem.operation_outcome());
    rapidjson::Document data;
    if (!r) return data;
    EXPECT_EQ(r->http_status, 201);
    EXPECT_EQ(r->commit.events.size(), 1u);
    for (const auto& e : r->commit.events) {
      auto valid = catalog_->validate_event(e.value);
      EXPECT_TRUE(valid) << (valid ? "" : valid.error().message) << "\n" << e.value;
      rapidjson::Document envelope;
      envelope.Parse(e.value.c_str());
      data.CopyFrom(envelope["data"], data.GetAllocator());
      if (text != nullptr) *text = e.value;
    }
    return data;
  }

  static std::map<std::string, std::string> statuses(const rapidjson::Document& data) {
    std::map<std::string, std::string> out;
    for (const auto& d : data["domains"].GetArray())
      out[d["category"].GetString()] = d["status"].GetString();
    return out;
  }

  metrics::Registry registry_;
  std::unique_ptr<mapping::ScreeningMapper> mapper_;
  std::unique_ptr<events::SchemaCatalog> catalog_;
  IngestContext ctx_;
};

// SDOHCC-QuestionnaireResponseHungerVitalSignExample: both questions Often true, At risk.
TEST_F(IgExample, HungerVitalSignIsFoodInsecurityPositive) {
  auto data = screening("SDOHCC-QuestionnaireResponseHungerVitalSignExample.json");
  ASSERT_TRUE(data.IsObject());
  EXPECT_STREQ(data["instrument"]["id"].GetString(), "hunger-vital-sign");
  EXPECT_EQ(statuses(data), (std::map<std::string, std::string>{{"food-insecurity", "positive"}}));
  EXPECT_EQ(data["domains"][0]["items"].Size(), 3u);
  EXPECT_EQ(data["unmapped"].Size(), 0u);
  EXPECT_EQ(data["unanswered"].Size(), 0u);
  EXPECT_TRUE(data["domains"][0]["assistanceRequested"].IsNull()) << "HVS has no help question";
}

// SDOHCC-QuestionnaireResponsePRAPAREExample: nested groups, linkIds "/93042-0/71802-3"; the
// family has no housing, declines the housing-worry question, lacks clothing and child care.
TEST_F(IgExample, PrapareMapsEveryCategorisedAnswerAndKeepsTheRestUnmapped) {
  std::string text;
  auto data = screening("SDOHCC-QuestionnaireResponsePRAPAREExample.json", &text);
  ASSERT_TRUE(data.IsObject());
  EXPECT_STREQ(data["instrument"]["id"].GetString(), "prapare");
  EXPECT_EQ(statuses(data), (std::map<std::string, std::string>{
                                {"homelessness", "positive"},
                                {"housing-instability", "declined"},
                                {"educational-attainment", "positive"},
                                {"employment-status", "positive"},
                                {"health-insurance-coverage-status", "negative"},
                                {"material-hardship", "positive"},
                                {"transportation-insecurity", "positive"},
                                {"social-connection", "positive"},
                                {"stress", "negative"},
                                {"incarceration-status", "negative"},
                                {"intimate-partner-violence", "positive"},
                            }));
  // Ethnicity, race, farm work, veteran, language, household size, address, income, refugee.
  EXPECT_EQ(data["unmapped"].Size(), 9u);
  EXPECT_EQ(data["unanswered"].Size(), 0u) << "group items are not questions";
  EXPECT_EQ(text.find("Broadway"), std::string::npos) << "the address is free text";
}

}  // namespace
}  // namespace sdoh::fhir
