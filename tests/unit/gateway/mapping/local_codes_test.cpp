// A clinic's local need codes, translated by data files in schemas/mappings/local/: found by
// sender (or "*"), a null category for a code that names no need, and every mistake in a file
// refused with the file, JSON path and reason.
#include "gateway/mapping/local_codes.hpp"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gateway/mapping/tables.hpp"

namespace sdoh::mapping {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kTables = fs::path(SDOH_SOURCE_DIR) / "schemas" / "mappings";

TEST(LocalCodes, TheShippedExampleTranslatesTheSampleClinicsCodes) {
  auto tables = MappingTables::load(kTables);
  ASSERT_TRUE(tables) << tables.error().message;
  const auto& local = (*tables)->local_codes();
  auto ei = local.find("EHR^PEDS_CLINIC_A", "LOCAL", "EI");
  ASSERT_TRUE(ei);
  EXPECT_EQ(ei->category, "educational-attainment");
  EXPECT_EQ(ei->table, "example-peds-clinic-a");
  // A referral type every referral carries: known, and names no need.
  auto type = local.find("EHR^PEDS_CLINIC_A", "LOCAL", "SDOH");
  ASSERT_TRUE(type);
  EXPECT_TRUE(type->category.empty());
  // Another clinic's codes are its own: the table does not apply to it.
  EXPECT_FALSE(local.find("EHR^PEDS_CLINIC_B", "LOCAL", "EI"));
  // The system is part of the code.
  EXPECT_FALSE(local.find("EHR^PEDS_CLINIC_A", "L", "EI"));
}

class ScratchLocalCodes : public ::testing::Test {
 protected:
  ScratchLocalCodes() {
    dir_ = fs::temp_directory_path() /
           ("sdoh-local-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "instruments");
    fs::create_directories(dir_ / "local");
    for (const auto* f : {"categories.json", "instrument.schema.json", "local-codes.schema.json"})
      fs::copy_file(kTables / f, dir_ / f);
    fs::copy_file(kTables / "instruments" / "hunger-vital-sign.json",
                  dir_ / "instruments" / "hunger-vital-sign.json");
  }
  ~ScratchLocalCodes() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / "local" / name) << text;
  }
  static std::string table(const std::string& id, const std::string& senders,
                           const std::string& codes) {
    return R"({"id": ")" + id + R"(", "title": "t", "senders": )" + senders +
           R"(, "sources": ["test"], "codes": )" + codes + "}";
  }
  Error load_error() {
    auto tables = MappingTables::load(dir_);
    EXPECT_FALSE(tables) << "expected the tables to be refused";
    return tables ? Error{} : tables.error();
  }

  fs::path dir_;
};

TEST_F(ScratchLocalCodes, NoLocalTablesTranslateNothing) {
  fs::remove_all(dir_ / "local");
  auto tables = MappingTables::load(dir_);
  ASSERT_TRUE(tables) << tables.error().message;
  EXPECT_EQ((*tables)->local_codes().size(), 0u);
  EXPECT_FALSE((*tables)->local_codes().find("EHR^A", "LOCAL", "EI"));
}

TEST_F(ScratchLocalCodes, ATableForEverySenderAppliesToAnyOne) {
  write("network.json",
        table("network", R"(["*"])",
              R"([{"system": "99NET", "code": "FOOD", "category": "food-insecurity"}])"));
  write("clinic.json",
        table("clinic", R"(["EHR^A"])",
              R"([{"system": "99NET", "code": "FOOD", "category": "material-hardship"}])"));
  auto tables = MappingTables::load(dir_);
  ASSERT_TRUE(tables) << tables.error().message;
  // The sender's own table first, then the network's.
  EXPECT_EQ((*tables)->local_codes().find("EHR^A", "99NET", "FOOD")->category, "material-hardship");
  EXPECT_EQ((*tables)->local_codes().find("EHR^B", "99NET", "FOOD")->category, "food-insecurity");
}

TEST_F(ScratchLocalCodes, AnUnknownCategoryNamesFileAndPath) {
  write("bad.json", table("bad", R"(["EHR^A"])",
                          R"([{"system": "L", "code": "X", "category": null},
                              {"system": "L", "code": "EI", "category": "early-intervention"}])"));
  auto e = load_error();
  EXPECT_THAT(e.message,
              HasSubstr("bad.json: /codes/1/category: unknown category \"early-intervention\""));
  EXPECT_EQ(e.kind, ErrorKind::kConfig);
}

TEST_F(ScratchLocalCodes, ACodeTranslatedTwiceForOneSenderIsRefused) {
  write("a.json",
        table("a", R"(["EHR^A"])",
              R"([{"system": "L", "code": "EI", "category": "educational-attainment"}])"));
  write("b.json", table("b", R"(["EHR^A", "EHR^B"])",
                        R"([{"system": "L", "code": "EI", "category": "stress"}])"));
  auto e = load_error();
  EXPECT_THAT(e.message, HasSubstr("b.json: /codes/0/code: the code L|EI of sender EHR^A is "
                                   "already translated"));
}

TEST_F(ScratchLocalCodes, ATableMustMatchItsSchema) {
  write("nosenders.json", R"({"id": "x", "title": "t", "sources": ["s"],
                              "codes": [{"system": "L", "code": "EI", "category": null}]})");
  auto e = load_error();
  EXPECT_THAT(e.message, HasSubstr("nosenders.json"));
  EXPECT_THAT(e.message, HasSubstr("senders"));
}

}  // namespace
}  // namespace sdoh::mapping
