// The HL7 pipeline's referrals: routing and holds, referrals from screenings, the agencies'
// RRI^I12 answers (and who may send them), lost races, and the clinic's own REF^I13 / REF^I14.
#include "adapters/hl7v2/pipeline.hpp"
#include "tests/unit/adapters/hl7v2/pipeline_fixture.hpp"

namespace sdoh::hl7v2 {
namespace {

using namespace pipeline_test_support;

constexpr const char* kReferredTo =
    "PRD|RT^Referred to provider^HL70286|Early Start Home Visiting|||||EHV-DURHAM^AGENCY^NC\r";

// The sample REF^I12 without its PRD of role RT, in original acknowledgment mode (one ACK).
std::string ref_naming_no_agency() {
  return replace(replace(sample("ref-i12-home-visiting.hl7"), kReferredTo, ""), "|AL|AL", "||");
}

std::string for_need(std::string ref, const std::string& obr4) {
  return replace(std::move(ref), "food-insecurity^Food insecurity^SDOHCC", obr4);
}

// The family's address: PID-11 (ZIP, and XAD-9 county) and PID-12 as given.
std::string living_at(std::string ref, const std::string& pid11_tail, const std::string& pid12) {
  return replace(std::move(ref), "^NC^27701^USA||", "^NC^" + pid11_tail + "|" + pid12 + "|");
}

TEST_F(Hl7PipelineTest, RefNamingNoAgencyIsRoutedByNeedAreaAndAge) {
  configure_shipped_routing();
  auto ack = send(ref_naming_no_agency());
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  // Food, ZIP 27701, a child of 6 months on RF1-7: Durham County WIC (children under 5).
  EXPECT_EQ(routing_asked(), "food-insecurity 277 - 6m");
  EXPECT_EQ(route_calls_.size(), 1u);
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(json_at(referrals[0], "/data/agency"),
            R"({"id":"wic-durham","name":"Durham County WIC","topic":"sdoh.referral.v1"})");
  EXPECT_EQ(str(referrals[0], "/data/businessStatus"), "<null>");
  EXPECT_EQ(store_.events[0].topic, "sdoh.referral.v1");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(str(statuses[0], "/data/agency/id"), "wic-durham");
  EXPECT_EQ(str(statuses[0], "/data/updatedBy/role"), "clinic");
  ASSERT_EQ(store_.referrals.size(), 1u);
  EXPECT_EQ(store_.referrals[0].agency_id, "wic-durham");
  // What the measures' timeline keeps of it: the 3-digit ZIP area (never PID-11's ZIP) and the
  // clinic that referred.
  EXPECT_EQ(store_.referrals[0].zip3, "277");
  EXPECT_EQ(store_.referrals[0].clinic, "peds_clinic_a");
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"created\"}"), 1u);
}

TEST_F(Hl7PipelineTest, RoutedAgencyWithItsOwnTopicGetsTheReferralThere) {
  configure_shipped_routing();
  // Learning and development concerns before the third birthday: Early Intervention.
  EXPECT_EQ(referred_to(for_need(ref_naming_no_agency(),
                                 "educational-attainment^Educational attainment^SDOHCC")),
            "ei-durham");
  EXPECT_EQ(json_at(events_of(kReferral).at(0), "/data/agency/topic"),
            R"("sdoh.referral.ei-durham")");
  ASSERT_EQ(store_.events.size(), 2u);
  EXPECT_EQ(store_.events[0].topic, "sdoh.referral.ei-durham");
  EXPECT_EQ(store_.events[1].topic, "sdoh.referral-status.v1");
}

TEST_F(Hl7PipelineTest, PrdRtWithAnEmptyPrd7IsRoutedLikeNoPrd) {
  configure_shipped_routing();
  EXPECT_EQ(referred_to(replace(sample("ref-i12-home-visiting.hl7"), "EHV-DURHAM^AGENCY^NC", "")),
            "wic-durham");
  // The name is the routed agency's, not PRD-2 of the PRD that named no id.
  EXPECT_EQ(str(events_of(kReferral).at(0), "/data/agency/name"), "Durham County WIC");
}

TEST_F(Hl7PipelineTest, AgencyNamedInPrdWinsOverRouting) {
  configure_shipped_routing();
  // Routing would say wic-durham for this need, area and age.
  EXPECT_EQ(referred_to(sample("ref-i12-home-visiting.hl7")), "ehv-durham");
  EXPECT_TRUE(route_calls_.empty());
}

