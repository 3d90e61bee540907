#include "adapters/hl7v2/ack.hpp"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "adapters/hl7v2/mllp_framer.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::hl7v2 {
namespace {

Message sample(const std::string& name) {
  auto m = Message::parse(test::shared_sample("hl7v2", name));
  EXPECT_TRUE(m) << m.error().message;
  return std::move(*m);
}

const AckOptions kOptions{"ACK-1", "20261125030000+0000", "SDOH_GW", "", ""};

std::string field(const std::string& ack, const std::string& path) {
  auto m = Message::parse(ack);
  EXPECT_TRUE(m) << "the ACK must itself parse: " << ack;
  return m ? m->get(path) : std::string();
}

TEST(AckBuilder, EnhancedModeAcceptAckEchoesControlId) {
  auto msg = sample("oru-r01-ahc-hrsn-positive.hl7");
  ASSERT_TRUE(enhanced_mode(msg));
  auto ack = build_ack(msg, AckCode::kCA, std::nullopt, kOptions);
  EXPECT_EQ(field(ack, "MSA-1"), "CA");
  EXPECT_EQ(field(ack, "MSA-2"), "A1000001");
}

TEST(AckBuilder, SwapsSenderAndReceiverKeepsVersionAndProcessingId) {
  auto ack = build_ack(sample("oru-r01-hunger-vital-sign-negative.hl7"), AckCode::kAA, std::nullopt,
                       kOptions);
  EXPECT_EQ(field(ack, "MSH-3"), "SDOH_GW");
  EXPECT_EQ(field(ack, "MSH-4"), "STATE_EC");
  EXPECT_EQ(field(ack, "MSH-5"), "EHR");
  EXPECT_EQ(field(ack, "MSH-6"), "PEDS_CLINIC_B");
  EXPECT_EQ(field(ack, "MSH-9"), "ACK^R01^ACK");
  EXPECT_EQ(field(ack, "MSH-10"), "ACK-1");
  EXPECT_EQ(field(ack, "MSH-11"), "P");
  EXPECT_EQ(field(ack, "MSH-12"), "2.5.1");
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(ack.find("ERR"), std::string::npos);
}

TEST(AckBuilder, Msa2EchoesTheControlIdAsSentWithEscapes) {
  auto msg = sample("oru-r01-escapes-crlf-v23.hl7");
  auto ack = build_ack(msg, AckCode::kAA, std::nullopt, kOptions);
  EXPECT_NE(ack.find("\rMSA|AA|C3\\T\\01\r"), std::string::npos) << ack;
  EXPECT_EQ(field(ack, "MSH-12"), "2.3");
}

TEST(AckBuilder, ErrorAckNamesSegmentFieldAndTable0357Code) {
  auto msg = sample("bad-missing-obx-code.hl7");
  Location where;
  where.segment = "OBX";
  where.sequence = 1;
  where.field = 3;
  auto ack = build_ack(msg, AckCode::kAE,
                       AckError{ErrorCondition::kRequiredFieldMissing, where,
                                "OBX-3 observation identifier is empty"},
                       kOptions);
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "MSA-2"), "A1000010");
  EXPECT_EQ(field(ack, "ERR-2"), "OBX^1^3");
  EXPECT_EQ(field(ack, "ERR-3.1"), "101");
  EXPECT_EQ(field(ack, "ERR-3.2"), "Required field missing");
  EXPECT_EQ(field(ack, "ERR-3.3"), "HL70357");
  EXPECT_EQ(field(ack, "ERR-4"), "E");
  EXPECT_EQ(field(ack, "ERR-8"), "OBX-3 observation identifier is empty");
}

TEST(AckBuilder, UnsupportedTypeIsArInOriginalMode) {
  auto msg = sample("bad-unsupported-type.hl7");
  Location where;
  where.segment = "MSH";
  where.sequence = 1;
  where.field = 9;
  auto refusal =
      refusal_for(Error::unsupported("ADT^A01 is not a message this gateway accepts", where));
  EXPECT_EQ(refusal.code, AckCode::kAR);
  EXPECT_EQ(refusal.error.condition, ErrorCondition::kUnsupportedMessageType);
  auto ack = build_ack(msg, refusal.code, refusal.error, kOptions);
  EXPECT_EQ(field(ack, "ERR-2"), "MSH^1^9");
  EXPECT_EQ(field(ack, "ERR-3.1"), "200");
  EXPECT_EQ(field(ack, "MSH-9"), "ACK^A01^ACK");
}

