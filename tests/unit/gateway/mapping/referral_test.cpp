// The protocol-neutral referral rules: consent gates contact details and the note, the need
// comes from a category code or from answers through the screening engine, ids are stable.
#include "gateway/mapping/referral.hpp"

#include <filesystem>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "gateway/events/schema_catalog.hpp"
#include "gateway/referral/task_document.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::mapping {
namespace {

namespace fs = std::filesystem;
using test::kSchemas;

class ReferralMapperTest : public ::testing::Test {
 protected:
  ReferralMapperTest() {
    screenings_ = test::shipped_mapper(registry_);
    catalog_ = test::shipped_catalog();
  }

  static NormalizedReferral referral() {
    NormalizedReferral r;
    r.protocol = "fhir";
    r.sender = "fhir-client";
    r.message_id = "sr-1";
    r.clinic_number_system = "urn:clinic";
    r.clinic_number_value = "R-1";
    r.category = "food-insecurity";
    r.agency_id = "food-bank";
    r.requester_id = "Practitioner/1";
    r.authored_on = "2026-11-20";
    r.patient_authority = "urn:mrn";
    r.patient_identifier = "123";
    r.contact = ContactDetails{{"Doe", {"Jane"}}, "+19195550000", std::nullopt, std::nullopt, {}};
    r.note = "call after 5pm";
    return r;
  }

  rapidjson::Document data_of(const MappedReferral& m) {
    auto valid = catalog_->validate("urn:sdoh:schema:referral:v1", m.data);
    EXPECT_TRUE(valid) << (valid ? "" : valid.error().message) << "\n" << m.data;
    rapidjson::Document d;
    d.Parse(m.data.c_str());
    return d;
  }