TEST_F(Hl7PipelineTest, AgencyNamedInPrdGetsItsOwnTopicFromRouting) {
  configure_shipped_routing();
  send(replace(sample("ref-i12-home-visiting.hl7"), "EHV-DURHAM^AGENCY^NC", "EI-DURHAM^AGENCY^NC"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/agency/id"), "ei-durham");
  EXPECT_EQ(str(referrals[0], "/data/agency/topic"), "sdoh.referral.ei-durham");
  EXPECT_EQ(store_.events[0].topic, "sdoh.referral.ei-durham");
}

TEST_F(Hl7PipelineTest, CountyFromPid11WinsOverTheZip3) {
  configure_shipped_routing();
  // ZIP3 277 alone would be Durham's, but XAD-9 says Orange County (37135): Orange County WIC.
  EXPECT_EQ(referred_to(living_at(ref_naming_no_agency(), "27701^USA^^^37135", "")), "wic-orange");
  EXPECT_EQ(routing_asked(), "food-insecurity 277 37135 6m");
}

TEST_F(Hl7PipelineTest, CountyFromPid12WhenTheAddressHasNone) {
  configure_shipped_routing();
  // A ZIP no route lists, in Durham County by PID-12.
  EXPECT_EQ(referred_to(living_at(ref_naming_no_agency(), "90001^USA", "37063")), "wic-durham");
  EXPECT_EQ(routing_asked(), "food-insecurity 900 37063 6m");
}

TEST_F(Hl7PipelineTest, CountyCodeThatIsNotAFiveDigitFipsIsUnknown) {
  configure_shipped_routing();
  send(living_at(ref_naming_no_agency(), "27516^USA^^^135", "ORANGE"));
  EXPECT_EQ(routing_asked(), "food-insecurity 275 - 6m");
}

TEST_F(Hl7PipelineTest, AgeIsCountedInMonthsOnTheReferralDate) {
  configure_shipped_routing();
  const auto ei = for_need(replace(ref_naming_no_agency(), "||20260501|", "||20231121|"),
                           "educational-attainment^Educational attainment^SDOHCC");
  // RF1-7 2026-11-20: a day before the third birthday, 35 months: Early Intervention.
  EXPECT_EQ(referred_to(ei), "ei-durham");
  EXPECT_EQ(routing_asked(), "educational-attainment 277 - 35m");
  // RF1-7 2026-11-21: the third birthday, 36 months: Head Start.
  EXPECT_EQ(referred_to(replace(
                replace(replace(ei, "|20261120|", "|20261121|"), "REF-2026-0001", "REF-2026-0002"),
                "|A1000003|", "|A1000004|")),
            "headstart-durham");
  EXPECT_EQ(routing_asked(), "educational-attainment 277 - 36m");
}

TEST_F(Hl7PipelineTest, RoutedReferralWithoutConsentAwaitsConsent) {
  configure_shipped_routing();
  EXPECT_EQ(referred_to(without(ref_naming_no_agency(), "CON")), "wic-durham");
  EXPECT_EQ(str(events_of(kReferral).at(0), "/data/businessStatus"), "awaiting-consent");
}

TEST_F(Hl7PipelineTest, RefWithNoRouteIsHeldNotRefused) {
  configure_shipped_routing();
  auto ack = send(living_at(ref_naming_no_agency(), "90001^USA", ""));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(ack.find("\rERR|"), std::string::npos) << ack;
  EXPECT_EQ(store_.answer_codes, std::vector<std::string>{"AA"});
  // Listed for operations as a dead letter (stage route), replayed once a route exists.
  ASSERT_EQ(store_.dead_letters.size(), 1u);
  EXPECT_EQ(store_.dead_letters[0].stage, "route");
  EXPECT_EQ(store_.dead_letters[0].location, "PRD^1^7");
  EXPECT_EQ(events_of(kDeadLetter).size(), 1u);
  // No agency sees it: no referral event; its one status event says why it waits.
  EXPECT_TRUE(events_of(kReferral).empty());
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 1u);
  const auto& s = statuses[0];
  // requested + no-route, announced by the gateway's routing, for no agency.
  EXPECT_EQ(str(s, "/data/status") + " " + str(s, "/data/businessStatus"), "requested no-route");
  EXPECT_EQ(str(s, "/data/updatedBy/role") + "/" + str(s, "/data/updatedBy/id"), "gateway/routing");
  EXPECT_EQ(str(s, "/data/agency"), "<null>");
  EXPECT_EQ(str(s, "/data/previousStatus"), "<null>");
  EXPECT_EQ(str(s, "/data/sequence"), "1");
  EXPECT_EQ(str(s, "/data/category"), "food-insecurity");
  const auto rid = str(s, "/data/referralId");
  EXPECT_EQ(rid.size(), 32u);
  // Its state is kept (counted in sdoh_referrals_held, listed for ops) and the ledger knows it.
  ASSERT_EQ(store_.referrals.size(), 1u);
  EXPECT_EQ(store_.referrals[0].referral_id, rid);
  EXPECT_EQ(store_.referrals[0].agency_id, "");
  EXPECT_EQ(store_.referrals[0].status, "requested");
  EXPECT_EQ(store_.referrals[0].business_status, "no-route");
  EXPECT_EQ(store_.referrals[0].category, "food-insecurity");
  EXPECT_EQ(store_.referrals[0].return_to, "EHR^PEDS_CLINIC_A");
  auto known = store_.find_referral({rid, "", "", ""});
  ASSERT_TRUE(known && *known);
  EXPECT_EQ((*known)->business_status, "no-route");
  EXPECT_EQ((*known)->agency_id, "");
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"held\"}"), 1u);
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"created\"}"), 0u);
}

