// gateway/mapping/routing.cpp: the shipped routing data loads and routes as documented; the most
// specific route wins; the loader refuses bad data naming file, JSON path and reason.
#include "gateway/mapping/routing.hpp"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gateway/mapping/tables.hpp"

namespace sdoh::mapping {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const fs::path kSchemas = fs::path(SDOH_SOURCE_DIR) / "schemas";

const MappingTables& tables() {
  static const auto loaded = *MappingTables::load(kSchemas / "mappings");
  return *loaded;
}

std::string agency_of(const RoutingTable& t, std::string_view category, std::string_view zip3,
                      std::string_view county, std::optional<int> age) {
  auto m = t.route(category, zip3, county, age);
  return m ? m->agency->id : std::string("(held)");
}

// ---------------------------------------------------------------------------------------------
// The shipped example

class ShippedRouting : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = RoutingTable::load(kSchemas / "routing", tables());
    ASSERT_TRUE(loaded) << loaded.error().message;
    table_ = *loaded;
  }
  static std::shared_ptr<const RoutingTable> table_;
};
std::shared_ptr<const RoutingTable> ShippedRouting::table_;

TEST_F(ShippedRouting, IsMarkedAsAnExample) {
  ASSERT_NE(table_, nullptr);
  EXPECT_TRUE(table_->example());
}

TEST_F(ShippedRouting, LoadsItsAgencies) {
  ASSERT_NE(table_, nullptr);
  EXPECT_EQ(table_->agencies().size(), 8u);
  const auto* ehv = table_->agency("ehv-durham");
  ASSERT_NE(ehv, nullptr);
  EXPECT_EQ(ehv->name, "Early Start Home Visiting");
  EXPECT_EQ(ehv->kind, "home-visiting");
  EXPECT_EQ(ehv->sla, std::chrono::milliseconds(72h));
  EXPECT_EQ(ehv->owner, "Organization/ehv-durham");
  EXPECT_EQ(ehv->topic_or("sdoh.referral.v1"), "sdoh.referral.v1");
  const auto* legal = table_->agency("legal-aid-triangle");
  ASSERT_NE(legal, nullptr);
  EXPECT_EQ(legal->topic_or("sdoh.referral.v1"), "sdoh.referral.legal-aid-triangle");
  EXPECT_EQ(table_->agency("wic-durham")->sla_or(72h), std::chrono::days(3));
  EXPECT_EQ(table_->agency("nobody"), nullptr);
}

TEST_F(ShippedRouting, FoodForAToddlerGoesToTheCountysWic) {
  auto m = table_->route("food-insecurity", "277", "37063", 10);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->agency->id, "wic-durham");
  EXPECT_EQ(m->area, AreaLevel::kCounty);
  EXPECT_EQ(m->route->pointer, "/routes/0");
  EXPECT_EQ(agency_of(*table_, "food-insecurity", "277", "37135", 10), "wic-orange");
}

TEST_F(ShippedRouting, AnUnknownCountyFallsBackToTheZip3) {
  auto m = table_->route("food-insecurity", "277", "", 10);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->agency->id, "wic-durham");
  EXPECT_EQ(m->area, AreaLevel::kZip3);
}

TEST_F(ShippedRouting, FoodForAnOlderChildOrAnUnknownAgeGoesToTheFoodBank) {
  EXPECT_EQ(agency_of(*table_, "food-insecurity", "277", "37063", 60), "triangle-food-bank");
  EXPECT_EQ(agency_of(*table_, "food-insecurity", "277", "37063", std::nullopt),
            "triangle-food-bank");
  EXPECT_EQ(agency_of(*table_, "food-insecurity", "276", "", 10), "triangle-food-bank");
}

TEST_F(ShippedRouting, EarlyInterventionBeforeTheThirdBirthdayThenHeadStart) {
  EXPECT_EQ(agency_of(*table_, "educational-attainment", "277", "37063", 0), "ei-durham");
  EXPECT_EQ(agency_of(*table_, "educational-attainment", "277", "37063", 35), "ei-durham");
  EXPECT_EQ(agency_of(*table_, "educational-attainment", "277", "37063", 36), "headstart-durham");
  EXPECT_EQ(agency_of(*table_, "educational-attainment", "277", "37063", 59), "headstart-durham");
  EXPECT_EQ(agency_of(*table_, "educational-attainment", "277", "37063", 60), "(held)");
}