  metrics::Registry registry_;
  std::unique_ptr<ScreeningMapper> screenings_;
  std::unique_ptr<events::SchemaCatalog> catalog_;
};

TEST_F(ReferralMapperTest, WithoutActiveConsentContactAndNoteAreDropped) {
  ReferralMapper mapper(*screenings_);
  auto m = mapper.map(referral());
  ASSERT_TRUE(m);
  auto d = data_of(*m);
  EXPECT_FALSE(d.HasMember("contact"));
  EXPECT_TRUE(d["note"].IsNull());
  EXPECT_FALSE(m->contact_included);
  EXPECT_EQ(m->data.find("Doe"), std::string::npos);
}

TEST_F(ReferralMapperTest, ActiveConsentCarriesContactAndNote) {
  auto r = referral();
  r.consent = {ConsentStatus::kActive, "fhir-consent", "2026-11-20"};
  auto m = ReferralMapper(*screenings_).map(r);
  ASSERT_TRUE(m);
  auto d = data_of(*m);
  EXPECT_STREQ(d["contact"]["name"]["family"].GetString(), "Doe");
  EXPECT_STREQ(d["contact"]["phone"].GetString(), "+19195550000");
  EXPECT_STREQ(d["note"].GetString(), "call after 5pm");
}

TEST_F(ReferralMapperTest, ANamedAgencyHasNoRouting) {
  auto m = ReferralMapper(*screenings_).map(referral());
  ASSERT_TRUE(m);
  EXPECT_FALSE(data_of(*m).HasMember("routing"));
}

TEST_F(ReferralMapperTest, ARoutedReferralSaysHowItWasRoutedButNotWhere) {
  auto r = referral();
  r.postal_code = "27516";
  r.county_fips = "37135";
  r.routed = RoutingBasis{AreaLevel::kCounty, CountyBasis::kAddress};
  auto m = ReferralMapper(*screenings_).map(r);
  ASSERT_TRUE(m);
  auto d = data_of(*m);
  ASSERT_TRUE(d.HasMember("routing"));
  EXPECT_STREQ(d["routing"]["area"].GetString(), "county");
  EXPECT_STREQ(d["routing"]["countyBasis"].GetString(), "address");
  EXPECT_EQ(m->data.find("37135"), std::string::npos);  // the county itself never leaves
  EXPECT_EQ(m->data.find("27516"), std::string::npos);
  EXPECT_STREQ(d["patient"]["zip3"].GetString(), "275");
}

TEST_F(ReferralMapperTest, APhoneTheSchemaWouldRefuseIsLeftOut) {
  auto r = referral();
  r.consent.status = ConsentStatus::kActive;
  r.consent.source = "clinic-policy";
  r.contact->phone = "call the neighbour";
  auto m = ReferralMapper(*screenings_).map(r);
  ASSERT_TRUE(m);
  auto d = data_of(*m);
  EXPECT_FALSE(d["contact"].HasMember("phone"));
}

TEST_F(ReferralMapperTest, TheMeasuresGetTheThreeDigitZipAreaNeverTheZip) {
  auto r = referral();
  r.postal_code = "27701-1234";
  EXPECT_EQ(ReferralMapper(*screenings_).identify(r)->zip3, "277");
  r.postal_code = "03601";  // an area of 20,000 people or fewer (HIPAA Safe Harbor)
  EXPECT_EQ(ReferralMapper(*screenings_).identify(r)->zip3, "000");
  r.postal_code = "";
  EXPECT_EQ(ReferralMapper(*screenings_).identify(r)->zip3, "");
}

TEST_F(ReferralMapperTest, ReferralIdDependsOnlyOnTheClinicsNumber) {
  auto a = referral();
  auto b = referral();
  b.message_id = "sr-2";
  b.sender = "other-client";
  EXPECT_EQ(ReferralMapper(*screenings_).map(a)->referral_id,
            ReferralMapper(*screenings_).map(b)->referral_id);
  EXPECT_EQ(screenings_->referral_id("urn:clinic", "R-1").size(), 32u);
  EXPECT_NE(screenings_->referral_id("urn:clinic", "R-1"),
            screenings_->referral_id("urn:clinic", "R-2"));
  EXPECT_EQ(ReferralMapper(*screenings_).map(a)->referral_id,
            screenings_->referral_id("urn:clinic", "R-1"));
}

TEST_F(ReferralMapperTest, ReferralIdsAreKeyedSoTheyCannotBeGuessedFromTheNumber) {
  const auto keyed = screenings_->referral_id("urn:clinic", "R-1");
  // Not the unkeyed hash of the number anyone could compute.
  EXPECT_NE(keyed, legacy_referral_id("urn:clinic", "R-1"));
  // Another key, another id.
  const identity::Pseudonymizer other("another-key");
  EXPECT_NE(other.referral_id("urn:clinic", "R-1"), keyed);
  EXPECT_EQ(identity::Pseudonymizer("k").referral_id("urn:clinic", "R-1"),
            identity::Pseudonymizer("k").referral_id("urn:clinic", "R-1"));
}

TEST_F(ReferralMapperTest, AReferralMadeBeforeKeyedIdsKeepsItsId) {
  const auto legacy = legacy_referral_id("urn:clinic", "R-1");
  screenings_->recognise_existing_referrals(
      [legacy](const std::string& id) { return id == legacy; });
  EXPECT_EQ(screenings_->referral_id("urn:clinic", "R-1"), legacy);
  EXPECT_EQ(ReferralMapper(*screenings_).map(referral())->referral_id, legacy);
  // A number the store never saw gets the keyed id.
  EXPECT_NE(screenings_->referral_id("urn:clinic", "R-2"), legacy_referral_id("urn:clinic", "R-2"));
}

TEST_F(ReferralMapperTest, NeedFromPositiveAnswersWhenNoCategoryIsGiven) {
  auto r = referral();
  r.category.clear();
  NormalizedScreening hvs;
  hvs.protocol = "fhir";
  hvs.patient_identifier = "123";
  hvs.panel = Coding{"http://loinc.org", "88121-9", ""};
  ItemResponse item;
  item.question = {"http://loinc.org", "88122-7", ""};
  item.answers.push_back({Coding{"http://loinc.org", "LA28397-0", ""}, {}, {}, {}});
  hvs.items.push_back(item);
  r.evidence.push_back(hvs);
  auto m = ReferralMapper(*screenings_).map(r);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->category, "food-insecurity");
}