TEST_F(Hl7PipelineTest, HeldReferralKeepsItsTaskWithoutAnOwner) {
  configure_shipped_routing();
  send(living_at(ref_naming_no_agency(), "90001^USA", ""));
  ASSERT_EQ(store_.resources.size(), 1u);
  const auto& task = store_.resources[0];
  EXPECT_EQ(task.type, "Task");
  EXPECT_EQ(task.id, str(events_of(kStatus).at(0), "/data/referralId"));
  rapidjson::Document d;
  d.Parse(task.json.c_str());
  ASSERT_FALSE(d.HasParseError()) << task.json;
  EXPECT_EQ(str(d, "/status"), "requested");
  EXPECT_EQ(str(d, "/businessStatus/coding/0/code"), "no-route");
  EXPECT_EQ(str(d, "/businessStatus/coding/0/system"),
            "urn:sdoh:codesystem:referral-business-status");
  EXPECT_EQ(str(d, "/owner"), "<absent>");
  EXPECT_EQ(str(d, "/reasonCode/coding/0/code"), "food-insecurity");
  const std::pair<std::string, std::string> held{"business-status", "no-route"};
  EXPECT_NE(std::find(task.search.begin(), task.search.end(), held), task.search.end());
  for (const auto& [name, value] : task.search)
    EXPECT_NE(name, "owner") << value;
}

TEST_F(Hl7PipelineTest, WithoutRoutingARefNamingNoAgencyIsHeld) {
  auto ack = send(ref_naming_no_agency());
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_TRUE(events_of(kReferral).empty());
  EXPECT_EQ(only_business_status(), "no-route");
}

TEST_F(Hl7PipelineTest, NoRouteWinsOverAwaitingConsent) {
  configure_shipped_routing();
  send(without(living_at(ref_naming_no_agency(), "90001^USA", ""), "CON"));
  EXPECT_EQ(only_business_status(), "no-route");
}

TEST_F(Hl7PipelineTest, HeldReferralSentAgainUnderANewControlIdAddsNothing) {
  configure_shipped_routing();
  const auto held = living_at(ref_naming_no_agency(), "90001^USA", "");
  send(held);
  auto ack = send(replace(held, "|A1000003|", "|A1000098|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 1u);
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"already-known\"}"),
            1u);
}

TEST_F(Hl7PipelineTest, HeldReferralIsReleasedWhenARouteFindsItsAgency) {
  configure_shipped_routing();
  const auto held = living_at(ref_naming_no_agency(), "90001^USA", "");
  send(held);
  const auto rid = str(events_of(kStatus).at(0), "/data/referralId");
  // The clinic corrects the family's address (ZIP 27701) and sends the referral again.
  auto ack =
      send(replace(living_at(ref_naming_no_agency(), "27701^USA", ""), "|A1000003|", "|A1000097|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/referralId"), rid);
  EXPECT_EQ(str(referrals[0], "/data/agency/id"), "wic-durham");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  const auto& routed = statuses[1];
  EXPECT_EQ(str(routed, "/data/updatedBy/role") + "/" + str(routed, "/data/updatedBy/id"),
            "gateway/routing");
  EXPECT_EQ(str(routed, "/data/sequence"), "2");
  EXPECT_EQ(str(routed, "/data/businessStatus"), "<null>");
  EXPECT_EQ(str(routed, "/data/agency/id"), "wic-durham");
  ASSERT_EQ(store_.referrals.size(), 2u);
  EXPECT_EQ(store_.referrals[1].agency_id, "wic-durham");
  EXPECT_EQ(store_.referrals[1].sequence, 2);
  EXPECT_EQ(store_.dead_letters.size(), 1u);  // only the first message's
  ASSERT_EQ(store_.resources.size(), 2u);
  EXPECT_EQ(store_.resources[1].version, 2);
  rapidjson::Document d;
  d.Parse(store_.resources[1].json.c_str());
  EXPECT_EQ(str(d, "/owner/reference"), "Organization/wic-durham");
  EXPECT_EQ(str(d, "/meta/versionId"), "2");
  EXPECT_EQ((*store_.find_referral({rid, "", "", ""}))->agency_id, "wic-durham");
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"released\"}"), 1u);
}