TEST_F(ShippedRouting, HousingGoesToLegalAidAnywhere) {
  auto m = table_->route("homelessness", "999", "", std::nullopt);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->agency->id, "legal-aid-triangle");
  EXPECT_EQ(m->area, AreaLevel::kAnywhere);
  EXPECT_EQ(agency_of(*table_, "utility-insecurity", "", "", std::nullopt), "legal-aid-triangle");
}

TEST_F(ShippedRouting, ANeedNoAgencyServesIsHeld) {
  EXPECT_EQ(table_->route("transportation-insecurity", "277", "37063", 10), std::nullopt);
  EXPECT_EQ(table_->route("stress", "277", "37063", 40), std::nullopt);
  EXPECT_EQ(table_->route("food-insecurity", "100", "36061", 10), std::nullopt);
}

// A referral's keys: routing by county when the sender gives none (FHIR; HL7 without PID-11.9)
// takes the county from the ZIP through the shipped Census crosswalk.
class ShippedRoutingByZip : public ShippedRouting {
 protected:
  static void SetUpTestSuite() {
    ShippedRouting::SetUpTestSuite();
    auto loaded = ZipCountyCrosswalk::load(kSchemas / "geo" / "zcta-county.csv");
    ASSERT_TRUE(loaded) << loaded.error().message;
    crosswalk_ = *loaded;
  }
  static std::optional<RouteChoice> choose(std::string zip, std::string county, int age) {
    RoutingKeys keys{zip.substr(0, 3), zip, county, age};
    return table_->choose("food-insecurity", keys, crosswalk_.get());
  }
  static std::shared_ptr<const ZipCountyCrosswalk> crosswalk_;
};
std::shared_ptr<const ZipCountyCrosswalk> ShippedRoutingByZip::crosswalk_;

TEST_F(ShippedRoutingByZip, AZipInOneCountyRoutesByThatCounty) {
  // Chapel Hill, Orange County only; by its ZIP3 (275) alone it would go to the food bank.
  auto c = choose("27514", "", 10);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->agency_id, "wic-orange");
  EXPECT_EQ(c->agency_name, "Orange County WIC");
  EXPECT_EQ(c->basis, (RoutingBasis{AreaLevel::kCounty, CountyBasis::kZipSole}));
}

TEST_F(ShippedRoutingByZip, AZipSpanningCountiesRoutesByTheLargestShare) {
  auto c = choose("27516-4012", "", 10);  // 83% Orange, 17% Chatham
  ASSERT_TRUE(c);
  EXPECT_EQ(c->agency_id, "wic-orange");
  EXPECT_EQ(c->basis, (RoutingBasis{AreaLevel::kCounty, CountyBasis::kZipLargestShare}));
}

TEST_F(ShippedRoutingByZip, TheSendersCountyIsUsedAsGiven) {
  auto c = choose("27705", "37135", 10);  // 53% Durham, 47% Orange: the sender says Orange
  ASSERT_TRUE(c);
  EXPECT_EQ(c->agency_id, "wic-orange");
  EXPECT_EQ(c->basis, (RoutingBasis{AreaLevel::kCounty, CountyBasis::kAddress}));
}

TEST_F(ShippedRoutingByZip, AZipSpanningCountiesGoesToTheLargestEvenWhenCloseRun) {
  auto c = choose("27705", "", 10);  // 53% Durham, 47% Orange
  ASSERT_TRUE(c);
  EXPECT_EQ(c->agency_id, "wic-durham");
  EXPECT_EQ(c->basis, (RoutingBasis{AreaLevel::kCounty, CountyBasis::kZipLargestShare}));
}

