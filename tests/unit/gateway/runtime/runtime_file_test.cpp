#include "gateway/runtime/runtime_file.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

namespace sdoh::runtime {
namespace {

TEST(RuntimeFile, WritesAddressesAndBootstrapAsJson) {
  RuntimeInfo info;
  info.pid = 4242;
  info.version = "0.1.0";
  info.http_address = "127.0.0.1:41000";
  info.mllp_address = "127.0.0.1:41001";
  info.mllp_tls = true;
  info.kafka_bootstrap = "127.0.0.1:39092";
  info.kafka_embedded = true;
  const auto dir = std::filesystem::temp_directory_path() / "sdoh_runtime_file_test";
  std::filesystem::create_directories(dir);
  const auto file = dir / "runtime.json";
  ASSERT_TRUE(write_runtime_file(file, info));

  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  rapidjson::Document doc;
  ASSERT_FALSE(doc.Parse(text.str().c_str()).HasParseError()) << text.str();
  EXPECT_EQ(doc["pid"].GetInt(), 4242);
  EXPECT_STREQ(doc["http"]["address"].GetString(), "127.0.0.1:41000");
  EXPECT_STREQ(doc["http"]["url"].GetString(), "http://127.0.0.1:41000");
  EXPECT_STREQ(doc["mllp"]["address"].GetString(), "127.0.0.1:41001");
  EXPECT_TRUE(doc["mllp"]["tls"].GetBool());
  EXPECT_STREQ(doc["kafka"]["bootstrap_servers"].GetString(), "127.0.0.1:39092");
  EXPECT_TRUE(doc["kafka"]["embedded"].GetBool());
  EXPECT_FALSE(std::filesystem::exists(dir / "runtime.json.tmp"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sdoh::runtime