// The AHC HRSN sample in which the family also asks for help with school or training (96782-8).
std::string oru_asking_for_help() {
  auto oru = sample("oru-r01-ahc-hrsn-positive.hl7");
  if (!oru.ends_with("\r")) oru += "\r";
  return oru +
         "OBX|7|CWE|96782-8^Do you want help with school or training^LN||LA33-6^Yes^LN||||||F\r";
}

TEST_F(Hl7PipelineTest, OruScreeningWithAssistanceRequestedOpensARoutedReferral) {
  refer_from_screening_ = true;
  configure_shipped_routing();
  auto ack = send(oru_asking_for_help());
  EXPECT_EQ(field(ack, "MSA-1"), "CA");
  ASSERT_EQ(events_of("org.sdoh.screening.v1").size(), 1u);
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  const auto& r = referrals[0];
  // Born 2026-05-01, screened 2026-11-20 in ZIP 277: Early Intervention, on its own topic.
  EXPECT_EQ(str(r, "/data/category"), "educational-attainment");
  EXPECT_EQ(str(r, "/data/agency/id"), "ei-durham");
  EXPECT_EQ(str(r, "/data/clinicReferralNumber/system"), "urn:sdoh-gateway:screening-referral");
  // No CON segment and the sender's policy asks for one: no contact details, awaiting consent.
  EXPECT_EQ(str(r, "/data/businessStatus"), "awaiting-consent");
  EXPECT_EQ(str(r, "/data/contact"), "<absent>");
  EXPECT_EQ(store_.events.front().topic, "sdoh.screening.v1");
  bool on_agency_topic = false;
  for (const auto& e : store_.events)
    on_agency_topic |= e.type == kReferral && e.topic == "sdoh.referral.ei-durham";
  EXPECT_TRUE(on_agency_topic);
  ASSERT_EQ(events_of(kStatus).size(), 1u);
  ASSERT_EQ(store_.referrals.size(), 1u);
  EXPECT_EQ(store_.referrals[0].return_to, "EHR^PEDS_CLINIC_A");
  EXPECT_EQ(store_.referrals[0].race, "2106-3");
  ASSERT_EQ(store_.resources.size(), 1u);  // its Task
  const auto rid = str(r, "/data/referralId");
  EXPECT_TRUE(*store_.find_referral({rid, "", "", ""}));
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"ORU^R01\",outcome=\"created\"}"), 1u);

  EXPECT_EQ(store_.referrals[0].patient, str(r, "/data/patient/pseudonym"));

  // The family asks again in a later screening: its referral for the need is still open.
  send(replace(oru_asking_for_help(), "|A1000001|", "|A1000091|"));
  EXPECT_EQ(events_of(kReferral).size(), 1u);
  EXPECT_EQ(events_of("org.sdoh.screening.v1").size(), 2u);
  // Once it is closed, a new screening asking for help opens a new referral.
  store_.referrals[0].status = "completed";
  send(replace(oru_asking_for_help(), "|A1000001|", "|A1000092|"));
  EXPECT_EQ(events_of(kReferral).size(), 2u);
}

TEST_F(Hl7PipelineTest, OruScreeningOpensNoReferralWhenTurnedOff) {
  configure_shipped_routing();  // refer_from_screening_ false
  send(oru_asking_for_help());
  EXPECT_TRUE(events_of(kReferral).empty());
  EXPECT_TRUE(store_.referrals.empty());
}

TEST_F(Hl7PipelineTest, WhatIsInvalidIsStillRefusedWhenNoAgencyIsNamed) {
  configure_shipped_routing();
  // MSA-1 and ERR-2 of the answer to the REF naming no agency, edited, under control id `id`.
  auto refusal = [this](const std::string& id, const std::string& from, const std::string& to) {
    const auto ack = send(replace(replace(ref_naming_no_agency(), from, to), "|A1000003|", id));
    return field(ack, "MSA-1") + " " + field(ack, "ERR-2.1") + "-" + field(ack, "ERR-2.3");
  };
  EXPECT_EQ(refusal("|N1|", "MRN12345^^^PEDS_A^MR", ""), "AE PID-3");
  EXPECT_EQ(refusal("|N2|", "REF-2026-0001^PEDS_A", ""), "AE RF1-6");
  // Two needs: the OBR names food insecurity and the answers under a second OBR housing.
  EXPECT_EQ(refusal("|N3|", "OBR|1|ORD124||",
                    "OBR|1|ORD123||housing-instability^Housing instability^SDOHCC\rOBR|2|ORD124||"),
            "AE OBR-4");
  EXPECT_TRUE(route_calls_.empty());
  EXPECT_TRUE(events_of(kStatus).empty());
  EXPECT_EQ(events_of(kDeadLetter).size(), 3u);
}