// --- refusal_for: an Error in HL7 terms ------------------------------------------------------

TEST(Refusal, UnsupportedHeaderFieldsAreCommitRejects) {
  const std::pair<int, ErrorCondition> cases[] = {{9, ErrorCondition::kUnsupportedMessageType},
                                                  {11, ErrorCondition::kUnsupportedProcessingId},
                                                  {12, ErrorCondition::kUnsupportedVersionId}};
  for (const auto& [msh_field, condition] : cases) {
    const Location where{"MSH", 1, msh_field, 0, ""};
    const auto r = refusal_for(Error::unsupported("not taken", where));
    EXPECT_EQ(r.code, AckCode::kAR) << msh_field;
    EXPECT_EQ(r.acceptance, Acceptance::kCommitRejected) << msh_field;
    EXPECT_EQ(r.error.condition, condition) << msh_field;
  }
}

TEST(Refusal, UnsupportedCharacterSetIsAnApplicationRejectOfACommittedMessage) {
  const Location msh18{"MSH", 1, 18, 0, ""};
  const auto r = refusal_for(Error::unsupported("charset", msh18));
  EXPECT_EQ(r.code, AckCode::kAR);
  EXPECT_EQ(r.acceptance, Acceptance::kCommitted);
  EXPECT_EQ(r.error.condition, ErrorCondition::kTableValueNotFound);
}

TEST(Refusal, InvalidContentIsAnApplicationErrorOfACommittedMessage) {
  const Location obx3{"OBX", 1, 3, 0, ""};
  const auto r = refusal_for(Error::invalid(obx3, "OBX-3 observation identifier is empty"));
  EXPECT_EQ(r.code, AckCode::kAE);
  EXPECT_EQ(r.acceptance, Acceptance::kCommitted);
  EXPECT_EQ(r.error.condition, ErrorCondition::kRequiredFieldMissing);
  EXPECT_EQ(r.error.text, "OBX-3 observation identifier is empty");
}

TEST(Refusal, UnavailableIsNotCommittedAndAskedToBeResent) {
  const auto r = refusal_for(Error::unavailable("store cannot write"));
  EXPECT_EQ(r.code, AckCode::kAE);
  EXPECT_EQ(r.acceptance, Acceptance::kNotCommitted);
  EXPECT_EQ(r.error.condition, ErrorCondition::kApplicationRecordLocked);
}

TEST(AckBuilder, AcceptAckRequestFollowsMsh15) {
  auto al = sample("oru-r01-ahc-hrsn-positive.hl7");  // MSH-15 AL
  EXPECT_TRUE(accept_ack_requested(al, true));
  auto m = Message::parse("MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5.1|||ER|NE\r");
  ASSERT_TRUE(m);
  EXPECT_FALSE(accept_ack_requested(*m, true));
  EXPECT_TRUE(accept_ack_requested(*m, false));
}

TEST(AckBuilder, ErrorTextIsEscaped) {
  auto msg = sample("oru-r01-corrected.hl7");
  auto ack =
      build_ack(msg, AckCode::kAE,
                AckError{ErrorCondition::kDataTypeError, {}, "bad | value ^ here"}, kOptions);
  EXPECT_EQ(field(ack, "ERR-8"), "bad | value ^ here");
}

TEST(AckBuilder, NotHl7GetsArWithEmptyMsa2) {
  auto ack = build_unparseable_ack(
      Error::invalid({"MSH", 1, 0, 0, ""}, "the message does not start with an MSH segment"),
      kOptions);
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "MSA-2"), "");
  EXPECT_EQ(field(ack, "ERR-2"), "MSH^1");
  EXPECT_EQ(field(ack, "ERR-3.1"), "100");
}

