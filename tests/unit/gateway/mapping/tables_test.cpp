#include "gateway/mapping/tables.hpp"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::mapping {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kTables = fs::path(SDOH_SOURCE_DIR) / "schemas" / "mappings";

TEST(MappingTables, ShippedTablesLoad) {
  auto tables = MappingTables::load(kTables);
  ASSERT_TRUE(tables) << tables.error().message;
  EXPECT_NE((*tables)->by_id("hunger-vital-sign"), nullptr);
  EXPECT_NE((*tables)->by_id("ahc-hrsn"), nullptr);
  EXPECT_NE((*tables)->by_id("prapare"), nullptr);
  EXPECT_TRUE((*tables)->known_category("food-insecurity"));
  EXPECT_FALSE((*tables)->known_category("food"));
  EXPECT_EQ((*tables)->category_system(),
            "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes");
}

TEST(MappingTables, FindsInstrumentsByPanelQuestionnaireAndItem) {
  auto tables = *MappingTables::load(kTables);
  EXPECT_EQ(tables->by_panel("http://loinc.org", "88121-9")->id, "hunger-vital-sign");
  EXPECT_EQ(tables->by_panel("http://loinc.org", "96777-8")->id, "ahc-hrsn");
  EXPECT_EQ(tables
                ->by_questionnaire("http://hl7.org/fhir/us/sdoh-clinicalcare/Questionnaire/"
                                   "SDOHCC-QuestionnaireHungerVitalSign|1.0.0")
                ->id,
            "hunger-vital-sign");
  EXPECT_NE(tables->by_item("http://loinc.org", "71802-3"), nullptr);
  EXPECT_EQ(tables->by_panel("http://loinc.org", "00000-0"), nullptr);
}

// A scratch mapping directory: the shipped categories and schema, plus instruments a test writes.
class ScratchTables : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sdoh_tables_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "instruments");
    fs::copy_file(kTables / "categories.json", dir_ / "categories.json");
    fs::copy_file(kTables / "instrument.schema.json", dir_ / "instrument.schema.json");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& json) {
    std::ofstream(dir_ / "instruments" / name) << json;
  }

  Error load_error() {
    auto tables = MappingTables::load(dir_);
    EXPECT_FALSE(tables) << "expected the tables to be refused";
    return tables ? Error{} : tables.error();
  }

  // A small valid instrument; `patch` replaces a marker to make it invalid in one way.
  static std::string instrument(const std::string& id = "local-food",
                                const std::string& category = "food-insecurity",
                                const std::string& extra_item = "",
                                const std::string& assistance_item = "LOCAL-2") {
    return R"({
      "id": ")" +
           id + R"(",
      "title": "Local food screen",
      "version": "1",
      "sources": ["test"],
      "panel": {"system": "http://example.org/local", "code": "LOCAL-PANEL-)" +
           id + R"(", "display": "Local food screen"},
      "questionnaires": ["http://example.org/Questionnaire/)" +
           id + R"("],
      "items": [
        {"source": "unit test", "system": "http://example.org/local", "code": "LOCAL-1", "display": "Skipped meals?", "linkIds": ["q1"],
         "category": ")" +
           category + R"(", "answerType": "coding",
         "answers": [{"code": "Y", "display": "Yes", "result": "positive"},
                     {"code": "N", "display": "No", "result": "negative"}]},
        {"source": "unit test", "system": "http://example.org/local", "code": "LOCAL-2", "display": "Want help?", "linkIds": ["q2"],
         "category": "food-insecurity", "answerType": "coding", "role": "assistance",
         "answers": [{"code": "Y", "display": "Yes", "result": "unknown"},
                     {"code": "N", "display": "No", "result": "unknown"}]})" +
           extra_item + R"(
      ],
      "domains": [{"category": "food-insecurity", "rule": "any-positive"}],
      "assistance": [{"item": ")" +
           assistance_item + R"(", "categories": "all-positive",
                      "answers": [{"code": "Y", "display": "Yes", "requested": true},
                                  {"code": "N", "display": "No", "requested": false}]}]
    })";
  }

  fs::path dir_;
};

TEST_F(ScratchTables, AnInstrumentAddedAsADataFileIsFound) {
  write("local-food.json", instrument());
  auto tables = MappingTables::load(dir_);
  ASSERT_TRUE(tables) << tables.error().message;
  const auto* ins = (*tables)->by_panel("http://example.org/local", "LOCAL-PANEL-local-food");
  ASSERT_NE(ins, nullptr);
  EXPECT_EQ(ins->id, "local-food");
  EXPECT_EQ(ins->item_by_link_id("q1")->code, "LOCAL-1");
  EXPECT_TRUE(ins->item("", "LOCAL-2")->assistance);
}