// The sample REF^I12 without its OBR/OBX: only RF1-3 SDOH^Social needs^LOCAL and RF1-5
// HV^Home visiting^LOCAL say what it is for; from `clinic` (MSH-4).
std::string local_coded_ref(const std::string& clinic, bool named_agency = false) {
  auto ref = named_agency ? replace(sample("ref-i12-home-visiting.hl7"), "|AL|AL", "||")
                          : ref_naming_no_agency();
  ref = ref.substr(0, ref.find("OBR|1|"));
  return replace(ref, "|EHR|PEDS_CLINIC_A|", "|EHR|" + clinic + "|");
}

TEST_F(Hl7PipelineTest, LocalCodesTheClinicsTableTranslatesNameTheNeed) {
  configure_shipped_routing();
  // schemas/mappings/local/example-peds-clinic-a.json: EI means educational attainment.
  auto ack = send(replace(local_coded_ref("PEDS_CLINIC_A"), "HV^Home visiting^LOCAL",
                          "EI^Early intervention^LOCAL"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(routing_asked(), "educational-attainment 277 - 6m");
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/category"), "educational-attainment");
  EXPECT_EQ(str(referrals[0], "/data/agency/id"), "ei-durham");
  EXPECT_TRUE(store_.dead_letters.empty());
}

TEST_F(Hl7PipelineTest, ARefWhoseLocalCodesNoTableTranslatesIsHeldUncategorisedNotRefused) {
  configure_shipped_routing();
  // PEDS_CLINIC_B has no local code table; it names its agency, which does not matter yet.
  auto ack = send(local_coded_ref("PEDS_CLINIC_B", true));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(ack.find("\rERR|"), std::string::npos) << ack;
  EXPECT_TRUE(route_calls_.empty());
  // A dead letter that names the codes to translate (codes only) and a field the REF has.
  ASSERT_EQ(store_.dead_letters.size(), 1u);
  EXPECT_EQ(store_.dead_letters[0].stage, "map");
  EXPECT_EQ(store_.dead_letters[0].location, "RF1^1^5");
  EXPECT_NE(store_.dead_letters[0].error_text.find(
                "need cannot be told from RF1-3 LOCAL|SDOH, RF1-5 LOCAL|HV (sender "
                "EHR^PEDS_CLINIC_B)"),
            std::string::npos)
      << store_.dead_letters[0].error_text;
  // No agency sees it; its status event says why it waits.
  EXPECT_TRUE(events_of(kReferral).empty());
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 1u);
  const auto& s = statuses[0];
  EXPECT_EQ(str(s, "/data/status") + " " + str(s, "/data/businessStatus"),
            "requested uncategorised");
  EXPECT_EQ(str(s, "/data/category"), "sdoh-category-unspecified");
  EXPECT_EQ(str(s, "/data/agency"), "<null>");
  EXPECT_EQ(str(s, "/data/updatedBy/role"), "gateway");
  ASSERT_EQ(store_.referrals.size(), 1u);
  EXPECT_EQ(store_.referrals[0].business_status, "uncategorised");
  EXPECT_EQ(store_.referrals[0].agency_id, "");
  ASSERT_EQ(store_.resources.size(), 1u);
  rapidjson::Document task;
  task.Parse(store_.resources[0].json.c_str());
  EXPECT_EQ(str(task, "/businessStatus/coding/0/code"), "uncategorised");
  EXPECT_EQ(str(task, "/owner"), "<absent>");
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"held\"}"), 1u);

  // Sent again unchanged: still held, one more dead letter for the operator, nothing published.
  send(replace(local_coded_ref("PEDS_CLINIC_B", true), "|A1000003|", "|A1000098|"));
  EXPECT_EQ(store_.dead_letters.size(), 2u);
  EXPECT_EQ(events_of(kStatus).size(), 1u);
}

TEST_F(Hl7PipelineTest, AnUncategorisedReferralGoesToItsAgencyOnceItsNeedIsKnown) {
  configure_shipped_routing();
  send(local_coded_ref("PEDS_CLINIC_B", true));
  const auto rid = str(events_of(kStatus).at(0), "/data/referralId");
  // The clinic codes the need with a Gravity category and sends the referral again.
  auto ack = send(replace(replace(local_coded_ref("PEDS_CLINIC_B", true), "HV^Home visiting^LOCAL",
                                  "stress^Stress^SDOHCC"),
                          "|A1000003|", "|A1000099|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/referralId"), rid);
  EXPECT_EQ(str(referrals[0], "/data/category"), "stress");
  EXPECT_EQ(str(referrals[0], "/data/agency/id"), "ehv-durham");  // as the clinic named it
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(str(statuses[1], "/data/category"), "stress");
  EXPECT_EQ(str(statuses[1], "/data/businessStatus"), "<null>");
  EXPECT_EQ(str(statuses[1], "/data/sequence"), "2");
  EXPECT_EQ(str(statuses[1], "/data/updatedBy/id"), "routing");
  ASSERT_EQ(store_.referrals.size(), 2u);
  EXPECT_EQ(store_.referrals[1].category, "stress");
  EXPECT_EQ(store_.referrals[1].agency_id, "ehv-durham");
  ASSERT_EQ(store_.resources.size(), 2u);
  rapidjson::Document task;
  task.Parse(store_.resources[1].json.c_str());
  EXPECT_EQ(str(task, "/reasonCode/coding/0/code"), "stress");
  EXPECT_EQ(str(task, "/owner/reference"), "Organization/ehv-durham");
  EXPECT_EQ(store_.dead_letters.size(), 1u);  // only the first message's
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"released\"}"), 1u);
}