TEST(AckBuilder, UnusableDelimitersGetArWithErr102NamingTheField) {
  // The start block 0x0B as MSH-1: the refusal is written with the standard delimiters, so
  // no framing byte reaches the answer.
  std::string text = "MSH\x0b^~\\&\x0bEHR\x0bPEDS_CLINIC_A\r";
  auto parsed = Message::parse(text);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(unparseable_condition(parsed.error()), ErrorCondition::kDataTypeError);
  auto ack = build_unparseable_ack(parsed.error(), kOptions);
  EXPECT_EQ(ack.find('\x0b'), std::string::npos);
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-2"), "MSH^1^1");
  EXPECT_EQ(field(ack, "ERR-3.1"), "102");
}

// --- plan_acks: which answers MSH-15/MSH-16 ask for (HL7 table 0155) ------------------------

Message header(const std::string& msh15, const std::string& msh16) {
  auto m = Message::parse(
      "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ORU^R01^ORU_R01|"
      "M-1|P|2.5.1|||" +
      msh15 + "|" + msh16 + "\rPID|1||MRN1^^^A^MR\rOBR|1\rOBX|1|CWE|\r");
  EXPECT_TRUE(m);
  return std::move(*m);
}

struct PlanCase {
  const char* msh15;
  const char* msh16;
  AckCode code;  // the original-mode outcome
  Acceptance acceptance;
  const char* accept;       // "" = no accept ACK
  const char* application;  // "" = no application ACK
  const char* summary;
};

std::string describe(const PlanCase& c) {
  return std::string("MSH-15 '") + c.msh15 + "' MSH-16 '" + c.msh16 + "' outcome " +
         std::string(to_string(c.code)) + " acceptance " +
         std::to_string(static_cast<int>(c.acceptance));
}

void expect_plan(const PlanCase& c) {
  const auto plan = plan_acks(header(c.msh15, c.msh16), c.code, c.acceptance);
  EXPECT_EQ(plan.accept ? std::string(to_string(*plan.accept)) : "", c.accept) << describe(c);
  EXPECT_EQ(plan.application ? std::string(to_string(*plan.application)) : "", c.application)
      << describe(c);
  EXPECT_EQ(to_string(plan.summary), c.summary) << describe(c);
}

constexpr auto kAA = AckCode::kAA;
constexpr auto kAE = AckCode::kAE;
constexpr auto kAR = AckCode::kAR;
constexpr auto kCommitted = Acceptance::kCommitted;
constexpr auto kCommitRejected = Acceptance::kCommitRejected;
constexpr auto kNotCommitted = Acceptance::kNotCommitted;

TEST(AckPlan, OriginalModeIsOneAckWithTheOutcome) {
  for (const auto& c : {
           PlanCase{"", "", kAA, kCommitted, "", "AA", "AA"},
           PlanCase{"", "", kAE, kCommitted, "", "AE", "AE"},
           PlanCase{"", "", kAR, kCommitRejected, "", "AR", "AR"},
           PlanCase{"", "", kAE, kNotCommitted, "", "AE", "AE"},
       }) {
    expect_plan(c);
  }
}

TEST(AckPlan, CommittedAndProcessedIsCaThenAaWhereAsked) {
  for (const auto& c : {
           PlanCase{"AL", "AL", kAA, kCommitted, "CA", "AA", "CA"},
           PlanCase{"AL", "NE", kAA, kCommitted, "CA", "", "CA"},
           PlanCase{"AL", "ER", kAA, kCommitted, "CA", "", "CA"},
           PlanCase{"AL", "SU", kAA, kCommitted, "CA", "AA", "CA"},
           PlanCase{"AL", "", kAA, kCommitted, "CA", "", "CA"},
           PlanCase{"NE", "AL", kAA, kCommitted, "", "AA", "CA"},
           PlanCase{"NE", "NE", kAA, kCommitted, "", "", "CA"},
           PlanCase{"ER", "AL", kAA, kCommitted, "", "AA", "CA"},
           PlanCase{"ER", "ER", kAA, kCommitted, "", "", "CA"},
           PlanCase{"SU", "AL", kAA, kCommitted, "CA", "AA", "CA"},
           PlanCase{"SU", "SU", kAA, kCommitted, "CA", "AA", "CA"},
           // An empty MSH-15 next to a valued MSH-16 is enhanced mode with an accept ACK.
           PlanCase{"", "AL", kAA, kCommitted, "CA", "AA", "CA"},
           PlanCase{"", "NE", kAA, kCommitted, "CA", "", "CA"},
       }) {
    expect_plan(c);
  }
}

