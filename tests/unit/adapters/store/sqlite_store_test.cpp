#include "adapters/store/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

namespace sdoh::store {
namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sdoh_store_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string pragma(const std::string& name) {
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "gateway.db").c_str(), &db);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, ("PRAGMA " + name).c_str(), -1, &stmt, nullptr);
    std::string value;
    if (sqlite3_step(stmt) == SQLITE_ROW) value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
  }

  std::filesystem::path dir_;
  config::StoreConfig cfg_;
};

TEST_F(SqliteStoreTest, CreatesDatabaseInWalModeAtLatestSchema) {
  auto store = SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->schema_version(), SqliteStore::latest_schema_version());
  EXPECT_TRUE((*store)->health().ok);
  EXPECT_EQ(pragma("journal_mode"), "wal");
  EXPECT_EQ(pragma("user_version"), std::to_string(SqliteStore::latest_schema_version()));
}

TEST_F(SqliteStoreTest, ReopeningKeepsTheSchema) {
  ASSERT_TRUE(SqliteStore::open(dir_ / "gateway.db", cfg_));
  auto again = SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*again)->schema_version(), SqliteStore::latest_schema_version());
}

TEST_F(SqliteStoreTest, RefusesANewerSchema) {
  ASSERT_TRUE(SqliteStore::open(dir_ / "gateway.db", cfg_));
  {
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "gateway.db").c_str(), &db);
    sqlite3_exec(db, "PRAGMA user_version=999", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  auto store = SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("newer than this build"), std::string::npos);
}

TEST_F(SqliteStoreTest, UnwritableLocationIsAnError) {
  auto store = SqliteStore::open("/proc/sdoh-cannot-write/gateway.db", cfg_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().kind, ErrorKind::kUnavailable);
}

}  // namespace
}  // namespace sdoh::store