TEST_F(ShippedRoutingByZip, ACountyNoRouteNamesFallsBackToTheZip3) {
  auto c = choose("27517", "", 10);  // mostly Chatham County, which no route names; ZIP3 275
  ASSERT_TRUE(c);
  EXPECT_EQ(c->agency_id, "triangle-food-bank");
  EXPECT_EQ(c->basis, (RoutingBasis{AreaLevel::kZip3, CountyBasis::kZipLargestShare}));
}

TEST_F(ShippedRoutingByZip, AZipWithoutAZctaRoutesByTheZip3) {
  auto c = choose("27702", "", 10);  // Durham PO boxes
  ASSERT_TRUE(c);
  EXPECT_EQ(c->agency_id, "wic-durham");
  EXPECT_EQ(c->basis, (RoutingBasis{AreaLevel::kZip3, CountyBasis::kNone}));
}

// ---------------------------------------------------------------------------------------------
// Scratch routing files

class ScratchRouting : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sdoh_routing_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy_file(kSchemas / "routing" / "routing.schema.json", dir_ / "routing.schema.json");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file with three agencies (a, b, c) and `routes` (a JSON array body).
  void write(const std::string& routes, const std::string& agencies = kAgencies) {
    std::ofstream(dir_ / "routing.json")
        << R"({"agencies": [)" << agencies << R"(], "routes": [)" << routes << "]}";
  }
  void write_raw(const std::string& text) { std::ofstream(dir_ / "routing.json") << text; }

  std::shared_ptr<const RoutingTable> load() {
    auto t = RoutingTable::load(dir_, tables());
    EXPECT_TRUE(t) << t.error().message;
    return t ? *t : nullptr;
  }
  Error load_error() {
    auto t = RoutingTable::load(dir_, tables());
    EXPECT_FALSE(t) << "expected the routing file to be refused";
    return t ? Error{} : t.error();
  }

  static constexpr const char* kAgencies =
      R"({"id": "a", "name": "A", "kind": "food-bank", "sla": "2d"},
         {"id": "b", "name": "B", "kind": "wic", "sla": "72h"},
         {"id": "c", "name": "C", "kind": "other", "sla": "90m"})";

  fs::path dir_;
};

TEST_F(ScratchRouting, AFileWithoutTheExampleFlagIsNoExample) {
  write(R"({"category": "food-insecurity", "area": "*", "agency": "a"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_FALSE(t->example());
}

TEST_F(ScratchRouting, LoadsARoutingFileFromAnyPathWithTheSchemaBesideTheSchemas) {
  const auto mounted = dir_ / "mounted-routing.json";
  std::ofstream(mounted)
      << R"({"example": false, "agencies": [)" << kAgencies
      << R"(], "routes": [{"category": "food-insecurity", "area": "*", "agency": "b"}]})";
  auto t = RoutingTable::load_file(mounted, kSchemas / "routing" / "routing.schema.json", tables());
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_FALSE((*t)->example());
  EXPECT_EQ(agency_of(**t, "food-insecurity", "277", "", 5), "b");
}

TEST_F(ScratchRouting, ANonBooleanExampleFlagIsRefusedNamingIt) {
  write_raw(R"({"example": "yes", "agencies": [)" + std::string(kAgencies) + R"(], "routes": []})");
  EXPECT_THAT(load_error().message, HasSubstr("routing.json: /example"));
}

TEST_F(ScratchRouting, CountyBeatsZip3BeatsAnywhere) {
  write(R"({"category": "food-insecurity", "area": "*", "agency": "a"},
           {"category": "food-insecurity", "area": {"zip3": ["277"]}, "agency": "b"},
           {"category": "food-insecurity", "area": {"county": ["37063"]}, "agency": "c"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "37063", 5), "c");
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "37135", 5), "b");
  EXPECT_EQ(agency_of(*t, "food-insecurity", "", "37063", 5), "c");
  EXPECT_EQ(agency_of(*t, "food-insecurity", "100", "", 5), "a");
}

TEST_F(ScratchRouting, AnAgeBandBeatsNoneInTheSameArea) {
  write(R"({"category": "food-insecurity", "area": {"zip3": ["277"]}, "agency": "a"},
           {"category": "food-insecurity", "area": {"zip3": ["277"]}, "ageMonths": {"max": 59}, "agency": "b"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "", 59), "b");
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "", 60), "a");
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "", std::nullopt), "a");
}