TEST_F(Hl7PipelineTest, RriSampleAcceptsTheReferral) {
  config::Hl7Config hl7;
  hl7.default_timezone = "America/New_York";
  configure(hl7);
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(field(ack, "MSA-2"), "EHV-55");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  const auto& s = statuses[1];
  EXPECT_EQ(str(s, "/data/referralId"), str(events_of(kReferral)[0], "/data/referralId"));
  EXPECT_EQ(str(s, "/data/status"), "accepted");
  EXPECT_EQ(str(s, "/data/previousStatus"), "requested");
  EXPECT_EQ(str(s, "/data/sequence"), "2");
  EXPECT_EQ(str(s, "/data/reason"), "Family contacted, first visit scheduled");
  EXPECT_EQ(str(s, "/data/updatedBy/role"), "agency");
  EXPECT_EQ(str(s, "/data/updatedBy/id"), "ehv-durham");
  EXPECT_EQ(str(s, "/data/time"), "2026-11-22T09:00:00-05:00");
  EXPECT_EQ(str(s, "/data/agency/id"), "ehv-durham");
  EXPECT_EQ(str(s, "/data/category"), "food-insecurity");
  EXPECT_EQ(store_.events.back().key, str(s, "/data/referralId"));
}

TEST_F(Hl7PipelineTest, RriTimeWithoutOffsetOrZoneIsWhenReceived) {
  send(sample("ref-i12-home-visiting.hl7"));
  send(sample("rri-i12-accepted.hl7"));
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(str(statuses[1], "/data/time"), str(statuses[1], "/time"));
}

TEST_F(Hl7PipelineTest, RriFindsTheReferralByMsa2AloneToo) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(replace(sample("rri-i12-accepted.hl7"), "REF-2026-0001^PEDS_A", ""));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 2u);
}

TEST_F(Hl7PipelineTest, RriFindsTheReferralByItsReferralIdInRf111) {
  send(sample("ref-i12-home-visiting.hl7"));
  const auto id = str(events_of(kReferral)[0], "/data/referralId");
  auto rri = replace(sample("rri-i12-accepted.hl7"), "REF-2026-0001^PEDS_A", "");
  rri = replace(rri, "MSA|AA|A1000003", "MSA|AA|");
  rri = replace(rri, "^Family contacted, first visit scheduled",
                "^Family contacted, first visit scheduled|" + id);
  auto ack = send(rri);
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 2u);
}

TEST_F(Hl7PipelineTest, RriForAnUnknownReferralIsAeUnknownKeyWithADeadLetter) {
  auto ack = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "6");
  EXPECT_EQ(field(ack, "ERR-3.1"), "204");
  EXPECT_TRUE(events_of(kStatus).empty());
  auto dead = events_of(kDeadLetter);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(str(dead[0], "/data/stage"), "lifecycle");
}

TEST_F(Hl7PipelineTest, RriFromAnotherAgencyIsRefused) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto rri =
      replace(sample("rri-i12-accepted.hl7"), "EHV-DURHAM^AGENCY^NC", "WIC-DURHAM^AGENCY^NC");
  auto ack = send(replace(rri, "|AGENCY|EHV-DURHAM|", "|AGENCY|WIC-DURHAM|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-3.1"), "204");
  EXPECT_EQ(events_of(kStatus).size(), 1u);
}

TEST_F(Hl7PipelineTest, StatusHistoryIsNumberedAndAFinalStatusIsFinal) {
  send(sample("ref-i12-home-visiting.hl7"));
  send(sample("rri-i12-accepted.hl7"));
  auto completed = replace(sample("rri-i12-accepted.hl7"), "A^Accepted^HL70283", "completed");
  send(replace(completed, "|EHV-55|", "|EHV-56|"));
  auto late = replace(sample("rri-i12-accepted.hl7"), "A^Accepted^HL70283", "in-progress");
  auto ack = send(replace(late, "|EHV-55|", "|EHV-57|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.3"), "1");
  EXPECT_EQ(field(ack, "ERR-3.1"), "103");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_EQ(str(statuses[2], "/data/status"), "completed");
  EXPECT_EQ(str(statuses[2], "/data/previousStatus"), "accepted");
  EXPECT_EQ(str(statuses[2], "/data/sequence"), "3");
  EXPECT_NE(str(statuses[1], "/id"), str(statuses[2], "/id"));
}

