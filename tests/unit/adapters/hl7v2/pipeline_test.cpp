// The HL7 ingest pipeline with the shipped mapping tables and a recording CommitPort:
// what each message is answered with and which events it commits (screenings, charsets,
// time zones, REF^I12 mapping, resends, acknowledgment modes). Every event is validated
// against the schemas in schemas/events/. Referrals: pipeline_referrals_test.cpp.
#include "adapters/hl7v2/pipeline.hpp"

#include "tests/unit/adapters/hl7v2/pipeline_fixture.hpp"

namespace sdoh::hl7v2 {
namespace {

using namespace pipeline_test_support;

TEST_F(Hl7PipelineTest, Latin1MessageValuesArriveAsUtf8InEvents) {
  auto ack = send(hvs_oru("8859/1",
                          "A menudo es cierto \xAB"
                          "a\xF1o\xBB"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 1u);
  EXPECT_EQ(str(screenings[0], "/data/domains/0/items/0/answer/display"),
            "A menudo es cierto \xC2\xAB"
            "a\xC3\xB1o\xC2\xBB");
  EXPECT_EQ(
      counter("sdoh_hl7_charset_fallbacks_total{declared=\"8859/1\",read_as=\"windows-1252\"}"),
      0u);
}

TEST_F(Hl7PipelineTest, UndeclaredWindows1252IsConvertedAndCounted) {
  auto ack = send(hvs_oru("", "\x93Often\x94 true"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 1u);
  EXPECT_EQ(str(screenings[0], "/data/domains/0/items/0/answer/display"),
            "\xE2\x80\x9COften\xE2\x80\x9D true");
  EXPECT_EQ(counter("sdoh_hl7_charset_fallbacks_total{declared=\"none\",read_as=\"windows-1252\"}"),
            1u);
}

TEST_F(Hl7PipelineTest, DeclaredUtf8WithInvalidBytesIsAeNamingTheField) {
  auto ack = send(hvs_oru("UNICODE UTF-8", "Often true"));  // PID-5 holds Latin-1 bytes
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "PID");
  EXPECT_EQ(field(ack, "ERR-2.2"), "1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "5");
  EXPECT_EQ(field(ack, "ERR-3.1"), "102");
  EXPECT_TRUE(events_of(kScreening).empty());
  auto dead = events_of(kDeadLetter);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(str(dead[0], "/data/location/segment"), "PID");
  EXPECT_EQ(str(dead[0], "/data/error/code"), "102");
}

TEST_F(Hl7PipelineTest, UnsupportedCharacterSetIsArNamingMsh18) {
  auto ack = send(hvs_oru("UNICODE UTF-16", "Often true"));
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-2.1"), "MSH");
  EXPECT_EQ(field(ack, "ERR-2.3"), "18");
  EXPECT_EQ(events_of(kDeadLetter).size(), 1u);
}

TEST_F(Hl7PipelineTest, ProcessingIdOutsideTable0103IsArNamingMsh11) {
  auto message = hvs_oru("", "Often true");
  message.replace(message.find("|CS-1|P|"), 8, "|CS-1|RL8BH0000|");
  auto ack = send(message);
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-2.1"), "MSH");
  EXPECT_EQ(field(ack, "ERR-2.3"), "11");
  EXPECT_EQ(field(ack, "ERR-3.1"), "202");
  EXPECT_TRUE(events_of(kScreening).empty());
  // Training and debugging messages are taken as they are.
  auto training = hvs_oru("", "Often true");
  training.replace(training.find("|CS-1|P|"), 8, "|CS-2|T|");
  EXPECT_EQ(field(send(training), "MSA-1"), "AA");
}

// --- Time zones for times without an offset ---------------------------------------------

TEST_F(Hl7PipelineTest, TimesWithoutOffsetAreReadInTheSendersZone) {
  config::Hl7Config hl7;
  hl7.default_timezone = "America/New_York";
  hl7.senders["EHR^PEDS_CLINIC_A"].timezone = "America/Chicago";
  configure(hl7);
  send(hvs_oru("", "Often true", "20261120100000"));
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 1u);
  EXPECT_EQ(str(screenings[0], "/data/performed"), "2026-11-20T10:00:00-06:00");
}

TEST_F(Hl7PipelineTest, FacilityKeyAndDefaultZoneApplyToo) {
  config::Hl7Config hl7;
  hl7.default_timezone = "America/Denver";
  configure(hl7);
  send(hvs_oru("", "Often true", "20260701100000"));
  config::Hl7Config by_facility;
  by_facility.senders["PEDS_CLINIC_A"].timezone = "America/Los_Angeles";
  configure(by_facility);
  auto second = replace(hvs_oru("", "Often true", "20260701100000"), "|CS-1|", "|CS-2|");
  send(second);
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 2u);
  EXPECT_EQ(str(screenings[0], "/data/performed"), "2026-07-01T10:00:00-06:00");
  EXPECT_EQ(str(screenings[1], "/data/performed"), "2026-07-01T10:00:00-07:00");
}

TEST_F(Hl7PipelineTest, WithoutAZoneTimesWithoutOffsetStayDates) {
  send(hvs_oru("", "Often true", "20261120100000"));
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 1u);
  EXPECT_EQ(str(screenings[0], "/data/performed"), "2026-11-20");
}

// --- REF^I12 → referral -------------------------------------------------------------------

TEST_F(Hl7PipelineTest, RefSampleBecomesAReferralWithConsentedContact) {
  auto ack = send(sample("ref-i12-home-visiting.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "CA");  // MSH-15 AL: enhanced mode
  EXPECT_EQ(field(ack, "MSA-2"), "A1000003");
  // MSH-16 AL: the application ACK follows as its own message, with its own control id.
  EXPECT_EQ(split_answers(ack).size(), 2u);
  EXPECT_EQ(nth_field(ack, 1, "MSA-1"), "AA");
  EXPECT_EQ(nth_field(ack, 1, "MSA-2"), "A1000003");
  EXPECT_EQ(nth_field(ack, 1, "MSH-9"), "ACK^I12^ACK");
  EXPECT_EQ(nth_field(ack, 1, "MSH-16"), "NE");
  EXPECT_NE(nth_field(ack, 1, "MSH-10"), field(ack, "MSH-10"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  const auto& r = referrals[0];
  const auto id = str(r, "/data/referralId");
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(str(r, "/subject"), id);
  EXPECT_EQ(str(r, "/data/clinicReferralNumber/system"), "PEDS_A");
  EXPECT_EQ(str(r, "/data/clinicReferralNumber/value"), "REF-2026-0001");
  EXPECT_EQ(str(r, "/data/status"), "requested");
  EXPECT_EQ(str(r, "/data/businessStatus"), "<null>");
  EXPECT_EQ(str(r, "/data/category"), "food-insecurity");
  EXPECT_EQ(str(r, "/data/service/code"), "HV");
  EXPECT_EQ(str(r, "/data/priority"), "routine");
  EXPECT_EQ(str(r, "/data/agency/id"), "ehv-durham");
  EXPECT_EQ(str(r, "/data/agency/name"), "Early Start Home Visiting");
  EXPECT_EQ(str(r, "/data/agency/topic"), "sdoh.referral.v1");
  EXPECT_EQ(str(r, "/data/requester/id"), "1234567890");
  EXPECT_EQ(str(r, "/data/requester/system"), "http://hl7.org/fhir/sid/us-npi");
  EXPECT_EQ(str(r, "/data/requester/display"), "Dr Ana Rivera");
  EXPECT_EQ(str(r, "/data/requester/facility/id"), "PEDS_CLINIC_A");
  EXPECT_EQ(str(r, "/data/authoredOn"), "2026-11-20");
  EXPECT_EQ(str(r, "/data/patient/pseudonym").size(), 64u);
  EXPECT_EQ(str(r, "/data/patient/ageBand"), "0-11m");
  EXPECT_EQ(str(r, "/data/patient/zip3"), "277");
  EXPECT_EQ(str(r, "/data/consent/status"), "active");
  EXPECT_EQ(str(r, "/data/consent/source"), "hl7-con");
  EXPECT_EQ(str(r, "/data/consent/date"), "2026-11-20");
  EXPECT_EQ(str(r, "/data/contact/name/family"), "Garcia");
  EXPECT_EQ(str(r, "/data/contact/name/given/0"), "Sofia");
  EXPECT_EQ(str(r, "/data/contact/phone"), "+19195551234");
  EXPECT_EQ(str(r, "/data/contact/address/line/0"), "12 Elm St");
  EXPECT_EQ(str(r, "/data/contact/address/postalCode"), "27701");
  EXPECT_EQ(str(r, "/data/contact/preferredLanguage/code"), "spa");
  EXPECT_EQ(str(r, "/data/contact/guardian/name/given/0"), "Maria");
  EXPECT_EQ(str(r, "/data/contact/guardian/relationship/code"), "MTH");
  EXPECT_EQ(str(r, "/data/contact/guardian/phone"), "+19195551234");
  EXPECT_EQ(str(r, "/data/note"), "Family asked for help with food and housing");
  EXPECT_EQ(store_.events[0].key, id);
  EXPECT_EQ(store_.events[0].topic, "sdoh.referral.v1");
  // The MRN never leaves: only its pseudonym.
  EXPECT_EQ(store_.events[0].value.find("MRN12345"), std::string::npos);
}

TEST_F(Hl7PipelineTest, RefAlsoOpensTheReferralsStatusHistory) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 1u);
  const auto& s = statuses[0];
  EXPECT_EQ(str(s, "/data/status"), "requested");
  EXPECT_EQ(str(s, "/data/previousStatus"), "<null>");
  EXPECT_EQ(str(s, "/data/sequence"), "1");
  EXPECT_EQ(str(s, "/data/updatedBy/role"), "clinic");
  EXPECT_EQ(str(s, "/data/agency/id"), "ehv-durham");
  EXPECT_EQ(str(s, "/data/category"), "food-insecurity");
  EXPECT_EQ(store_.events[1].topic, "sdoh.referral-status.v1");
  EXPECT_EQ(str(s, "/data/referralId"), str(events_of(kReferral)[0], "/data/referralId"));
}

TEST_F(Hl7PipelineTest, RefWithoutConsentCarriesNoContactAndNoNote) {
  send(without(sample("ref-i12-home-visiting.hl7"), "CON"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/consent/status"), "none");
  EXPECT_EQ(str(referrals[0], "/data/consent/source"), "none");
  EXPECT_EQ(str(referrals[0], "/data/contact"), "<absent>");
  EXPECT_EQ(str(referrals[0], "/data/note"), "<null>");
  EXPECT_EQ(str(referrals[0], "/data/businessStatus"), "awaiting-consent");
  for (const auto& e : store_.events) {
    for (const char* phi : {"Garcia", "Sofia", "5551234", "Elm St", "MRN12345"})
      EXPECT_EQ(e.value.find(phi), std::string::npos) << phi << " in " << e.value;
  }
}

TEST_F(Hl7PipelineTest, RefusedConsentIsNoneAndRescindedIsRevoked) {
  send(replace(sample("ref-i12-home-visiting.hl7"), "A^Active^HL70498", "R^Refused^HL70498"));
  auto rescinded = replace(
      replace(sample("ref-i12-home-visiting.hl7"), "A^Active^HL70498", "X^Rescinded^HL70498"),
      "REF-2026-0001", "REF-2026-0002");
  send(replace(rescinded, "|A1000003|", "|A1000004|"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 2u);
  EXPECT_EQ(str(referrals[0], "/data/consent/status"), "none");
  EXPECT_EQ(str(referrals[1], "/data/consent/status"), "revoked");
  EXPECT_EQ(str(referrals[1], "/data/contact"), "<absent>");
}

TEST_F(Hl7PipelineTest, ClinicPolicyAllowsContactWithoutCon) {
  config::Hl7Config hl7;
  hl7.senders["EHR^PEDS_CLINIC_A"].contact_consent = "clinic-policy";
  configure(hl7);
  send(without(sample("ref-i12-home-visiting.hl7"), "CON"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/consent/status"), "active");
  EXPECT_EQ(str(referrals[0], "/data/consent/source"), "clinic-policy");
  EXPECT_EQ(str(referrals[0], "/data/contact/name/family"), "Garcia");
}

TEST_F(Hl7PipelineTest, ClinicPolicyDoesNotOverrideARefusingCon) {
  config::Hl7Config hl7;
  hl7.senders["EHR^PEDS_CLINIC_A"].contact_consent = "clinic-policy";
  configure(hl7);
  send(replace(sample("ref-i12-home-visiting.hl7"), "A^Active^HL70498", "R^Refused^HL70498"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/consent/source"), "hl7-con");
  EXPECT_EQ(str(referrals[0], "/data/contact"), "<absent>");
}

TEST_F(Hl7PipelineTest, NeedFromAnswersWhenObrNamesAPanelNotACategory) {
  send(replace(sample("ref-i12-home-visiting.hl7"), "food-insecurity^Food insecurity^SDOHCC",
               "88121-9^Hunger Vital Sign^LN"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/category"), "food-insecurity");
}

TEST_F(Hl7PipelineTest, RefWhoseNeedNothingTellsIsHeldUncategorisedNotRefused) {
  auto text = replace(sample("ref-i12-home-visiting.hl7"), "food-insecurity^Food insecurity^SDOHCC",
                      "88121-9^Hunger Vital Sign^LN");
  auto ack = send(replace(text, "LA28397-0^Often true", "LA28398-8^Never true"));
  // Enhanced mode: accepted, and the application accepts it too (held, not lost).
  EXPECT_EQ(field(ack, "MSA-1"), "CA");
  EXPECT_EQ(nth_field(ack, 1, "MSA-1"), "AA");
  EXPECT_TRUE(events_of(kReferral).empty());
  // The dead letter names the code to translate: RF1-5 HV (RF1-3 SDOH names no need).
  auto dead = events_of(kDeadLetter);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(str(dead[0], "/data/stage"), "map");
  EXPECT_EQ(str(dead[0], "/data/location/segment"), "RF1");
  EXPECT_NE(str(dead[0], "/data/error/text").find("from RF1-5 LOCAL|HV (sender"),
            std::string::npos);
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(str(statuses[0], "/data/businessStatus"), "uncategorised");
}

// RF1 is not in the message, so ERR-2 names MSH (RF1 belongs right after it); ERR-8 says which
// segment is missing.
TEST_F(Hl7PipelineTest, RefWithoutRf1IsRejectedNamingMshWithADeadLetter) {
  auto ack = send(replace(without(sample("ref-i12-home-visiting.hl7"), "RF1"), "|AL|AL", "||"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2"), "MSH^1");
  EXPECT_EQ(field(ack, "ERR-3.1"), "100");
  EXPECT_EQ(field(ack, "ERR-8"), "REF^I12 needs an RF1 segment");
  EXPECT_TRUE(events_of(kReferral).empty());
  auto dead = events_of(kDeadLetter);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(str(dead[0], "/data/location/segment"), "MSH");
  ASSERT_EQ(store_.dead_letters.size(), 1u);
}

TEST_F(Hl7PipelineTest, RefWithoutReferralNumberIsRejectedNamingRf16) {
  auto ack = send(replace(replace(sample("ref-i12-home-visiting.hl7"), "REF-2026-0001^PEDS_A", ""),
                          "|AL|AL", "||"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "6");
}

TEST_F(Hl7PipelineTest, UnknownPriorityIsTableValueNotFound) {
  auto ack = send(
      replace(replace(sample("ref-i12-home-visiting.hl7"), "R^Routine^HL70280", "Z^Someday^LOCAL"),
              "|AL|AL", "||"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.3"), "2");
  EXPECT_EQ(field(ack, "ERR-3.1"), "103");
}

// --- REF^I12 naming no agency: routed, or held ------------------------------------------------

TEST_F(Hl7PipelineTest, RefResendGetsTheStoredAnswerAndNoNewEvents) {
  auto first = send(sample("ref-i12-home-visiting.hl7"));
  auto again = send(sample("ref-i12-home-visiting.hl7"));
  EXPECT_EQ(again, first);
  EXPECT_EQ(events_of(kReferral).size(), 1u);
  EXPECT_EQ(events_of(kStatus).size(), 1u);
}

TEST_F(Hl7PipelineTest, SameReferralUnderANewControlIdIsAcknowledgedWithoutNewEvents) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(replace(sample("ref-i12-home-visiting.hl7"), "|A1000003|", "|A1000099|"));
  EXPECT_EQ(field(ack, "MSA-1"), "CA");
  EXPECT_EQ(events_of(kReferral).size(), 1u);
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"already-known\"}"),
            1u);
}

TEST_F(Hl7PipelineTest, EnhancedModeAnswersWhatMsh15AndMsh16AskFor) {
  const auto base = sample("oru-r01-ahc-hrsn-positive.hl7");  // MSH-15 AL, MSH-16 NE
  auto only_accept = send(base);
  EXPECT_EQ(split_answers(only_accept).size(), 1u);
  EXPECT_EQ(field(only_accept, "MSA-1"), "CA");
  // MSH-15 NE, MSH-16 AL: no accept ACK, only the application ACK.
  auto app_only = send(replace(replace(base, "|AL|NE", "|NE|AL"), "|A1000001|", "|A1000071|"));
  ASSERT_EQ(split_answers(app_only).size(), 1u);
  EXPECT_EQ(field(app_only, "MSA-1"), "AA");
  // MSH-16 ER: an application ACK only for an error.
  auto quiet = send(replace(replace(base, "|AL|NE", "|AL|ER"), "|A1000001|", "|A1000072|"));
  EXPECT_EQ(split_answers(quiet).size(), 1u);
  // A sender's ACK of our application ACK: consumed, nothing answered, nothing stored.
  const auto committed = store_.events.size() + store_.dead_letters.size();
  auto ack_of_ack = send(
      "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ACK^R01^ACK|X1|P|2.5.1\rMSA|AA|"
      "APP123\r");
  EXPECT_TRUE(ack_of_ack.empty());
  EXPECT_EQ(store_.events.size() + store_.dead_letters.size(), committed);
  EXPECT_EQ(counter("\nsdoh_hl7_acks_received_total"), 1u);
}

TEST_F(Hl7PipelineTest, EnhancedModeAlAlIsCaThenAaAfterTheCommit) {
  const auto text = replace(sample("oru-r01-ahc-hrsn-positive.hl7"), "|AL|NE", "|AL|AL");
  auto answers = send(text);
  ASSERT_EQ(split_answers(answers).size(), 2u) << answers;
  EXPECT_EQ(nth_field(answers, 0, "MSA-1"), "CA");
  EXPECT_EQ(nth_field(answers, 0, "MSA-2"), "A1000001");
  EXPECT_EQ(nth_field(answers, 1, "MSA-1"), "AA");
  EXPECT_EQ(nth_field(answers, 1, "MSA-2"), "A1000001");
  EXPECT_EQ(nth_field(answers, 1, "MSH-9"), "ACK^R01^ACK");
  EXPECT_EQ(nth_field(answers, 1, "MSH-15"), "NE");
  EXPECT_EQ(nth_field(answers, 1, "MSH-16"), "NE");
  EXPECT_EQ(nth_field(answers, 1, "MSH-10"), "APP" + nth_field(answers, 0, "MSH-10").substr(3));
  EXPECT_EQ(store_.commits, 1);
  EXPECT_EQ(store_.answer_codes, std::vector<std::string>{"CA"});
  EXPECT_EQ(events_of(kScreening).size(), 1u);
}

TEST_F(Hl7PipelineTest, EnhancedModeResendGetsBothStoredAnswersAgainAndNoNewEvents) {
  const auto text = replace(sample("oru-r01-ahc-hrsn-positive.hl7"), "|AL|NE", "|AL|AL");
  auto first = send(text);
  auto again = send(text);
  EXPECT_EQ(again, first);
  EXPECT_EQ(split_answers(again).size(), 2u);
  EXPECT_EQ(events_of(kScreening).size(), 1u);
  EXPECT_EQ(counter("\nsdoh_hl7_duplicates_total"), 1u);
}

TEST_F(Hl7PipelineTest, EnhancedModeRejectedResendGetsTheSameCaAndAe) {
  auto text = replace(sample("bad-missing-obx-code.hl7"), "|P|2.5.1", "|P|2.5.1|||AL|AL");
  auto first = send(text);
  ASSERT_EQ(split_answers(first).size(), 2u) << first;
  EXPECT_EQ(nth_field(first, 0, "MSA-1"), "CA");
  EXPECT_EQ(nth_field(first, 1, "MSA-1"), "AE");
  EXPECT_EQ(nth_field(first, 1, "ERR-2"), "OBX^1^3");
  EXPECT_EQ(send(text), first);
  EXPECT_EQ(store_.dead_letters.size(), 1u);
  // The store records what the answer amounts to: a refusal, so delivery.ack=delivered does not
  // wait for the dead letter's publication.
  EXPECT_EQ(store_.answer_codes, std::vector<std::string>{"AE"});
}

TEST_F(Hl7PipelineTest, EnhancedModeUnsupportedTypeIsCrWithoutAnApplicationAck) {
  auto text = replace(sample("bad-unsupported-type.hl7"), "|P|2.5.1", "|P|2.5.1|||AL|AL");
  auto answers = send(text);
  ASSERT_EQ(split_answers(answers).size(), 1u) << answers;
  EXPECT_EQ(field(answers, "MSA-1"), "CR");
  EXPECT_EQ(field(answers, "MSA-2"), "A1000009");
  EXPECT_EQ(field(answers, "ERR-2"), "MSH^1^9");
  EXPECT_EQ(field(answers, "ERR-3.1"), "200");
  EXPECT_EQ(store_.dead_letters.size(), 1u);
  EXPECT_EQ(store_.answer_codes, std::vector<std::string>{"CR"});
}

TEST_F(Hl7PipelineTest, EnhancedModeStoreFailureIsCeAndNeverAPositiveAnswer) {
  store_.fail = Error::unavailable("the disk is full");
  const auto text = replace(sample("oru-r01-ahc-hrsn-positive.hl7"), "|AL|NE", "|AL|AL");
  auto answers = send(text);
  ASSERT_EQ(split_answers(answers).size(), 1u) << answers;
  EXPECT_EQ(field(answers, "MSA-1"), "CE");
  EXPECT_EQ(field(answers, "ERR-3.1"), "207");
  EXPECT_NE(field(answers, "ERR-8").find("try again later"), std::string::npos);
  EXPECT_EQ(answers.find("MSA|AA"), std::string::npos);
  EXPECT_EQ(answers.find("MSA|CA"), std::string::npos);
}

TEST_F(Hl7PipelineTest, StoreFailureWithoutAnAcceptAckIsReportedByTheApplicationAck) {
  // MSH-15 NE, MSH-16 AL: the sender relies on the application ACK alone.
  store_.fail = Error::unavailable("the disk is full");
  const auto text = replace(sample("oru-r01-ahc-hrsn-positive.hl7"), "|AL|NE", "|NE|AL");
  auto answers = send(text);
  ASSERT_EQ(split_answers(answers).size(), 1u) << answers;
  EXPECT_EQ(field(answers, "MSA-1"), "AE");
  EXPECT_EQ(field(answers, "MSH-16"), "NE");
  EXPECT_EQ(field(answers, "ERR-3.1"), "207");
  EXPECT_NE(field(answers, "ERR-8").find("try again later"), std::string::npos);
}

TEST_F(Hl7PipelineTest, SendersAckIsConsumedWhateverItsHeaderHolds) {
  // An ACK with values that would get any other message refused (MSH-11, MSH-18) and asking
  // for acknowledgments itself: still never answered, stored or dead-lettered.
  auto answer = send(
      "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ACK^R01^ACK|X2|Q|2.5.1|||AL|AL||"
      "KLINGON\rMSA|AA|APP123\r");
  EXPECT_TRUE(answer.empty()) << answer;
  auto bare = send(
      "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ACK|X3|P|2.5.1\rMSA|CA|"
      "APP124\r");
  EXPECT_TRUE(bare.empty()) << bare;
  EXPECT_EQ(store_.commits, 0);
  EXPECT_TRUE(store_.events.empty());
  EXPECT_TRUE(store_.dead_letters.empty());
  EXPECT_EQ(counter("\nsdoh_hl7_acks_received_total"), 2u);
  EXPECT_EQ(counter("\nsdoh_hl7_parse_errors_total"), 0u);
}

TEST_F(Hl7PipelineTest, BatchAnswerCountsEveryAckItHolds) {
  // The first message asks for both acknowledgments, the second is in original mode.
  const auto batch =
      replace(sample("batch-two-screenings.hl7"), "|B2000101|P|2.5.1", "|B2000101|P|2.5.1|||AL|AL");
  auto answer = send(batch);
  ASSERT_EQ(answer.rfind("BHS|", 0), 0u) << answer;
  EXPECT_NE(answer.find("\rMSA|CA|B2000101\r"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\rMSA|AA|B2000101\r"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\rMSA|AA|B2000102\r"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\rBTS|3\r"), std::string::npos) << answer;
}

TEST(SplitAnswers, OneFramePerMessageBatchesWhole) {
  EXPECT_TRUE(split_answers("").empty());
  auto two = split_answers("MSH|a\rMSA|CA|1\rMSH|b\rMSA|AA|1\r");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], "MSH|a\rMSA|CA|1\r");
  EXPECT_EQ(two[1], "MSH|b\rMSA|AA|1\r");
  EXPECT_EQ(split_answers("BHS|x\rMSH|a\rMSH|b\rBTS|2\r").size(), 1u);
}

// --- RRI^I12 → referral status ------------------------------------------------------------

TEST_F(Hl7PipelineTest, OtherMessageTypesAreStillRefused) {
  auto ack = send(sample("bad-unsupported-type.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-2.3"), "9");
}

}  // namespace
}  // namespace sdoh::hl7v2