// A REF of the sample clinic: RF1-3 SDOH^Social needs^LOCAL, RF1-5 EI^Early intervention^LOCAL.
NormalizedReferral local_coded(NormalizedReferral r, std::string sender) {
  r.protocol = "hl7v2";
  r.sender = std::move(sender);
  r.category.clear();
  r.need_codes.push_back({{"LOCAL", "SDOH", "Social needs"}, "RF1-3"});
  r.need_codes.push_back({{"LOCAL", "EI", "Early intervention"}, "RF1-5"});
  return r;
}

TEST_F(ReferralMapperTest, TheSendersLocalCodesNameTheNeed) {
  auto m = ReferralMapper(*screenings_).map(local_coded(referral(), "EHR^PEDS_CLINIC_A"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->category, "educational-attainment");
  EXPECT_FALSE(m->uncategorised);
}

TEST_F(ReferralMapperTest, AGravityCodeWinsOverLocalCodesAndLocalCodesOverAnswers) {
  auto r = local_coded(referral(), "EHR^PEDS_CLINIC_A");
  r.need_codes.push_back(
      {{std::string(screenings_->tables().category_system()), "food-insecurity", ""}, "RF1-5"});
  EXPECT_EQ(ReferralMapper(*screenings_).identify(r)->category, "food-insecurity");
  // Answers that screen positive for food insecurity do not outvote the clinic's code.
  r = local_coded(referral(), "EHR^PEDS_CLINIC_A");
  NormalizedScreening hvs;
  hvs.protocol = "hl7v2";
  hvs.patient_identifier = "123";
  hvs.panel = Coding{"http://loinc.org", "88121-9", ""};
  ItemResponse item;
  item.question = {"http://loinc.org", "88122-7", ""};
  item.answers.push_back({Coding{"http://loinc.org", "LA28397-0", ""}, {}, {}, {}});
  hvs.items.push_back(item);
  r.evidence.push_back(hvs);
  // The instrument's own codes (the panel, the question) are not looked up as local codes.
  r.need_codes.push_back({hvs.panel.value(), "OBR-4"});
  r.need_codes.push_back({item.question, "OBX-3"});
  auto m = ReferralMapper(*screenings_).identify(r);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->category, "educational-attainment");
}

TEST_F(ReferralMapperTest, UntranslatedCodesHoldTheReferralUncategorisedAndAreNamed) {
  auto r = local_coded(referral(), "EHR^PEDS_CLINIC_B");  // no table for this clinic
  auto held = ReferralMapper(*screenings_).identify(r);
  ASSERT_TRUE(held) << held.error().message;
  EXPECT_TRUE(held->uncategorised);
  EXPECT_EQ(held->category, "sdoh-category-unspecified");
  EXPECT_EQ(held->business_status, "uncategorised");
  EXPECT_EQ(held->untranslated, "RF1-3 LOCAL|SDOH, RF1-5 LOCAL|EI");
  EXPECT_EQ(held->referral_id, screenings_->referral_id("urn:clinic", "R-1"));
  // No event for it, even with an agency named.
  auto m = ReferralMapper(*screenings_).map(r);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().where.expression, "category");
  // A code the table says names no need is not asked for again; only HVX is.
  r = local_coded(referral(), "EHR^PEDS_CLINIC_A");
  r.need_codes.pop_back();
  r.need_codes.push_back({{"LOCAL", "HVX", ""}, "RF1-5"});
  held = ReferralMapper(*screenings_).identify(r);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->untranslated, "RF1-5 LOCAL|HVX");
  // Nothing at all: held too, never refused.
  r = referral();
  r.category.clear();
  held = ReferralMapper(*screenings_).identify(r);
  ASSERT_TRUE(held);
  EXPECT_TRUE(held->uncategorised);
  EXPECT_EQ(held->untranslated, "no need code and no positive answer");
}

TEST_F(ReferralMapperTest, TwoLocalCodesForTwoNeedsAreRefused) {
  auto r = local_coded(referral(), "EHR^PEDS_CLINIC_A");
  r.need_codes.push_back({{"LOCAL", "WIC", "WIC"}, "OBX-3"});
  auto m = ReferralMapper(*screenings_).identify(r);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().where.expression, "category");
  EXPECT_NE(m.error().message.find("more than one need"), std::string::npos);
}

