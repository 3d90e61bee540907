// gateway/mapping/zip_county.cpp: the shipped Census crosswalk places a ZIP in its county (the one
// holding most of its land when it spans several), and says how; the loader refuses bad rows
// naming the file, the line and the reason.
#include "gateway/mapping/zip_county.hpp"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::mapping {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kSchemas = fs::path(SDOH_SOURCE_DIR) / "schemas";

// ---------------------------------------------------------------------------------------------
// The shipped crosswalk (Census 2020 ZCTA-to-county relationship file)

class ShippedCrosswalk : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = ZipCountyCrosswalk::load(kSchemas / "geo" / "zcta-county.csv");
    ASSERT_TRUE(loaded) << loaded.error().message;
    crosswalk_ = *loaded;
  }
  static std::shared_ptr<const ZipCountyCrosswalk> crosswalk_;
};
std::shared_ptr<const ZipCountyCrosswalk> ShippedCrosswalk::crosswalk_;

TEST_F(ShippedCrosswalk, ListsEveryZctaOf2020) {
  // The 2020 Census has 33,791 ZCTAs (50 states, DC and Puerto Rico).
  EXPECT_EQ(crosswalk_->size(), 33791u);
}

TEST_F(ShippedCrosswalk, AZipInOneCountyIsThatCounty) {
  auto c = crosswalk_->county("27514");  // Chapel Hill: Orange County NC only
  ASSERT_TRUE(c);
  EXPECT_EQ(c->county_fips, "37135");
  EXPECT_TRUE(c->sole());
  EXPECT_DOUBLE_EQ(c->land_share, 1.0);
  EXPECT_EQ(crosswalk_->county("27701")->county_fips, "37063");  // downtown Durham
}

TEST_F(ShippedCrosswalk, AZipSpanningCountiesIsTheOneWithMostOfItsLand) {
  auto c = crosswalk_->county("27516");  // Chapel Hill/Carrboro: 83% Orange, 17% Chatham
  ASSERT_TRUE(c);
  EXPECT_EQ(c->county_fips, "37135");
  EXPECT_FALSE(c->sole());
  EXPECT_EQ(c->counties, 2);
  EXPECT_DOUBLE_EQ(c->land_share, 0.8348);
  // 27517 lies in Chatham (58%), Orange (23%) and Durham (19%) counties.
  auto three = crosswalk_->county("27517");
  ASSERT_TRUE(three);
  EXPECT_EQ(three->county_fips, "37037");
  EXPECT_EQ(three->counties, 3);
}

TEST_F(ShippedCrosswalk, AZipWithoutAZctaIsUnknown) {
  EXPECT_EQ(crosswalk_->county("27702"), std::nullopt);  // Durham PO boxes: no ZCTA
  EXPECT_EQ(crosswalk_->county("00000"), std::nullopt);
}

TEST_F(ShippedCrosswalk, ZipPlusFourIsTheZip) {
  EXPECT_EQ(crosswalk_->county("27516-1234")->county_fips, "37135");
  EXPECT_EQ(crosswalk_->county("275161234")->county_fips, "37135");
}

TEST_F(ShippedCrosswalk, AnythingButAZipOrZipPlusFourIsUnknown) {
  for (const char* bad : {"", "2751", "275161", "27516-12", "27516 1234", "2751A", "K1A 0B1"})
    EXPECT_EQ(crosswalk_->county(bad), std::nullopt) << bad;
}

// ---------------------------------------------------------------------------------------------
// The county routing uses

TEST_F(ShippedCrosswalk, TheSendersCountyWinsOverTheZip) {
  auto c = family_county("37063", "27516", crosswalk_.get());
  EXPECT_EQ(c.county_fips, "37063");
  EXPECT_EQ(c.basis, CountyBasis::kAddress);
}

TEST_F(ShippedCrosswalk, WithoutACountyTheZipGivesIt) {
  auto sole = family_county("", "27514", crosswalk_.get());
  EXPECT_EQ(sole.county_fips, "37135");
  EXPECT_EQ(sole.basis, CountyBasis::kZipSole);
  auto spanning = family_county("", "27516-0001", crosswalk_.get());
  EXPECT_EQ(spanning.county_fips, "37135");
  EXPECT_EQ(spanning.basis, CountyBasis::kZipLargestShare);
}

TEST_F(ShippedCrosswalk, ACountyNotOfFiveDigitsIsNoCounty) {
  // A 3-digit county without its state names no county; the ZIP decides.
  auto c = family_county("063", "27514", crosswalk_.get());
  EXPECT_EQ(c.county_fips, "37135");
  EXPECT_EQ(c.basis, CountyBasis::kZipSole);
}

