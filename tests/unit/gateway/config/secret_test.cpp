#include "gateway/config/secret.hpp"

#include <filesystem>
#include <fstream>
#include <stdlib.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(SecretRef, ReadsEnvironmentVariable) {
  ::setenv("SDOH_TEST_SECRET", "s3cret", 1);
  SecretRef ref{SecretRef::Source::kEnv, "SDOH_TEST_SECRET"};
  auto value = ref.resolve();
  ASSERT_TRUE(value);
  EXPECT_EQ(*value, "s3cret");
  ::unsetenv("SDOH_TEST_SECRET");
}

TEST(SecretRef, MissingVariableErrorNamesItButNoValue) {
  ::unsetenv("SDOH_TEST_ABSENT");
  auto value = SecretRef{SecretRef::Source::kEnv, "SDOH_TEST_ABSENT"}.resolve();
  ASSERT_FALSE(value);
  EXPECT_THAT(value.error().message, HasSubstr("SDOH_TEST_ABSENT is not set"));
}

TEST(SecretRef, ReadsFileWithoutTrailingNewline) {
  const auto path = std::filesystem::temp_directory_path() / "sdoh_secret_test.txt";
  std::ofstream(path) << "file-secret\n";
  auto value = SecretRef{SecretRef::Source::kFile, path.string()}.resolve();
  std::filesystem::remove(path);
  ASSERT_TRUE(value);
  EXPECT_EQ(*value, "file-secret");
}

TEST(SecretRef, DescribeNeverShowsTheValue) {
  ::setenv("SDOH_TEST_SECRET2", "topsecret", 1);
  SecretRef ref{SecretRef::Source::kEnv, "SDOH_TEST_SECRET2"};
  EXPECT_EQ(ref.describe(), "env:SDOH_TEST_SECRET2");
  EXPECT_THAT(ref.describe(), Not(HasSubstr("topsecret")));
  ::unsetenv("SDOH_TEST_SECRET2");
}

TEST(SecretRef, UnreadableFileIsAnError) {
  auto value = SecretRef{SecretRef::Source::kFile, "/nonexistent/secret"}.resolve();
  ASSERT_FALSE(value);
  EXPECT_THAT(value.error().message, HasSubstr("cannot read secret file /nonexistent/secret"));
}

}  // namespace
}  // namespace sdoh::config