TEST(AckPlan, RefusedContentIsStillCaThenTheApplicationAckSaysWhy) {
  for (const auto& c : {
           PlanCase{"AL", "AL", kAE, kCommitted, "CA", "AE", "AE"},
           PlanCase{"AL", "ER", kAE, kCommitted, "CA", "AE", "AE"},
           PlanCase{"AL", "SU", kAE, kCommitted, "CA", "", "AE"},
           PlanCase{"AL", "NE", kAE, kCommitted, "CA", "", "AE"},
           PlanCase{"ER", "AL", kAE, kCommitted, "", "AE", "AE"},  // the commit was no error
           PlanCase{"SU", "ER", kAR, kCommitted, "CA", "AR", "AR"},
           PlanCase{"NE", "ER", kAR, kCommitted, "", "AR", "AR"},
           PlanCase{"NE", "NE", kAE, kCommitted, "", "", "AE"},
       }) {
    expect_plan(c);
  }
}

TEST(AckPlan, UnacceptableHeaderIsCrAndNoApplicationAckFollows) {
  for (const auto& c : {
           PlanCase{"AL", "AL", kAR, kCommitRejected, "CR", "", "CR"},
           PlanCase{"AL", "ER", kAR, kCommitRejected, "CR", "", "CR"},
           PlanCase{"ER", "AL", kAR, kCommitRejected, "CR", "", "CR"},
           PlanCase{"ER", "NE", kAR, kCommitRejected, "CR", "", "CR"},
           PlanCase{"", "AL", kAR, kCommitRejected, "CR", "", "CR"},
       }) {
    expect_plan(c);
  }
}

TEST(AckPlan, NothingStoredIsCeAndNoApplicationAckFollows) {
  for (const auto& c : {
           PlanCase{"AL", "AL", kAE, kNotCommitted, "CE", "", "CE"},
           PlanCase{"ER", "NE", kAE, kNotCommitted, "CE", "", "CE"},
           PlanCase{"ER", "ER", kAE, kNotCommitted, "CE", "", "CE"},
       }) {
    expect_plan(c);
  }
}

TEST(AckPlan, ARefusalWithoutAnAcceptAckGoesToTheApplicationAckWhenErrorsAreAsked) {
  for (const auto& c : {
           PlanCase{"SU", "AL", kAR, kCommitRejected, "", "AR", "CR"},
           PlanCase{"NE", "ER", kAR, kCommitRejected, "", "AR", "CR"},
           PlanCase{"SU", "ER", kAE, kNotCommitted, "", "AE", "CE"},
           PlanCase{"NE", "AL", kAE, kNotCommitted, "", "AE", "CE"},
           // ... and only then: the sender that asked for nothing on error gets nothing.
           PlanCase{"NE", "SU", kAR, kCommitRejected, "", "", "CR"},
           PlanCase{"NE", "NE", kAE, kNotCommitted, "", "", "CE"},
           PlanCase{"SU", "SU", kAE, kNotCommitted, "", "", "CE"},
       }) {
    expect_plan(c);
  }
}

TEST(AckPlan, UnknownMsh15ValueAnswersUnknownMsh16ValueKeepsQuiet) {
  // Table 0155 has AL, NE, ER and SU only. An unknown MSH-15 still gets the accept ACK (one
  // answer per message, as in original mode); an unknown MSH-16 never produces a second message
  // a sender may not expect.
  expect_plan({"XX", "", kAA, kCommitted, "CA", "", "CA"});
  expect_plan({"AL", "XX", kAA, kCommitted, "CA", "", "CA"});
  expect_plan({"AL", "XX", kAE, kCommitted, "CA", "", "AE"});
}

// --- build_answers: the messages themselves ------------------------------------------------

