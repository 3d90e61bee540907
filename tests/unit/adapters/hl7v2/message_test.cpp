#include "adapters/hl7v2/message.hpp"

#include <fstream>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/support/shipped.hpp"

namespace sdoh::hl7v2 {
namespace {

std::string sample(const std::string& name) {
  return test::shared_sample("hl7v2", name);
}

Message parsed(const std::string& text) {
  auto m = Message::parse(text);
  EXPECT_TRUE(m) << m.error().message;
  return std::move(*m);
}

TEST(Hl7Message, ReadsDelimitersFromMsh) {
  auto m = parsed(sample("oru-r01-ahc-hrsn-positive.hl7"));
  EXPECT_EQ(m.delimiters().field, '|');
  EXPECT_EQ(m.delimiters().component, '^');
  EXPECT_EQ(m.delimiters().repetition, '~');
  EXPECT_EQ(m.delimiters().escape, '\\');
  EXPECT_EQ(m.delimiters().subcomponent, '&');
}

// Where MSH-1/MSH-2 are refused, and how the refusal names the field.
struct BadDelimiters {
  std::string msh_start;  // "MSH" + MSH-1 + MSH-2 + MSH-1
  int field;
  std::string says;
};

TEST(Hl7Message, UnusableOrRepeatedDelimitersAreRefusedNamingMsh1OrMsh2) {
  const std::vector<BadDelimiters> cases = {
      {std::string("MSH\0^~\\&\0", 9), 1, "MSH-1 field separator"},
      {"MSH\xff^~\\&\xff", 1, "byte 0xFF"},
      {"MSH\x0b^~\\&\x0b", 1, "byte 0x0B"},
      {"MSH\x1c^~\\&\x1c", 1, "byte 0x1C"},
      {"MSH ^~\\& ", 1, "byte 0x20"},
      {"MSHA^~\\&A", 1, "byte 0x41"},
      {"MSH|^\x0b\\&|", 2, "byte 0x0B"},
      {"MSH|^~\\\n|", 2, "byte 0x0A"},
      {"MSH|^^\\&|", 2, "'^' is used twice"},
      {"MSH|^~\\&~|", 2, "'~' is used twice"},
      {"MSH||", 2, "MSH-2 encoding characters are missing"},
  };
  for (const auto& c : cases) {
    const auto sep = c.msh_start.substr(3, 1);
    auto m = Message::parse(c.msh_start + "EHR" + sep + "PEDS_CLINIC_A\rPID" + sep + "1\r");
    ASSERT_FALSE(m) << c.says;
    EXPECT_EQ(m.error().where.segment, "MSH");
    EXPECT_EQ(m.error().where.field, c.field) << c.says;
    EXPECT_NE(m.error().message.find(c.says), std::string::npos) << m.error().message;
  }
}

TEST(Hl7Message, UnusualButUsableDelimitersAreAccepted) {
  auto m = parsed("MSH#$%*@#EHR#PEDS_CLINIC_A#SDOH_GW#STATE_EC#20261120##ORU$R01#M-1#P#2.5.1\r");
  EXPECT_EQ(m.get("MSH-9.1"), "ORU");
  EXPECT_EQ(m.get("MSH-10"), "M-1");
}

TEST(Hl7Message, MshNumberingCountsTheSeparatorAsMsh1) {
  auto m = parsed(sample("oru-r01-ahc-hrsn-positive.hl7"));
  EXPECT_EQ(m.get("MSH-1"), "|");
  EXPECT_EQ(m.get("MSH-2"), "^~\\&");
  EXPECT_EQ(m.get("MSH-3"), "EHR");
  EXPECT_EQ(m.get("MSH-4"), "PEDS_CLINIC_A");
  EXPECT_EQ(m.get("MSH-9.1"), "ORU");
  EXPECT_EQ(m.get("MSH-9.2"), "R01");
  EXPECT_EQ(m.get("MSH-10"), "A1000001");
  EXPECT_EQ(m.get("MSH-12"), "2.5.1");
  EXPECT_EQ(m.get("MSH-15"), "AL");
  EXPECT_EQ(m.get("MSH-16"), "NE");
  EXPECT_EQ(m.get("MSH-18"), "UNICODE UTF-8");
}

TEST(Hl7Message, RepetitionsComponentsAndOccurrences) {
  auto m = parsed(sample("oru-r01-ahc-hrsn-positive.hl7"));
  EXPECT_EQ(m.segment("PID")->repetitions(3), 2);
  EXPECT_EQ(m.get("PID-3(1).1"), "MRN12345");
  EXPECT_EQ(m.get("PID-3(2).1"), "8675309");
  EXPECT_EQ(m.get("PID-3(2).4"), "STATE_MEDICAID");
  EXPECT_EQ(m.get("PID-10.1"), "2106-3");
  EXPECT_EQ(m.get("PID-11.5"), "27701");
  EXPECT_EQ(m.get("PID-22.3"), "CDCREC");
  EXPECT_EQ(m.get("OBX[2]-3.1"), "96778-6");
  EXPECT_EQ(m.segment("OBX", 2)->repetitions(5), 2);
  EXPECT_EQ(m.get("OBX[2]-5(2).1"), "LA31996-4");
  EXPECT_EQ(m.get("OBX[6]-11"), "F");
  EXPECT_EQ(m.get("OBX[7]-3"), "");
  EXPECT_EQ(m.get("ZZZ-1"), "");
}

TEST(Hl7Message, SubcomponentsByPath) {
  auto m = parsed("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\rPID|1||123^^^AUTH&1.2.3&ISO\r");
  EXPECT_EQ(m.get("PID-3.4"), "AUTH&1.2.3&ISO");
  EXPECT_EQ(m.get("PID-3.4.2"), "1.2.3");
  EXPECT_EQ(m.get("PID-3.4.3"), "ISO");
}

TEST(Hl7Message, EscapesAreDecodedAndCrLfAccepted) {
  auto m = parsed(sample("oru-r01-escapes-crlf-v23.hl7"));
  EXPECT_EQ(m.segments().size(), 7u);
  EXPECT_EQ(m.msh().raw(10), "C3\\T\\01");
  EXPECT_EQ(m.get("MSH-10"), "C3&01");
  EXPECT_EQ(m.get("PID-5.1"), "O'Brien^Jr");
  const auto note = m.get("NTE-3");
  EXPECT_NE(note.find("reports & shelter"), std::string::npos) << note;
  EXPECT_NE(note.find("Spanish | interpreter"), std::string::npos) << note;
  EXPECT_NE(note.find("\\.br\\"), std::string::npos) << "formatting escapes are kept: " << note;
  EXPECT_EQ(m.get("ZSD-2"), "local-extension\\value");
  EXPECT_EQ(m.segment("ZSD")->field_count(), 3);
}

TEST(Hl7Message, RoundTripsByteForByte) {
  for (const auto* name : {"oru-r01-ahc-hrsn-positive.hl7", "oru-r01-escapes-crlf-v23.hl7",
                           "ref-i12-home-visiting.hl7", "rri-i12-accepted.hl7",
                           "oru-r01-corrected.hl7", "bad-missing-obx-code.hl7"}) {
    const auto text = sample(name);
    auto m = parsed(text);
    EXPECT_EQ(m.serialize(), text) << name;
  }
}

TEST(Hl7Message, EncodingCharactersAreNotAssumed) {
  auto m = parsed("MSH#$%!*#SEND#FAC#RECV#RFAC#20260101##ORU$R01#X!*1#P#2.5.1\rPID#1##A$B%C$D*E\r");
  EXPECT_EQ(m.delimiters().field, '#');
  EXPECT_EQ(m.delimiters().component, '$');
  EXPECT_EQ(m.delimiters().repetition, '%');
  EXPECT_EQ(m.delimiters().escape, '!');
  EXPECT_EQ(m.delimiters().subcomponent, '*');
  EXPECT_EQ(m.get("MSH-9.2"), "R01");
  EXPECT_EQ(m.get("MSH-10"), "X!*1") << "an unterminated escape is kept literally";
  EXPECT_EQ(m.get("PID-3(2).1"), "C");
  EXPECT_EQ(m.get("PID-3(2).2.2"), "E");
}

TEST(Hl7Message, TrailingEmptyFieldsAreKept) {
  auto m = parsed("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\rPID|1||X|||\r");
  EXPECT_EQ(m.segment("PID")->field_count(), 6);
  EXPECT_EQ(m.get("PID-6"), "");
}

TEST(Hl7Message, LoneEscapeAtFieldEndIsKeptLiterally) {
  int deviations = 0;
  EXPECT_EQ(unescape("C:\\temp\\", Delimiters{}, &deviations), "C:\\temp\\");
  EXPECT_EQ(unescape("ends with\\", Delimiters{}, &deviations), "ends with\\");
  EXPECT_EQ(deviations, 1);
}

TEST(Hl7Message, HexEscapes) {
  EXPECT_EQ(unescape("\\X41C3B1\\", Delimiters{}), "A\xC3\xB1");
  EXPECT_EQ(unescape("\\XZZ\\", Delimiters{}), "\\XZZ\\");
}

TEST(Hl7Message, EscapeThenUnescapeIsIdentity) {
  const std::string value = "a|b^c~d\\e&f\rg";
  const Delimiters d;
  EXPECT_EQ(escape(value, d), "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\.br\\g");
  EXPECT_EQ(unescape(escape("a|b^c~d\\e&f", d), d), "a|b^c~d\\e&f");
}

TEST(Hl7Message, NotHl7IsRefusedNamingMsh) {
  auto m = Message::parse(sample("bad-not-hl7.hl7"));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().where.segment, "MSH");
  EXPECT_EQ(m.error().kind, ErrorKind::kInvalid);
}

TEST(Hl7Message, EmptyControlIdIsRefusedNamingMsh10) {
  auto m = Message::parse("MSH|^~\\&|A|B|C|D|20260101||ORU^R01||P|2.5.1\r");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().where.segment, "MSH");
  EXPECT_EQ(m.error().where.field, 10);
}

TEST(Hl7Message, BadSegmentIdIsRefusedWithItsPosition) {
  auto m = Message::parse("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\rpid|1\r");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("segment 2"), std::string::npos) << m.error().message;
}

TEST(Hl7Batch, SplitsIntoMessages) {
  const auto text = sample("batch-two-screenings.hl7");
  auto messages = split_batch(text);
  ASSERT_TRUE(messages);
  ASSERT_EQ(messages->size(), 2u);
  EXPECT_EQ(parsed(std::string((*messages)[0])).get("MSH-10"), "B2000101");
  EXPECT_EQ(parsed(std::string((*messages)[1])).get("MSH-10"), "B2000102");
  EXPECT_EQ(parsed(std::string((*messages)[1])).segments().size(), 5u);  // MSH PID OBR OBX OBX
}

TEST(Hl7Batch, PlainMessageComesBackAlone) {
  auto messages = split_batch("MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5.1\r");
  ASSERT_TRUE(messages);
  EXPECT_EQ(messages->size(), 1u);
}

}  // namespace
}  // namespace sdoh::hl7v2