TEST_F(ReferralMapperTest, TwoNamedNeedsAreRefused) {
  auto r = referral();
  NormalizedScreening group;
  group.panel = Coding{"", "housing-instability", ""};
  r.evidence.push_back(group);
  auto m = ReferralMapper(*screenings_).map(r);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().where.expression, "category");
}

TEST_F(ReferralMapperTest, MissingAgencyOrNumberIsNamed) {
  auto r = referral();
  r.agency_id.clear();
  EXPECT_EQ(ReferralMapper(*screenings_).map(r).error().where.expression, "agency.id");
  r = referral();
  r.clinic_number_value.clear();
  EXPECT_EQ(ReferralMapper(*screenings_).map(r).error().where.expression, "clinicReferralNumber");
}

TEST_F(ReferralMapperTest, IdentifyNeedsNoAgencyAndWritesNoEvent) {
  auto r = referral();
  r.agency_id.clear();
  r.business_status = "no-route";
  auto held = ReferralMapper(*screenings_).identify(r);
  ASSERT_TRUE(held) << held.error().message;
  EXPECT_EQ(held->referral_id, screenings_->referral_id("urn:clinic", "R-1"));
  EXPECT_EQ(held->category, "food-insecurity");
  EXPECT_EQ(held->patient_pseudonym.size(), 64u);
  EXPECT_EQ(held->business_status, "no-route");
  EXPECT_TRUE(held->data.empty());
  EXPECT_FALSE(held->contact_included);
  // An event still needs its agency.
  EXPECT_EQ(ReferralMapper(*screenings_).map(r).error().where.expression, "agency.id");
}

TEST_F(ReferralMapperTest, IdentifyRefusesWhatMapRefusesBesideTheAgency) {
  auto r = referral();
  r.agency_id.clear();
  r.category = "not-a-category";
  EXPECT_EQ(ReferralMapper(*screenings_).identify(r).error().where.expression, "category");
  r = referral();
  r.patient_identifier.clear();
  EXPECT_EQ(ReferralMapper(*screenings_).identify(r).error().where.expression,
            "patient.identifier");
}

TEST_F(ReferralMapperTest, TaskOfAHeldReferralHasNoOwner) {
  auto r = referral();
  r.agency_id.clear();
  r.business_status = "no-route";
  auto held = ReferralMapper(*screenings_).identify(r);
  ASSERT_TRUE(held);
  const auto json = sdoh::referral::new_task_json(r, *held, "2026-11-20T10:45:00Z");
  rapidjson::Document d;
  d.Parse(json.c_str());
  ASSERT_FALSE(d.HasParseError()) << json;
  EXPECT_FALSE(d.HasMember("owner"));
  EXPECT_STREQ(d["businessStatus"]["coding"][0]["code"].GetString(), "no-route");
  EXPECT_STREQ(d["businessStatus"]["coding"][0]["system"].GetString(),
               "urn:sdoh:codesystem:referral-business-status");
  EXPECT_STREQ(d["businessStatus"]["text"].GetString(), "No route (held)");
  EXPECT_STREQ(d["status"].GetString(), "requested");
  r.agency_id = "food-bank";
  d.Parse(sdoh::referral::new_task_json(r, *held, "2026-11-20T10:45:00Z").c_str());
  EXPECT_STREQ(d["owner"]["reference"].GetString(), "Organization/food-bank");
}

// The routing keys of a family with this postal code, county and birth date.
RoutingKeys keys_of(std::string postal_code, std::string county, std::string birth_date,
                    std::string_view on_date = "2026-11-20") {
  NormalizedReferral r;
  r.postal_code = std::move(postal_code);
  r.county_fips = std::move(county);
  r.birth_date = std::move(birth_date);
  return routing_keys(r, on_date);
}

TEST(RoutingKeys, RealZip3NotTheSafeHarborOne) {
  EXPECT_EQ(keys_of("27701-1234", "", "").zip3, "277");
  EXPECT_EQ(keys_of("03601", "", "").zip3, "036");  // restricted: events say "000"
  EXPECT_EQ(keys_of("K1A 0B1", "", "").zip3, "");
  EXPECT_EQ(keys_of("27", "", "").zip3, "");
}