TEST(AckAnswers, ApplicationAckIsItsOwnMessageWithItsOwnControlId) {
  const auto m = header("AL", "AL");
  const auto answers =
      build_answers(m, plan_acks(m, AckCode::kAA, Acceptance::kCommitted), std::nullopt,
                    {"ACK0123456789abcdef0", "20261125030000+0000", "SDOH_GW", "", ""});
  const auto parts = split_answers(answers);
  ASSERT_EQ(parts.size(), 2u) << answers;
  const auto accept = std::string(parts[0]), app = std::string(parts[1]);
  EXPECT_EQ(field(accept, "MSA-1"), "CA");
  EXPECT_EQ(field(accept, "MSA-2"), "M-1");
  EXPECT_EQ(field(accept, "MSH-10"), "ACK0123456789abcdef0");
  EXPECT_EQ(field(app, "MSA-1"), "AA");
  EXPECT_EQ(field(app, "MSA-2"), "M-1");
  EXPECT_EQ(field(app, "MSH-9"), "ACK^R01^ACK");
  EXPECT_EQ(field(app, "MSH-10"), "APP0123456789abcdef0");
  EXPECT_EQ(field(app, "MSH-15"), "NE");
  EXPECT_EQ(field(app, "MSH-16"), "NE");
  EXPECT_EQ(field(app, "MSH-5"), "EHR");
  EXPECT_EQ(app.find("\rERR"), std::string::npos);
}

TEST(AckAnswers, RefusedContentHasErrOnlyOnTheApplicationAck) {
  const auto m = header("AL", "AL");
  const AckError err{ErrorCondition::kRequiredFieldMissing, {"OBX", 1, 3, 0, ""}, "OBX-3 empty"};
  const auto answers =
      build_answers(m, plan_acks(m, AckCode::kAE, Acceptance::kCommitted), err, kOptions);
  const auto parts = split_answers(answers);
  ASSERT_EQ(parts.size(), 2u) << answers;
  EXPECT_EQ(field(std::string(parts[0]), "MSA-1"), "CA");
  EXPECT_EQ(parts[0].find("\rERR"), std::string_view::npos);
  EXPECT_EQ(field(std::string(parts[1]), "MSA-1"), "AE");
  EXPECT_EQ(field(std::string(parts[1]), "ERR-2"), "OBX^1^3");
  EXPECT_EQ(field(std::string(parts[1]), "ERR-3.1"), "101");
}

TEST(AckAnswers, CommitRejectCarriesTheErr) {
  const auto m = header("AL", "AL");
  const AckError err{ErrorCondition::kUnsupportedMessageType, {"MSH", 1, 9, 0, ""}, "ADT^A01"};
  const auto answers =
      build_answers(m, plan_acks(m, AckCode::kAR, Acceptance::kCommitRejected), err, kOptions);
  ASSERT_EQ(split_answers(answers).size(), 1u) << answers;
  EXPECT_EQ(field(answers, "MSA-1"), "CR");
  EXPECT_EQ(field(answers, "ERR-2"), "MSH^1^9");
  EXPECT_EQ(field(answers, "ERR-3.1"), "200");
}

TEST(AckAnswers, OriginalModeAckValuesNoMsh15Or16) {
  const auto m = header("", "");
  const auto answers =
      build_answers(m, plan_acks(m, AckCode::kAA, Acceptance::kCommitted), std::nullopt, kOptions);
  ASSERT_EQ(split_answers(answers).size(), 1u);
  EXPECT_EQ(field(answers, "MSA-1"), "AA");
  EXPECT_EQ(field(answers, "MSH-10"), "ACK-1");
  EXPECT_EQ(field(answers, "MSH-15"), "");
  EXPECT_EQ(field(answers, "MSH-16"), "");
}

TEST(AckAnswers, NothingAskedIsNothingSent) {
  const auto m = header("NE", "NE");
  EXPECT_EQ(
      build_answers(m, plan_acks(m, AckCode::kAA, Acceptance::kCommitted), std::nullopt, kOptions),
      "");
}

