#include "adapters/hl7v2/ack.hpp"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace sdoh::hl7v2 {
namespace {

Message sample(const std::string& name) {
  std::ifstream in(std::string(SDOH_SHARED_SAMPLES_DIR) + "/hl7v2/" + name, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  auto m = Message::parse(s.str());
  EXPECT_TRUE(m) << m.error().message;
  return std::move(*m);
}

const AckOptions kOptions{"ACK-1", "20261125030000+0000", "SDOH_GW"};

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
  auto [code, err] = negative_ack_for(
      msg, Error::unsupported("ADT^A01 is not a message this gateway accepts", where));
  EXPECT_EQ(code, AckCode::kAR);
  EXPECT_EQ(err.condition, ErrorCondition::kUnsupportedMessageType);
  auto ack = build_ack(msg, code, err, kOptions);
  EXPECT_EQ(field(ack, "ERR-2"), "MSH^1^9");
  EXPECT_EQ(field(ack, "ERR-3.1"), "200");
  EXPECT_EQ(field(ack, "MSH-9"), "ACK^A01^ACK");
}

TEST(AckBuilder, EnhancedModeUsesCommitCodes) {
  auto msg = sample("oru-r01-ahc-hrsn-positive.hl7");
  EXPECT_EQ(negative_ack_for(msg, Error::unavailable("store cannot write")).first, AckCode::kCE);
  EXPECT_EQ(negative_ack_for(msg, Error::unsupported("x")).first, AckCode::kCR);
  EXPECT_EQ(negative_ack_for(sample("oru-r01-corrected.hl7"), Error::unavailable("x")).first,
            AckCode::kAE);
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

TEST(ErrorCondition, EveryCodeHasADescription) {
  for (int code : {0, 100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207}) {
    EXPECT_FALSE(description(static_cast<ErrorCondition>(code)).empty()) << code;
  }
  EXPECT_EQ(description(ErrorCondition::kUnsupportedMessageType), "Unsupported message type");
}

}  // namespace
}  // namespace sdoh::hl7v2
