#include "gateway/runtime/data_dir_lock.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

namespace sdoh::runtime {
namespace {

std::filesystem::path temp_dir() {
  auto dir = std::filesystem::temp_directory_path() /
             ("sdoh-lock-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(DataDirLock, ASecondHolderIsRefusedAndToldWhoHasIt) {
  const auto dir = temp_dir();
  auto first = DataDirLock::acquire(dir);
  ASSERT_TRUE(first) << first.error().message;
  // flock(2) locks belong to an open file description, so a second open in this process
  // conflicts exactly as another process would.
  auto second = DataDirLock::acquire(dir);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().where.expression, "data_dir");
  EXPECT_NE(second.error().message.find("in use by another sdoh-gateway (pid " +
                                        std::to_string(::getpid()) + ")"),
            std::string::npos)
      << second.error().message;
  std::filesystem::remove_all(dir);
}

TEST(DataDirLock, IsFreeAgainOnceReleased) {
  const auto dir = temp_dir();
  {
    auto first = DataDirLock::acquire(dir);
    ASSERT_TRUE(first);
  }
  auto again = DataDirLock::acquire(dir);
  EXPECT_TRUE(again);
  std::ifstream in(dir / "gateway.lock");
  long pid = 0;
  in >> pid;
  EXPECT_EQ(pid, ::getpid());
  std::filesystem::remove_all(dir);
}

TEST(DataDirLock, AnUnwritableDirectoryIsAConfigError) {
  auto r = DataDirLock::acquire("/proc/definitely/not/here");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConfig);
  EXPECT_NE(r.error().message.find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace sdoh::runtime
