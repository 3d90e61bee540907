#include "gateway/core/json_parse.hpp"

#include <string>

#include <gtest/gtest.h>

namespace sdoh::json {
namespace {

std::string parse_error(std::string_view text, const ParseOptions& options = {}) {
  rapidjson::Document doc;
  auto r = parse(doc, text, options);
  EXPECT_FALSE(r.has_value()) << text.substr(0, 80);
  EXPECT_TRUE(doc.IsNull());
  return r ? std::string() : r.error().message;
}

TEST(JsonParse, ParsesAnObjectWithNestedValues) {
  rapidjson::Document doc;
  ASSERT_TRUE(parse(doc, R"({"a":[1,2.5,"x",true,null,{"b":{}}]} )"));
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc["a"].Size(), 6u);
  EXPECT_EQ(doc["a"][2].GetString(), std::string("x"));
}

TEST(JsonParse, NestingDeeperThanTheLimitIsRefusedWithItsOffset) {
  // 150,000 levels crashed the recursive parser (stack overflow); now it is an error.
  const std::string deep(150'000, '[');
  EXPECT_EQ(parse_error(deep), "nested deeper than 64 levels (json.max_depth) at byte offset 64");
  std::string objects;
  for (int i = 0; i < 150'000; ++i)
    objects += "{\"a\":";
  EXPECT_NE(parse_error(objects).find("nested deeper than 64 levels"), std::string::npos);
}

TEST(JsonParse, NestingAtTheLimitIsAccepted) {
  const std::string at_limit = std::string(64, '[') + std::string(64, ']');
  rapidjson::Document doc;
  EXPECT_TRUE(parse(doc, at_limit));
  EXPECT_EQ(parse_error(std::string(65, '[') + std::string(65, ']')),
            "nested deeper than 64 levels (json.max_depth) at byte offset 64");
}

TEST(JsonParse, TheLimitComesFromTheOptionsOrTheProcessDefault) {
  const std::string three = "[[[1]]]";
  rapidjson::Document doc;
  EXPECT_TRUE(parse(doc, three));
  EXPECT_NE(parse_error(three, {2, false}).find("deeper than 2 levels"), std::string::npos);
  set_default_max_depth(2);
  EXPECT_NE(parse_error(three).find("deeper than 2 levels"), std::string::npos);
  set_default_max_depth(0);  // back to the built-in default
  EXPECT_EQ(default_max_depth(), kDefaultMaxDepth);
  EXPECT_TRUE(parse(doc, three));
}

TEST(JsonParse, BytesAfterTheValueAreRefused) {
  const std::string nul_garbage("{\"a\":1}\0garbage", 15);
  EXPECT_EQ(parse_error(nul_garbage), "unexpected bytes after the JSON value at byte offset 7");
  EXPECT_EQ(parse_error("{} {}"), "unexpected bytes after the JSON value at byte offset 3");
  rapidjson::Document doc;
  EXPECT_TRUE(parse(doc, "{}\r\n\t "));
}

TEST(JsonParse, DuplicateMemberNamesAreRefused) {
  EXPECT_EQ(parse_error(R"({"status":"a","id":"1","status":"b"})"),
            "duplicate member name \"status\" in one object at byte offset 35");
  // In a nested object, and with a name that is not repeated in the message.
  EXPECT_NE(parse_error(R"({"a":{"x":1,"y":{},"x":2}})").find("duplicate member name \"x\""),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"a b":1,"a b":2})").find("duplicate member name a member name"),
            std::string::npos);
}

TEST(JsonParse, TheSameNameInSiblingObjectsIsNotADuplicate) {
  rapidjson::Document doc;
  EXPECT_TRUE(parse(doc, R"({"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}],"x":3})"));
}

TEST(JsonParse, DuplicatesMayBeAllowedByTheCaller) {
  rapidjson::Document doc;
  EXPECT_TRUE(parse(doc, R"({"a":1,"a":2})", {0, true}));
}

TEST(JsonParse, InvalidUtf8InRawBytesIsRefusedWithItsOffset) {
  // A lone surrogate encoded in UTF-8 (ED A0 80), an overlong '/' (C0 AF), a code point above
  // U+10FFFF (F4 90 80 80), a truncated sequence, and a bare continuation byte.
  for (const std::string bad : {"\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\xe2\x82", "\x80",
                                "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xff"}) {
    const auto text = "{\"a\":\"ok" + bad + "\"}";
    const auto error = parse_error(text);
    EXPECT_NE(error.find("UTF-8"), std::string::npos) << error;
    EXPECT_NE(error.find("at byte offset"), std::string::npos) << error;
  }
}

TEST(JsonParse, EscapedLoneSurrogatesAreRefused) {
  // RapidJSON 1.1.0 decodes "\udc00" into the bytes of a surrogate without complaint.
  EXPECT_NE(parse_error(R"({"a":"\udc00"})").find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(parse_error(R"({"\udc00":1})").find("not valid UTF-8"), std::string::npos);
  EXPECT_FALSE(parse_error(R"({"a":"\ud800x"})").empty());
  rapidjson::Document doc;
  ASSERT_TRUE(parse(doc, R"({"a":"\ud83d\ude00 caf\u00e9 \u0000"})"));
  EXPECT_EQ(std::string(doc["a"].GetString(), doc["a"].GetStringLength()),
            std::string("\xf0\x9f\x98\x80 caf\xc3\xa9 \0", 12));
}

TEST(JsonParse, ValidUtf8IsAccepted) {
  rapidjson::Document doc;
  EXPECT_TRUE(parse(doc, "{\"n\":\"Jos\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}"));
}

TEST(JsonParse, SyntaxErrorsNameTheOffset) {
  EXPECT_EQ(parse_error(R"({"a":})"), "Invalid value. at byte offset 5");
  EXPECT_EQ(parse_error(""), "The document is empty. at byte offset 0");
}

TEST(ValidUtf8, InvalidBytesCanBeReplacedByU_FFFD) {
  EXPECT_EQ(with_replacement_characters("a\xbcpplication/fhir+json"),
            "a\xef\xbf\xbdpplication/fhir+json");
  EXPECT_EQ(with_replacement_characters("\xed\xa0\x80x"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx");
  EXPECT_EQ(with_replacement_characters("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_TRUE(valid_utf8(with_replacement_characters("\xff\xfe\xc3")));
}

TEST(ValidUtf8, ReportsTheFirstBadByte) {
  std::size_t at = 99;
  EXPECT_TRUE(valid_utf8("plain \xc3\xa9", &at));
  EXPECT_FALSE(valid_utf8("abc\xed\xbf\xbf", &at));
  EXPECT_EQ(at, 3u);
  EXPECT_FALSE(valid_utf8("\xc1\xbf", &at));
  EXPECT_EQ(at, 0u);
}

}  // namespace
}  // namespace sdoh::json