TEST_F(ShippedCrosswalk, NoCountyWhenNeitherGivesOne) {
  auto unknown = family_county("", "27702", crosswalk_.get());
  EXPECT_EQ(unknown.county_fips, "");
  EXPECT_EQ(unknown.basis, CountyBasis::kNone);
  auto no_crosswalk = family_county("", "27514", nullptr);
  EXPECT_EQ(no_crosswalk.county_fips, "");
  EXPECT_EQ(no_crosswalk.basis, CountyBasis::kNone);
}

TEST(CountyBasis, NamesAsTheEventSchemaSpellsThem) {
  EXPECT_EQ(to_string(CountyBasis::kNone), "none");
  EXPECT_EQ(to_string(CountyBasis::kAddress), "address");
  EXPECT_EQ(to_string(CountyBasis::kZipSole), "zip-sole");
  EXPECT_EQ(to_string(CountyBasis::kZipLargestShare), "zip-largest-share");
}

// ---------------------------------------------------------------------------------------------
// Scratch crosswalk files

class ScratchCrosswalk : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = fs::temp_directory_path() /
            ("sdoh_zcta_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".csv");
  }
  void TearDown() override { fs::remove(file_); }

  void write(const std::string& text) { std::ofstream(file_, std::ios::binary) << text; }
  // The refusal's message, or "(loaded)".
  std::string refusal(const std::string& text) {
    write(text);
    auto r = ZipCountyCrosswalk::load(file_);
    return r ? std::string("(loaded)") : r.error().message;
  }

  fs::path file_;
};

TEST_F(ScratchCrosswalk, OfEqualSharesTheFirstListedWins) {
  write("zcta,county_fips,land_share\r\n10001,36061,0.5\r\n10001,36047,0.5\r\n");
  auto r = ZipCountyCrosswalk::load(file_);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)->county("10001")->county_fips, "36061");
}

TEST_F(ScratchCrosswalk, AHeaderAloneKnowsNoZip) {
  write("zcta,county_fips,land_share\n");
  auto r = ZipCountyCrosswalk::load(file_);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)->size(), 0u);
  EXPECT_EQ((*r)->county("27514"), std::nullopt);
}

TEST_F(ScratchCrosswalk, RefusesAMissingFile) {
  auto r = ZipCountyCrosswalk::load(file_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(r.error().message, HasSubstr(file_.string() + ": cannot read the file"));
}

TEST_F(ScratchCrosswalk, RefusesAnotherHeader) {
  EXPECT_THAT(refusal("zcta|county|share\n27514|37135|1\n"),
              HasSubstr(".csv: line 1: the first line must be the header "
                        "\"zcta,county_fips,land_share\""));
  EXPECT_THAT(refusal(""), HasSubstr("the file is empty"));
}

TEST_F(ScratchCrosswalk, RefusesARowWithoutThreeFields) {
  EXPECT_THAT(refusal("zcta,county_fips,land_share\n27514,37135,1\n27516,37135\n"),
              HasSubstr(": line 3: expected 3 fields (zcta,county_fips,land_share), found 2"));
}

TEST_F(ScratchCrosswalk, RefusesAZctaOrCountyNotOfFiveDigits) {
  EXPECT_THAT(refusal("zcta,county_fips,land_share\n2751,37135,1\n"),
              HasSubstr(": line 2: zcta \"2751\" is not a 5-digit ZIP code area"));
  EXPECT_THAT(refusal("zcta,county_fips,land_share\n27514,135,1\n"),
              HasSubstr(": line 2: county_fips \"135\" is not a 5-digit county FIPS code"));
}

TEST_F(ScratchCrosswalk, RefusesAShareOutsideZeroToOne) {
  for (const char* bad : {"1.2", "-0.1", "half", "", "0.5x", "nan"}) {
    EXPECT_THAT(
        refusal(std::string("zcta,county_fips,land_share\n27514,37135,") + bad + "\n"),
        HasSubstr(": line 2: land_share \"" + std::string(bad) + "\" is not a number from 0 to 1"))
        << bad;
  }
}

TEST_F(ScratchCrosswalk, RefusesACountyListedTwiceForOneZcta) {
  EXPECT_THAT(refusal("zcta,county_fips,land_share\n27516,37135,0.5\n27516,37135,0.5\n"),
              HasSubstr(": line 3: county 37135 is listed twice for zcta 27516"));
}

TEST_F(ScratchCrosswalk, RefusesSharesThatDoNotAddUpToOne) {
  EXPECT_THAT(refusal("zcta,county_fips,land_share\n27514,37135,1\n00601,72001,0.6\n"
                      "00601,72141,0.2\n"),
              HasSubstr(": line 3: the land shares of zcta 00601 add up to 0.8"));
}

}  // namespace
}  // namespace sdoh::mapping
