#include "gateway/core/json_text.hpp"

#include <gtest/gtest.h>

namespace sdoh {
namespace {

TEST(JsonText, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(json_string("a\"b\\c\nd\re\tf"), R"("a\"b\\c\nd\re\tf")");
  EXPECT_EQ(json_string(std::string_view("\x01\x1f", 2)), R"("\u0001\u001f")");
}

TEST(JsonText, KeepsValidUtf8) {
  EXPECT_EQ(json_string("Espa\xc3\xb1ol"), "\"Espa\xc3\xb1ol\"");
}

TEST(JsonText, EscapesBytesThatAreNotUtf8) {
  // 0xF1 is n-tilde in Windows-1252, not valid UTF-8 on its own.
  EXPECT_EQ(json_string("Espa\xf1ol"), R"("Espa\u00f1ol")");
  EXPECT_EQ(json_string("\xc3"), R"("\u00c3")");  // truncated sequence
}

TEST(JsonText, HandlesEmbeddedNul) {
  EXPECT_EQ(json_string(std::string_view("a\0b", 3)), R"("a\u0000b")");
}

}  // namespace
}  // namespace sdoh