TEST_F(ScratchRouting, TheNarrowerAgeBandWins) {
  write(
      R"({"category": "food-insecurity", "area": {"zip3": ["277"]}, "ageMonths": {"min": 0, "max": 59}, "agency": "a"},
           {"category": "food-insecurity", "area": {"zip3": ["277"]}, "ageMonths": {"min": 0, "max": 35}, "agency": "b"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "", 35), "b");
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "", 36), "a");
}

TEST_F(ScratchRouting, TheAreaCountsBeforeTheAge) {
  write(R"({"category": "food-insecurity", "area": {"county": ["37063"]}, "agency": "a"},
           {"category": "food-insecurity", "area": {"zip3": ["277"]}, "ageMonths": {"max": 59}, "agency": "b"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "37063", 10), "a");
  EXPECT_EQ(agency_of(*t, "food-insecurity", "277", "", 10), "b");
}

TEST_F(ScratchRouting, AgeBandEndsAreInclusiveAndAnUnknownAgeMatchesNoBand) {
  write(R"({"category": "stress", "area": "*", "ageMonths": {"min": 12, "max": 23}, "agency": "a"},
           {"category": "stress", "area": "*", "ageMonths": {"min": 60}, "agency": "b"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(agency_of(*t, "stress", "", "", 11), "(held)");
  EXPECT_EQ(agency_of(*t, "stress", "", "", 12), "a");
  EXPECT_EQ(agency_of(*t, "stress", "", "", 23), "a");
  EXPECT_EQ(agency_of(*t, "stress", "", "", 24), "(held)");
  EXPECT_EQ(agency_of(*t, "stress", "", "", 60), "b");
  EXPECT_EQ(agency_of(*t, "stress", "", "", 500), "b");
  EXPECT_EQ(agency_of(*t, "stress", "", "", std::nullopt), "(held)");
}

TEST_F(ScratchRouting, ARouteForSeveralCategoriesIsOneRouteEach) {
  write(R"({"category": ["homelessness", "housing-instability"], "area": "*", "agency": "a"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->routes().size(), 2u);
  EXPECT_EQ(t->routes()[1].category, "housing-instability");
  EXPECT_EQ(t->routes()[1].pointer, "/routes/0");
  EXPECT_EQ(agency_of(*t, "homelessness", "", "", std::nullopt), "a");
  EXPECT_EQ(agency_of(*t, "food-insecurity", "", "", std::nullopt), "(held)");
}

TEST_F(ScratchRouting, NoRoutesAtAllHoldsEveryReferral) {
  write("");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->route("food-insecurity", "277", "37063", 1), std::nullopt);
}

TEST_F(ScratchRouting, DisjointBandsOfTheSameWidthInOneAreaAreFine) {
  write(
      R"({"category": "stress", "area": {"zip3": ["277"]}, "ageMonths": {"min": 0, "max": 11}, "agency": "a"},
           {"category": "stress", "area": {"zip3": ["277"]}, "ageMonths": {"min": 12, "max": 23}, "agency": "b"})");
  EXPECT_NE(load(), nullptr);
}

TEST_F(ScratchRouting, AnAgencyWithoutAnSlaHasTheGatewaysDefault) {
  write("", R"({"id": "x", "name": "X", "kind": "food-bank"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->agency("x")->sla, std::nullopt);
  EXPECT_EQ(t->agency("x")->sla_or(72h), std::chrono::milliseconds(72h));
  EXPECT_EQ(t->agency("x")->owner, "Organization/x");
  EXPECT_EQ(t->agency("x")->topic_or("sdoh.referral.v1"), "sdoh.referral.v1");
}

TEST_F(ScratchRouting, AnAgencysOwnerAndTopicAreRead) {
  write("", R"({"id": "x", "name": "X", "kind": "legal-aid", "sla": "3d",
               "topic": "sdoh.referral.x", "owner": "Organization/X"})");
  auto t = load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->agency("x")->owner, "Organization/X");
  EXPECT_EQ(t->agency("x")->topic, "sdoh.referral.x");
}

// Loader errors: each names the file, the JSON path and the reason.

TEST_F(ScratchRouting, UnknownCategory) {
  write(R"({"category": "food", "area": "*", "agency": "a"})");
  auto e = load_error();
  EXPECT_EQ(e.kind, ErrorKind::kConfig);
  EXPECT_THAT(e.message, HasSubstr("routing.json: /routes/0/category: unknown category \"food\" "
                                   "(not in schemas/mappings/categories.json)"));
  EXPECT_THAT(e.where.expression, HasSubstr("routing.json#/routes/0/category"));
}

TEST_F(ScratchRouting, UnknownCategoryInAList) {
  write(R"({"category": ["stress"], "area": "*", "agency": "a"},
           {"category": ["homelessness", "housing"], "area": "*", "agency": "a"})");
  EXPECT_THAT(load_error().message,
              HasSubstr("routing.json: /routes/1/category/1: unknown category \"housing\""));
}

TEST_F(ScratchRouting, UnknownAgency) {
  write(R"({"category": "stress", "area": "*", "agency": "z"})");
  EXPECT_THAT(load_error().message,
              HasSubstr("routing.json: /routes/0/agency: unknown agency \"z\" (not in /agencies)"));
}

TEST_F(ScratchRouting, DuplicateAgencyId) {
  write("", std::string(kAgencies) + R"(, {"id": "b", "name": "B2", "kind": "wic", "sla": "1d"})");
  EXPECT_THAT(
      load_error().message,
      HasSubstr("routing.json: /agencies/3/id: duplicate agency id \"b\", also /agencies/1"));
}

TEST_F(ScratchRouting, BadSlaFormat) {
  write("", R"({"id": "a", "name": "A", "kind": "wic", "sla": "3 days"})");
  auto e = load_error();
  EXPECT_THAT(e.message, HasSubstr("routing.json: /agencies/0/sla: does not match "
                                   "routing.schema.json (keyword \"pattern\""));
  EXPECT_THAT(e.message, HasSubstr("the value is \"3 days\""));
}

TEST_F(ScratchRouting, SlaLongerThanAYear) {
  write("", R"({"id": "a", "name": "A", "kind": "wic", "sla": "400d"})");
  EXPECT_THAT(load_error().message,
              HasSubstr("routing.json: /agencies/0/sla: bad SLA \"400d\": give minutes, hours or "
                        "days up to 365 days"));
}

TEST_F(ScratchRouting, OwnerMustNameTheAgency) {
  write("", R"({"id": "a", "name": "A", "kind": "wic", "sla": "1d", "owner": "Organization/b"})");
  EXPECT_THAT(load_error().message,
              HasSubstr("/agencies/0/owner: owner \"Organization/b\" must name the agency's id: "
                        "Organization/a"));
}

TEST_F(ScratchRouting, AnAgencyTopicMustNotBeAGatewayTopic) {
  write("", R"({"id": "a", "name": "A", "kind": "wic", "sla": "1d",
               "topic": "sdoh.referral-status.v1"})");
  EXPECT_THAT(load_error().message,
              HasSubstr("/agencies/0/topic: topic \"sdoh.referral-status.v1\" is one of the "
                        "gateway's own topics"));
}

