#include "adapters/hl7v2/charset.hpp"

#include <gtest/gtest.h>

#include "adapters/hl7v2/message.hpp"

namespace sdoh::hl7v2 {
namespace {

std::string oru(std::string_view msh18, std::string_view name) {
  return "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120103000||ORU^R01|C1|P|2.5.1||||||" +
         std::string(msh18) + "\rPID|1||MRN1^^^PEDS_A^MR||" + std::string(name) + "^Ana\r";
}

TEST(Utf8Validation, AcceptsWellFormedText) {
  EXPECT_FALSE(first_invalid_utf8("plain ascii"));
  EXPECT_FALSE(first_invalid_utf8("Jos\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
}

TEST(Utf8Validation, NamesTheFirstBadByte) {
  EXPECT_EQ(first_invalid_utf8("Jos\xE9 Nu\xF1"
                               "ez"),
            3u);                                            // Latin-1 é
  EXPECT_EQ(first_invalid_utf8("ab\xC0\xAF"), 2u);          // overlong '/'
  EXPECT_EQ(first_invalid_utf8("ab\xED\xA0\x80"), 2u);      // a UTF-16 surrogate
  EXPECT_EQ(first_invalid_utf8("ab\xF4\x90\x80\x80"), 2u);  // above U+10FFFF
  EXPECT_EQ(first_invalid_utf8("abc\xC3"), 3u);             // truncated at the end
}

TEST(Windows1252, ConvertsLatin1AndTheWindowsRange) {
  EXPECT_EQ(windows1252_to_utf8("Jos\xE9 Nu\xF1"
                                "ez"),
            "Jos\xC3\xA9 Nu\xC3\xB1"
            "ez");
  EXPECT_EQ(windows1252_to_utf8("\x93quoted\x94 \x80 \x96"),
            "\xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x82\xAC \xE2\x80\x93");
  EXPECT_EQ(windows1252_to_utf8("\x81"), "\xC2\x81");  // unassigned: the C1 control (WHATWG)
}

TEST(CharsetReading, DeclaredLatin1IsReadAsWindows1252) {
  auto r = read_charset("8859/1", 1, "Jos\xE9");
  EXPECT_TRUE(r.supported);
  EXPECT_EQ(r.charset, Charset::kWindows1252);
  EXPECT_FALSE(r.fallback);
}

TEST(CharsetReading, DeclaredLatin1HoldingUtf8IsReadAsUtf8AndCounted) {
  auto r = read_charset("8859/1", 1, "Jos\xC3\xA9");
  EXPECT_EQ(r.charset, Charset::kUtf8);
  EXPECT_TRUE(r.fallback);
}

TEST(CharsetReading, UndeclaredNonUtf8IsReadAsWindows1252AndCounted) {
  auto r = read_charset("", 0, "Jos\xE9");
  EXPECT_EQ(r.charset, Charset::kWindows1252);
  EXPECT_TRUE(r.fallback);
  auto ascii = read_charset("ASCII", 1, "Jos\xE9");
  EXPECT_EQ(ascii.charset, Charset::kWindows1252);
  EXPECT_TRUE(ascii.fallback);
}

TEST(CharsetReading, UndeclaredUtf8IsUtf8WithoutFallback) {
  auto r = read_charset("", 0, "Jos\xC3\xA9");
  EXPECT_EQ(r.charset, Charset::kUtf8);
  EXPECT_FALSE(r.fallback);
}

TEST(CharsetReading, DeclaredUtf8WithLatin1BytesIsMarkedInvalid) {
  auto r = read_charset("UNICODE UTF-8", 1, "abc Jos\xE9");
  EXPECT_TRUE(r.supported);
  ASSERT_TRUE(r.invalid_utf8_at);
  EXPECT_EQ(*r.invalid_utf8_at, 7u);
}

TEST(CharsetReading, CommonAliasesAreAccepted) {
  EXPECT_EQ(read_charset("ISO-8859-1", 1, "\xE9").charset, Charset::kWindows1252);
  EXPECT_EQ(read_charset("UTF-8", 1, "x").charset, Charset::kUtf8);
  EXPECT_TRUE(read_charset("utf-8", 1, "x").supported);
}

TEST(CharsetReading, OtherSetsAndAlternateSetsAreRefused) {
  EXPECT_FALSE(read_charset("ISO IR87", 1, "x").supported);
  EXPECT_FALSE(read_charset("UNICODE UTF-16", 1, "x").supported);
  EXPECT_FALSE(read_charset("8859/1", 2, "x").supported);  // 8859/1~ISO IR87
}

TEST(Hl7MessageCharset, Latin1ValuesComeOutAsUtf8) {
  auto m = Message::parse(oru("8859/1",
                              "Nu\xF1"
                              "ez"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->get("PID-5.1"),
            "Nu\xC3\xB1"
            "ez");
  EXPECT_EQ(m->segment("PID")->value(5, 1, 1),
            "Nu\xC3\xB1"
            "ez");
}

TEST(Hl7MessageCharset, HexEscapesAreBytesInTheMessageCharset) {
  auto m = Message::parse(oru("8859/1", "Nu\\XF1\\ez"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->get("PID-5.1"),
            "Nu\xC3\xB1"
            "ez");
}

TEST(Hl7MessageCharset, Latin1MessageRoundTripsByteForByte) {
  const auto text = oru("8859/1",
                        "Nu\xF1"
                        "ez");
  auto m = Message::parse(text);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->serialize(), text);
  EXPECT_EQ(m->segment("PID")->raw(5),
            "Nu\xF1"
            "ez^Ana");
}

TEST(Hl7MessageCharset, LocationOfAnInvalidByteNamesSegmentFieldAndComponent) {
  auto m = Message::parse(oru("UNICODE UTF-8",
                              "Nu\xF1"
                              "ez"));
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->charset().invalid_utf8_at);
  const auto where = m->location_of(*m->charset().invalid_utf8_at);
  EXPECT_EQ(where.segment, "PID");
  EXPECT_EQ(where.sequence, 1);
  EXPECT_EQ(where.field, 5);
  EXPECT_EQ(where.component, 1);
}

}  // namespace
}  // namespace sdoh::hl7v2
