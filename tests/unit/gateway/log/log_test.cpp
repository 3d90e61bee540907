#include "gateway/log/log.hpp"

#include <gtest/gtest.h>

namespace sdoh::log {
namespace {

TEST(Log, RendersEventAndTypedFields) {
  const std::string peer = "10.0.0.1:5000";
  auto text = render_fields(
      "mllp.connected",
      {{"peer", peer}, {"frames", std::uint64_t{3}}, {"delta", -2}, {"tls", true}, {"ratio", 0.5}});
  EXPECT_EQ(
      text,
      R"("event":"mllp.connected","peer":"10.0.0.1:5000","frames":3,"delta":-2,"tls":true,"ratio":0.500000)");
}

TEST(Log, EscapesValuesSoTheLineStaysJson) {
  auto text = render_fields("x", {{"reason", "bad \"quote\"\nnext"}});
  EXPECT_EQ(text, R"("event":"x","reason":"bad \"quote\"\nnext")");
}

TEST(Log, ParsesLevelNames) {
  EXPECT_EQ(parse_level("debug"), Level::kDebug);
  EXPECT_EQ(parse_level("warn"), Level::kWarn);
  EXPECT_EQ(parse_level("error"), Level::kError);
  EXPECT_EQ(parse_level("nonsense"), Level::kInfo);
}

TEST(Log, LevelFiltersLowerLevels) {
  init(Level::kWarn);
  EXPECT_FALSE(enabled(Level::kInfo));
  EXPECT_TRUE(enabled(Level::kError));
  init(Level::kInfo);
  EXPECT_TRUE(enabled(Level::kInfo));
}

}  // namespace
}  // namespace sdoh::log