TEST_F(ScratchRouting, UnknownKind) {
  write("", R"({"id": "a", "name": "A", "kind": "church", "sla": "1d"})");
  EXPECT_THAT(load_error().message, HasSubstr("/agencies/0/kind: does not match"));
}

TEST_F(ScratchRouting, AgeBandUpsideDown) {
  write(
      R"({"category": "stress", "area": "*", "ageMonths": {"min": 36, "max": 12}, "agency": "a"})");
  EXPECT_THAT(load_error().message,
              HasSubstr("routing.json: /routes/0/ageMonths: min 36 is above max 12"));
}

TEST_F(ScratchRouting, TheSameCountyTwiceForOneNeedAndAge) {
  write(R"({"category": "food-insecurity", "area": {"county": ["37063"]}, "agency": "a"},
           {"category": "stress", "area": {"county": ["37063"]}, "agency": "a"},
           {"category": "food-insecurity", "area": {"county": ["37135", "37063"]}, "agency": "b"})");
  auto e = load_error();
  EXPECT_THAT(e.message,
              HasSubstr("routing.json: /routes/2: overlaps /routes/0: both route food-insecurity "
                        "for county 37063, any age (to a and b) equally specifically"));
}

TEST_F(ScratchRouting, OverlappingBandsOfTheSameWidth) {
  write(
      R"({"category": "stress", "area": {"zip3": ["277"]}, "ageMonths": {"min": 0, "max": 23}, "agency": "a"},
           {"category": "stress", "area": {"zip3": ["277"]}, "ageMonths": {"min": 12, "max": 35}, "agency": "b"})");
  EXPECT_THAT(load_error().message,
              HasSubstr("/routes/1: overlaps /routes/0: both route stress for ZIP3 277, 0-23 "
                        "months and 12-35 months (to a and b)"));
}