TEST_F(Hl7PipelineTest, RriResendIsAnsweredFromTheStoreWithoutANewEvent) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto first = send(sample("rri-i12-accepted.hl7"));
  auto again = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(again, first);
  EXPECT_EQ(events_of(kStatus).size(), 2u);
}

TEST_F(Hl7PipelineTest, RriWithUnknownStatusCodeIsAeNamingRf11) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(replace(sample("rri-i12-accepted.hl7"), "A^Accepted^HL70283", "Q^Queued^LOCAL"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "1");
  EXPECT_EQ(field(ack, "ERR-3.1"), "103");
}

TEST_F(Hl7PipelineTest, RriWithoutRf1IsAeNamingMsh) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(without(sample("rri-i12-accepted.hl7"), "RF1"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2"), "MSH^1");  // RF1 was not sent; ERR-8 names it
  EXPECT_EQ(field(ack, "ERR-3.1"), "100");
  EXPECT_EQ(events_of(kDeadLetter).size(), 1u);
}

TEST_F(Hl7PipelineTest, AnRriThatLosesARaceForItsReferralDecidesAgain) {
  send(sample("ref-i12-home-visiting.hl7"));
  store_.lose_races = 1;  // another change of the referral commits first, once
  auto ack = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(store_.conflicts, 1);
  ASSERT_EQ(events_of(kStatus).size(), 2u);
  EXPECT_EQ(str(events_of(kStatus)[1], "/data/sequence"), "2");
}

TEST_F(Hl7PipelineTest, ReferralBusyWithOtherMessagesGetsARetryableNakNotRecorded) {
  send(sample("ref-i12-home-visiting.hl7"));
  store_.lose_races = 100;  // it keeps losing: the sender is told to resend later
  auto busy = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(field(busy, "MSA-1"), "AE");
  EXPECT_EQ(field(busy, "ERR-3.1"), "206");
  EXPECT_EQ(store_.conflicts, 4);
  store_.lose_races = 0;
  auto retried = send(sample("rri-i12-accepted.hl7"));  // not recorded: processed again
  EXPECT_EQ(field(retried, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 2u);
}

TEST_F(Hl7PipelineTest, LogLinesAboutReferralsCarryNoPhi) {
  log::init(log::Level::kDebug);
  testing::internal::CaptureStdout();
  send(sample("ref-i12-home-visiting.hl7"));
  send(sample("rri-i12-accepted.hl7"));
  send(replace(sample("rri-i12-accepted.hl7"), "|EHV-55|", "|EHV-58|"));  // unchanged
  send(without(sample("rri-i12-accepted.hl7"), "RF1"));                   // rejected
  send(replace(replace(without(sample("ref-i12-home-visiting.hl7"), "PRD"), "REF-2026-0001",
                       "REF-2026-0002"),
               "|A1000003|", "|A1000005|"));  // held: no route configured
  const auto out = testing::internal::GetCapturedStdout();
  log::init(log::Level::kInfo);
  EXPECT_NE(out.find("hl7.referral_created"), std::string::npos);
  EXPECT_NE(out.find("hl7.referral_held"), std::string::npos);
  EXPECT_NE(out.find("hl7.referral_updated"), std::string::npos);
  EXPECT_NE(out.find("hl7.rejected"), std::string::npos);
  for (const char* phi : {"Garcia", "Sofia", "Maria", "MRN12345", "5551234", "Elm St", "20260501",
                          "Family asked", "Rivera"})
    EXPECT_EQ(out.find(phi), std::string::npos) << phi;
}

// The sample REF^I12 as another REF message of the clinic's, in original acknowledgment mode.
std::string as_type(std::string message, const std::string& type, const std::string& control_id) {
  return replace(
      replace(replace(message, "REF^I12^REF_I12", type), "|A1000003|", "|" + control_id + "|"),
      "|AL|AL", "||");
}

TEST_F(Hl7PipelineTest, TheClinicCancelsItsReferralWithRefI14) {
  send(sample("ref-i12-home-visiting.hl7"));
  const auto rid = str(events_of(kStatus).at(0), "/data/referralId");
  auto ack = send(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I14^REF_I12", "A1000004"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  const auto& cancelled = statuses[1];
  EXPECT_EQ(str(cancelled, "/data/referralId"), rid);
  EXPECT_EQ(str(cancelled, "/data/status"), "cancelled");
  EXPECT_EQ(str(cancelled, "/data/previousStatus"), "requested");
  EXPECT_EQ(str(cancelled, "/data/updatedBy/role"), "clinic");
  EXPECT_EQ(str(cancelled, "/data/sequence"), "2");
  auto state = store_.find_referral({rid, "", "", ""});
  ASSERT_TRUE(state && *state);
  EXPECT_EQ((*state)->status, "cancelled");
  auto task = store_.read_resource("Task", rid, 0);
  ASSERT_TRUE(task && *task);
  EXPECT_EQ((*task)->version, 2);
  rapidjson::Document d;
  d.Parse((*task)->json.c_str());
  EXPECT_EQ(str(d, "/status"), "cancelled");
  // Sent again under a new control id: acknowledged, nothing new.
  auto again = send(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I14^REF_I12", "A1000005"));
  EXPECT_EQ(field(again, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 2u);
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I14\",outcome=\"cancelled\"}"),
            1u);
  // A final referral is not modified any more.
  auto late = send(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I13^REF_I12", "A1000006"));
  EXPECT_EQ(field(late, "MSA-1"), "AE");
  EXPECT_EQ(field(late, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(late, "ERR-2.3"), "1");
  EXPECT_EQ(store_.dead_letters.size(), 1u);
}

TEST_F(Hl7PipelineTest, OnlyTheClinicThatMadeAReferralChangesIt) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto other = replace(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I14^REF_I12", "B1"),
                       "MSH|^~\\&|EHR|PEDS_CLINIC_A|", "MSH|^~\\&|EHR|PEDS_CLINIC_B|");
  auto ack = send(other);
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "6");
  EXPECT_EQ(field(ack, "ERR-3.1"), "204");
  EXPECT_EQ(events_of(kStatus).size(), 1u);
  // A referral the gateway never saw: the same answer, and a dead letter to replay later.
  auto unknown = send(replace(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I14^REF_I12", "C1"),
                              "REF-2026-0001", "REF-2026-0999"));
  EXPECT_EQ(field(unknown, "MSA-1"), "AE");
  EXPECT_EQ(field(unknown, "ERR-3.1"), "204");
  EXPECT_EQ(store_.dead_letters.size(), 2u);
}

TEST_F(Hl7PipelineTest, ARefI13WithConReleasesAReferralWaitingForConsent) {
  send(without(sample("ref-i12-home-visiting.hl7"), "CON"));
  ASSERT_EQ(str(events_of(kStatus).at(0), "/data/businessStatus"), "awaiting-consent");
  ASSERT_EQ(str(events_of(kReferral).at(0), "/data/contact"), "<absent>");
  auto ack = send(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I13^REF_I12", "A1000007"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(str(statuses[1], "/data/businessStatus"), "<null>");
  EXPECT_EQ(str(statuses[1], "/data/updatedBy/role") + "/" + str(statuses[1], "/data/updatedBy/id"),
            "gateway/consent");
  auto referral_events = events_of(kReferral);
  ASSERT_EQ(referral_events.size(), 2u);
  EXPECT_EQ(str(referral_events[1], "/data/consent/status"), "active");
  EXPECT_NE(str(referral_events[1], "/data/contact"), "<absent>");
  EXPECT_NE(str(referral_events[1], "/id"), str(referral_events[0], "/id"));
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I13\",outcome=\"released\"}"), 1u);
}

TEST_F(Hl7PipelineTest, ARefI13ReRoutesOnlyUntilAnAgencyHasReceivedIt) {
  send(sample("ref-i12-home-visiting.hl7"));
  const auto to_wic = [](std::string m, const std::string& id) {
    return replace(as_type(std::move(m), "REF^I13^REF_I12", id), "EHV-DURHAM^AGENCY^NC",
                   "WIC-DURHAM^AGENCY^NC");
  };
  auto ack = send(to_wic(sample("ref-i12-home-visiting.hl7"), "A1000008"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(str(statuses[1], "/data/agency/id"), "wic-durham");
  EXPECT_EQ(str(statuses[1], "/data/updatedBy/role"), "clinic");
  EXPECT_EQ(str(events_of(kReferral).back(), "/data/agency/id"), "wic-durham");
  const auto rid = str(statuses[1], "/data/referralId");
  EXPECT_EQ((*store_.find_referral({rid, "", "", ""}))->agency_id, "wic-durham");
  // The new agency receives it; the clinic can no longer send it elsewhere.
  auto rri = replace(replace(replace(sample("rri-i12-accepted.hl7"), "EHV-DURHAM", "WIC-DURHAM"),
                             "EHV-DURHAM", "WIC-DURHAM"),
                     "A^Accepted^HL70283", "received^Received^LOCAL");
  ASSERT_EQ(field(send(rri), "MSA-1"), "AA");
  auto back = send(replace(to_wic(sample("ref-i12-home-visiting.hl7"), "A1000009"),
                           "WIC-DURHAM^AGENCY^NC", "EHV-DURHAM^AGENCY^NC"));
  EXPECT_EQ(field(back, "MSA-1"), "AE");
  EXPECT_EQ(field(back, "ERR-2.1"), "PRD");
  EXPECT_EQ(field(back, "ERR-2.3"), "7");
}

}  // namespace
}  // namespace sdoh::hl7v2