TEST(RoutingKeys, TheWholeZipForTheCountyCrosswalk) {
  EXPECT_EQ(keys_of("27516-4012", "", "").zip, "27516-4012");
  EXPECT_EQ(keys_of("", "", "").zip, "");
}

TEST(RoutingKeys, CountyOnlyAsAFiveDigitFipsCode) {
  EXPECT_EQ(keys_of("", "37063", "").county_fips, "37063");
  EXPECT_EQ(keys_of("", "063", "").county_fips, "");
  EXPECT_EQ(keys_of("", "3706A", "").county_fips, "");
}

TEST(RoutingKeys, AgeInCompletedMonthsOnTheReferralDate) {
  EXPECT_EQ(keys_of("", "", "2023-11-21", "2026-11-20T10:45:00-05:00").age_months, 35);
  EXPECT_EQ(keys_of("", "", "2023-11-21", "2026-11-21").age_months, 36);
  EXPECT_EQ(keys_of("", "", "2023-11-21", "2023-10-01").age_months, std::nullopt);  // unborn
  EXPECT_EQ(keys_of("", "", "").age_months, std::nullopt);
}

TEST(ReferralStatusData, FirstEventHasNullPreviousStatusAndValidates) {
  ReferralTransition t;
  t.referral_id = legacy_referral_id("urn:clinic", "R-1");
  t.updated_by_role = "clinic";
  t.updated_by_id = "peds_clinic_a";
  t.time = "2026-11-20T10:45:00-05:00";
  t.agency_id = "ehv-durham";
  t.category = "food-insecurity";
  auto catalog = events::SchemaCatalog::load(kSchemas / "events");
  ASSERT_TRUE(catalog);
  const auto data = referral_status_data(t);
  EXPECT_TRUE((*catalog)->validate("urn:sdoh:schema:referral-status:v1", data)) << data;
  EXPECT_NE(data.find("\"previousStatus\":null"), std::string::npos);
}

TEST(ReferralStatusData, ReadsBackWhatItWrote) {
  ReferralTransition t;
  t.referral_id = "d6f9b8e1f26703acd5c0e7bbf1f3f27a";
  t.status = ReferralStatus::kAccepted;
  t.previous = ReferralStatus::kReceived;
  t.business_status = "scheduled";
  t.reason = "first visit Monday";
  t.updated_by_role = "agency";
  t.updated_by_id = "ehv-durham";
  t.time = "2026-11-25T10:00:00Z";
  t.sequence = 3;
  t.agency_id = "ehv-durham";
  t.category = "stress";
  const auto envelope =
      R"({"type":"org.sdoh.referral.status.v1","data":)" + referral_status_data(t) + "}";
  auto read = read_referral_status(envelope);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->referral_id, t.referral_id);
  EXPECT_EQ(read->status, ReferralStatus::kAccepted);
  EXPECT_EQ(read->previous, ReferralStatus::kReceived);
  EXPECT_EQ(read->business_status, "scheduled");
  EXPECT_EQ(read->reason, "first visit Monday");
  EXPECT_EQ(read->updated_by_id, "ehv-durham");
  EXPECT_EQ(read->sequence, 3);
  EXPECT_EQ(read->agency_id, "ehv-durham");
  EXPECT_EQ(read->category, "stress");
  t.previous.reset();
  t.agency_id.clear();
  auto first = read_referral_status(R"({"data":)" + referral_status_data(t) + "}");
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->previous);
  EXPECT_EQ(first->agency_id, "");
  EXPECT_FALSE(read_referral_status(R"({"data":{"status":"accepted"}})"));  // no sequence
  EXPECT_FALSE(read_referral_status("not json"));
}

TEST(ClipText, CutsAtCharacterBoundaries) {
  EXPECT_EQ(clip_text("a\xC3\xA9z", 2), "a\xC3\xA9");
  EXPECT_EQ(clip_text("abc", 5), "abc");
}

}  // namespace
}  // namespace sdoh::mapping