TEST_F(ScratchRouting, TwoRoutesForAnywhere) {
  write(R"({"category": "stress", "area": "*", "agency": "a"},
           {"category": "stress", "area": "*", "agency": "a"})");
  EXPECT_THAT(load_error().message,
              HasSubstr("/routes/1: overlaps /routes/0: both route stress for area \"*\", any age "
                        "(both to a)"));
}

TEST_F(ScratchRouting, ASharedZip3TiesForAFamilyWhoseCountyIsUnknown) {
  write(R"({"category": "stress", "area": {"county": ["37063"], "zip3": ["277"]}, "agency": "a"},
           {"category": "stress", "area": {"county": ["37135"], "zip3": ["277"]}, "agency": "b"})");
  EXPECT_THAT(load_error().message, HasSubstr("/routes/1: overlaps /routes/0: both route stress "
                                              "for ZIP3 277"));
}

TEST_F(ScratchRouting, UnknownKeyIsRefusedBySchema) {
  write(R"({"category": "stress", "area": "*", "agency": "a", "priority": 1})");
  EXPECT_THAT(
      load_error().message,
      HasSubstr("routing.json: /routes/0/priority: does not match routing.schema.json (keyword "
                "\"additionalProperties\""));
}

TEST_F(ScratchRouting, BadCountyCode) {
  write(R"({"category": "stress", "area": {"county": ["3763"]}, "agency": "a"})");
  EXPECT_THAT(load_error().message, HasSubstr("routing.json: /routes/0/area"));
}

TEST_F(ScratchRouting, NotJson) {
  write_raw("{\"agencies\": [");
  EXPECT_THAT(load_error().message,
              HasSubstr("routing.json: not valid JSON: Invalid value. at byte offset 14"));
}

TEST_F(ScratchRouting, MissingFile) {
  EXPECT_THAT(load_error().message, HasSubstr("routing.json: cannot read the file"));
}

// ---------------------------------------------------------------------------------------------

TEST(Duration, MinutesHoursDays) {
  EXPECT_EQ(parse_duration("90m"), std::chrono::seconds(90min));
  EXPECT_EQ(parse_duration("72h"), std::chrono::seconds(72h));
  EXPECT_EQ(parse_duration("3d"), std::chrono::seconds(std::chrono::days(3)));
  for (auto bad : {"", "h", "0h", "-1h", "3", "3 d", "3w", "1.5h", "+3h", "72H"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
}

TEST(AreaLevel, Names) {
  EXPECT_EQ(to_string(AreaLevel::kAnywhere), "anywhere");
  EXPECT_EQ(to_string(AreaLevel::kZip3), "zip3");
  EXPECT_EQ(to_string(AreaLevel::kCounty), "county");
}

TEST_F(ScratchRouting, NestingPastTheDepthLimitIsAConfigErrorNotACrash) {
  write_raw(std::string(100'000, '['));
  EXPECT_THAT(load_error().message, HasSubstr("routing.json: not valid JSON: nested deeper than"));
}

}  // namespace
}  // namespace sdoh::mapping
