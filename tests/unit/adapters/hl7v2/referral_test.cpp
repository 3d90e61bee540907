// adapters/hl7v2/referral.cpp: what a REF^I12 says about its agency and about the family's area,
// which routing needs when the clinic names no agency.
#include "adapters/hl7v2/referral.hpp"

#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/support/shipped.hpp"

namespace sdoh::hl7v2 {
namespace {

using Edits = std::vector<std::pair<std::string, std::string>>;

// The shared sample REF^I12 with each (from, to) replaced once, read as a referral.
Result<mapping::NormalizedReferral> read_ref(const Edits& edits) {
  auto text = test::shared_sample("hl7v2", "ref-i12-home-visiting.hl7");
  for (const auto& [from, to] : edits) {
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }
  auto m = Message::parse(text);
  EXPECT_TRUE(m) << text;
  if (!m) return fail(m.error());
  return referral_from_ref(*m, ReferralReadOptions{});
}

// The same, when it must be readable.
mapping::NormalizedReferral referral(const Edits& edits = {}) {
  auto r = read_ref(edits);
  EXPECT_TRUE(r) << r.error().message;
  return r ? std::move(*r) : mapping::NormalizedReferral{};
}

constexpr const char* kReferredTo =
    "PRD|RT^Referred to provider^HL70286|Early Start Home Visiting|||||EHV-DURHAM^AGENCY^NC\r";

TEST(RefI12, PrdRtNamesTheAgency) {
  const auto r = referral();
  EXPECT_EQ(r.agency_id, "ehv-durham");
  EXPECT_EQ(r.agency_name, "Early Start Home Visiting");
  EXPECT_EQ(r.business_status, "");  // CON-11 A: consent is active
}

TEST(RefI12, WithoutPrdRtTheReferralWaitsForARoute) {
  const auto r = referral({{kReferredTo, ""}});
  EXPECT_EQ(r.agency_id, "");
  EXPECT_EQ(r.agency_name, "");
  EXPECT_EQ(r.business_status, "no-route");
  EXPECT_EQ(r.requester_id, "1234567890");  // the referring provider (PRD RP) is still read
}

TEST(RefI12, PrdRtWithAnEmptyPrd7NamesNoAgency) {
  const auto r = referral({{"EHV-DURHAM^AGENCY^NC", ""}});
  EXPECT_EQ(r.agency_id, "");
  EXPECT_EQ(r.agency_name, "");  // PRD-2 names no agency without its id
  EXPECT_EQ(r.business_status, "no-route");
}

TEST(RefI12, NamedAgencyWithoutConsentAwaitsConsent) {
  EXPECT_EQ(referral({{"A^Active^HL70498", "R^Refused^HL70498"}}).business_status,
            "awaiting-consent");
}

TEST(RefI12, RoutingKeysAreTheZipTheBirthDateAndTheReferralDate) {
  const auto r = referral();
  EXPECT_EQ(r.postal_code, "27701");
  EXPECT_EQ(r.birth_date, "2026-05-01");
  EXPECT_EQ(r.authored_on, "2026-11-20");
  EXPECT_EQ(r.county_fips, "");  // the sample names no county
}

TEST(RefI12, CountyIsAFiveDigitFipsCodeFromPid11ElsePid12) {
  const std::string address = "^NC^27701^USA||";
  // XAD-9 county/parish code (HL7 v2.5.1 table 0289).
  EXPECT_EQ(referral({{address, "^NC^27701^USA^^^37063||"}}).county_fips, "37063");
  // PID-12, kept in v2.5.1 for backward compatibility.
  EXPECT_EQ(referral({{address, "^NC^27701^USA|37135|"}}).county_fips, "37135");
  // Both: the address's.
  EXPECT_EQ(referral({{address, "^NC^27701^USA^^^37063|37135|"}}).county_fips, "37063");
  // A county without its state, or a local code: unknown.
  EXPECT_EQ(referral({{address, "^NC^27701^USA^^^063|DURHAM|"}}).county_fips, "");
}

TEST(RefI12, WithoutRf1ItIsRefusedNamingMshWhereRf1Belongs) {
  auto r = read_ref({{kReferredTo, ""},
                     {"RF1|P^Pending^HL70283|R^Routine^HL70280|SDOH^Social needs^LOCAL||HV^Home "
                      "visiting^LOCAL|REF-2026-0001^PEDS_A|20261120|||^Family asked for help "
                      "with food and housing\r",
                      ""}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().where.segment, "MSH");
  EXPECT_EQ(r.error().message, "REF^I12 needs an RF1 segment");
}

}  // namespace
}  // namespace sdoh::hl7v2