TEST(ErrorCondition, EveryCodeHasADescription) {
  for (int code : {0, 100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207}) {
    EXPECT_FALSE(description(static_cast<ErrorCondition>(code)).empty()) << code;
  }
  EXPECT_EQ(description(ErrorCondition::kUnsupportedMessageType), "Unsupported message type");
}

}  // namespace
}  // namespace sdoh::hl7v2

namespace sdoh::hl7v2 {
namespace {

// An ORU header with MSH-11 and MSH-12 as given (MSH-12 as sent, components included).
Message with_header(const std::string& msh11, const std::string& msh12) {
  auto m = Message::parse("MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ORU^R01|M-1|" +
                          msh11 + "|" + msh12 + "\rPID|1||MRN1^^^A^MR\rOBR|1\rOBX|1|NM|1^Q^LN||\r");
  EXPECT_TRUE(m);
  return std::move(*m);
}

class AcceptedVersion : public ::testing::TestWithParam<std::string_view> {};

TEST_P(AcceptedVersion, PassesTheHeaderCheck) {
  EXPECT_EQ(check_header(with_header("P", std::string(GetParam()))), std::nullopt);
}

INSTANTIATE_TEST_SUITE_P(Msh12, AcceptedVersion, ::testing::ValuesIn(kSupportedVersions));

TEST(HeaderCheck, VersionWithInternationalComponentsIsReadByItsFirstComponent) {
  EXPECT_EQ(check_header(with_header("P", "2.5.1^USA^2.5.1")), std::nullopt);
  EXPECT_NE(check_header(with_header("P", "9.9^USA")), std::nullopt);
}

struct RefusedHeader {
  const char* msh11;
  const char* msh12;
  ErrorCondition condition;
  int field;
};

class RefusedHeaderField : public ::testing::TestWithParam<RefusedHeader> {};

// Every refused header is kUnsupported at its MSH field, so refusal_for makes it AR/CR.
TEST_P(RefusedHeaderField, IsACommitRejectNamingTheField) {
  const auto& c = GetParam();
  const auto refused = check_header(with_header(c.msh11, c.msh12));
  ASSERT_TRUE(refused) << c.msh11 << " " << c.msh12;
  EXPECT_EQ(refused->condition, c.condition);
  EXPECT_EQ(refused->error.where.segment, "MSH");
  EXPECT_EQ(refused->error.where.field, c.field);
  const auto refusal = refusal_for(refused->error);
  EXPECT_EQ(refusal.code, AckCode::kAR);
  EXPECT_EQ(refusal.acceptance, Acceptance::kCommitRejected);
}

INSTANTIATE_TEST_SUITE_P(
    Msh11And12, RefusedHeaderField,
    ::testing::Values(RefusedHeader{"P", "9.9", ErrorCondition::kUnsupportedVersionId, 12},
                      RefusedHeader{"P", "2.2", ErrorCondition::kUnsupportedVersionId, 12},
                      RefusedHeader{"P", "2.9", ErrorCondition::kUnsupportedVersionId, 12},
                      RefusedHeader{"P", "2.5.1.1", ErrorCondition::kUnsupportedVersionId, 12},
                      RefusedHeader{"P", "251", ErrorCondition::kUnsupportedVersionId, 12},
                      RefusedHeader{"P", "", ErrorCondition::kRequiredFieldMissing, 12},
                      RefusedHeader{"P", "^USA", ErrorCondition::kRequiredFieldMissing, 12},
                      RefusedHeader{"X", "2.5.1", ErrorCondition::kUnsupportedProcessingId, 11},
                      // MSH-11 is read first: both wrong names MSH-11.
                      RefusedHeader{"X", "9.9", ErrorCondition::kUnsupportedProcessingId, 11}));

TEST(HeaderCheck, TheAckForAnUnsupportedVersionIsArWithErr203NamingMsh12) {
  const auto m = with_header("P", "9.9");
  const auto refused = check_header(m);
  ASSERT_TRUE(refused);
  const AckError err{refused->condition, refused->error.where, refused->error.message};
  const auto ack = build_ack(m, AckCode::kAR, err, kOptions);
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-2"), "MSH^1^12^1^1");
  EXPECT_EQ(field(ack, "ERR-3.1"), "203");
  EXPECT_EQ(field(ack, "ERR-3.3"), "HL70357");
}

// v2.3 and v2.4 have only ERR-1 (ELD): it says the same as ERR-2 and ERR-3 for those senders.
TEST(ErrLegacy, AV23MessageGetsErr1AsWellAsErr2And3) {
  const AckError err{ErrorCondition::kRequiredFieldMissing, {"PID", 1, 3, 0, ""}, "PID-3 empty"};
  const auto v23 = build_ack(with_header("P", "2.3"), AckCode::kAE, err, kOptions);
  EXPECT_EQ(field(v23, "ERR-1"), "PID^1^3^101&Required field missing&HL70357");
  EXPECT_EQ(field(v23, "ERR-2"), "PID^1^3");
  EXPECT_EQ(field(v23, "ERR-3.1"), "101");
  EXPECT_EQ(field(build_ack(with_header("P", "2.4"), AckCode::kAE, err, kOptions), "ERR-1.4.1"),
            "101");
  EXPECT_EQ(field(build_ack(with_header("P", "2.5.1"), AckCode::kAE, err, kOptions), "ERR-1"), "");
}

TEST(ErrLocation, ASegmentTheMessageDoesNotHoldIsNamedAsMsh) {
  const auto m = with_header("P", "2.5.1");
  EXPECT_TRUE(location_exists(m, {"OBX", 1, 5, 0, ""}));
  EXPECT_FALSE(location_exists(m, {"OBX", 2, 5, 0, ""}));
  EXPECT_FALSE(location_exists(m, {"RF1", 1, 6, 0, ""}));
  EXPECT_FALSE(location_exists(m, {}));
  EXPECT_EQ(locate_in(m, {"PID", 1, 3, 0, ""}).segment, "PID");
  const auto moved = locate_in(m, {"RF1", 1, 6, 0, ""});
  EXPECT_EQ(moved.segment, "MSH");
  EXPECT_EQ(moved.sequence, 1);
  EXPECT_EQ(moved.field, 0);
  // The ACK applies it too: no ERR names a segment that was not sent.
  const AckError err{ErrorCondition::kSegmentSequenceError, {"OBR", 7, 4, 0, ""}, "x"};
  EXPECT_EQ(field(build_ack(m, AckCode::kAE, err, kOptions), "ERR-2"), "MSH^1");
}

TEST(ErrCondition, InvalidInputIsCodedFromWhatTheMessageHoldsThere) {
  const auto m = with_header("P", "2.5.1");
  EXPECT_EQ(invalid_condition(m, {"PID", 1, 0, 0, ""}), ErrorCondition::kSegmentSequenceError);
  EXPECT_EQ(invalid_condition(m, {"RF1", 1, 6, 0, ""}), ErrorCondition::kSegmentSequenceError);
  EXPECT_EQ(invalid_condition(m, {"OBX", 1, 5, 0, ""}), ErrorCondition::kRequiredFieldMissing);
  EXPECT_EQ(invalid_condition(m, {"PID", 1, 9, 0, ""}), ErrorCondition::kRequiredFieldMissing);
  EXPECT_EQ(invalid_condition(m, {"OBX", 1, 2, 0, ""}), ErrorCondition::kDataTypeError);
  EXPECT_EQ(invalid_condition(m, {"PID", 1, 3, 1, ""}), ErrorCondition::kTableValueNotFound);
}

TEST(ErrCondition, UnparseableMessagesWithoutTypeOrControlIdMissARequiredField) {
  for (const int f : {9, 10}) {
    EXPECT_EQ(unparseable_condition(Error::invalid({"MSH", 1, f, 0, ""}, "empty")),
              ErrorCondition::kRequiredFieldMissing);
  }
  EXPECT_EQ(unparseable_condition(Error::invalid({"MSH", 1, 2, 0, ""}, "x")),
            ErrorCondition::kDataTypeError);
  EXPECT_EQ(unparseable_condition(Error::invalid({"MSH", 1, 0, 0, ""}, "x")),
            ErrorCondition::kSegmentSequenceError);
}

}  // namespace
}  // namespace sdoh::hl7v2