TEST_F(ScratchTables, UnknownCategoryNamesFileAndPath) {
  write("bad.json", instrument("local-food", "food"));
  auto e = load_error();
  EXPECT_THAT(e.message, HasSubstr("bad.json: /items/0/category: unknown category \"food\""));
  EXPECT_EQ(e.kind, ErrorKind::kConfig);
}

TEST_F(ScratchTables, DuplicateItemCodeIsRefused) {
  write(
      "dup.json",
      instrument(
          "local-food", "food-insecurity",
          R"(, {"source": "unit test", "system": "http://example.org/local", "code": "LOCAL-1", "display": "Again",
                                    "category": "food-insecurity", "answerType": "coding",
                                    "answers": [{"code": "Y", "display": "Yes", "result": "positive"}]})"));
  EXPECT_THAT(load_error().message,
              HasSubstr("dup.json: /items/2/code: duplicate item code LOCAL-1"));
}

TEST_F(ScratchTables, AssistanceRuleNamingAMissingItemIsRefused) {
  write("missing.json", instrument("local-food", "food-insecurity", "", "LOCAL-9"));
  EXPECT_THAT(
      load_error().message,
      HasSubstr("missing.json: /assistance/0/item: names item LOCAL-9, which is not in items"));
}

TEST_F(ScratchTables, DuplicateInstrumentIdAcrossFilesIsRefused) {
  write("a.json", instrument("local-food"));
  auto second = instrument("local-food");
  second.replace(second.find("LOCAL-PANEL-local-food"), 22, "LOCAL-PANEL-other-one1");
  second.replace(second.find("Questionnaire/local-food"), 24, "Questionnaire/other-one1");
  write("b.json", second);
  EXPECT_THAT(load_error().message,
              HasSubstr("b.json: /id: duplicate instrument id \"local-food\""));
}

TEST_F(ScratchTables, SchemaViolationNamesThePointer) {
  auto text = instrument();
  text.replace(text.find("\"result\": \"positive\""), 20, "\"result\": \"maybe\"   ");
  write("schema.json", text);
  auto e = load_error();
  EXPECT_THAT(
      e.message,
      HasSubstr("schema.json: /items/0/answers/0/result: does not match instrument.schema.json"));
}

TEST_F(ScratchTables, AnItemThatCitesNoSourceIsRefused) {
  auto text = instrument();
  const std::string cited = R"("source": "unit test", )";
  text.erase(text.find(cited), cited.size());
  write("uncited.json", text);
  auto e = load_error();
  EXPECT_THAT(e.message, HasSubstr("uncited.json: /items/0"));
  EXPECT_THAT(e.message, HasSubstr("required"));
}

TEST_F(ScratchTables, AnAnswerMayCiteItsOwnSource) {
  auto text = instrument();
  const std::string from = R"({"code": "N", "display": "No", "result": "negative"})";
  text.replace(text.find(from), from.size(),
               R"({"code": "N", "display": "No", "result": "negative", "source": "a manual"})");
  write("cited.json", text);
  auto tables = MappingTables::load(dir_);
  ASSERT_TRUE(tables) << tables.error().message;
  const auto* item = (*tables)->by_id("local-food")->item("", "LOCAL-1");
  EXPECT_EQ(item->source, "unit test");
  EXPECT_EQ(item->answer("N")->source, "a manual");
}

TEST_F(ScratchTables, InvalidJsonNamesTheFile) {
  write("broken.json", "{ \"id\": ");
  EXPECT_THAT(load_error().message, HasSubstr("broken.json: not valid JSON"));
}

TEST_F(ScratchTables, DomainRuleForACategoryNoItemProducesIsRefused) {
  auto text = instrument();
  const std::string from = R"("domains": [{"category": "food-insecurity")";
  text.replace(text.find(from), from.size(), R"("domains": [{"category": "housing-instability")");
  write("domain.json", text);
  EXPECT_THAT(
      load_error().message,
      HasSubstr("/domains/0/category: no item of this instrument maps to housing-instability"));
}

TEST_F(ScratchTables, NoInstrumentsIsAnError) {
  EXPECT_THAT(load_error().message, HasSubstr("no instrument files"));
}

}  // namespace
}  // namespace sdoh::mapping
