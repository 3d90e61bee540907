// How the store's SQLite connections wait for a lock another connection holds
// (sql::wait_when_busy, sql_sqlite.cpp): in steps of 100 µs, where SQLite's own busy timeout sleeps
// 1 ms and more. A RESTART checkpoint holds new writers back while it waits for readers, so every
// step of a coarse wait shows in the answers' latency.
#include "adapters/store/sql_sqlite.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <sqlite3.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

namespace sdoh::store {
namespace {

using Clock = std::chrono::steady_clock;

class SqliteBusyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sdoh-busy-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    const auto path = (dir_ / "t.db").string();
    ASSERT_EQ(sqlite3_open(path.c_str(), &holder_), SQLITE_OK);
    ASSERT_EQ(sqlite3_open(path.c_str(), &waiter_), SQLITE_OK);
    ASSERT_EQ(exec(holder_, "PRAGMA journal_mode=WAL; CREATE TABLE t(x)"), SQLITE_OK);
  }
  void TearDown() override {
    sqlite3_close(holder_);
    sqlite3_close(waiter_);
    std::filesystem::remove_all(dir_);
  }
  static int exec(sqlite3* db, const char* sql) {
    return sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  }

  // The holder keeps the write lock for `hold`; the waiter asks for it meanwhile. Returns how long
  // after the holder let go the waiter had it.
  Clock::duration late_by(std::chrono::microseconds hold) {
    EXPECT_EQ(exec(holder_, "BEGIN IMMEDIATE"), SQLITE_OK);
    std::atomic<bool> asking{false};
    Clock::time_point got;
    int rc = -1;
    std::thread waiter([&] {
      asking = true;
      rc = exec(waiter_, "BEGIN IMMEDIATE");
      got = Clock::now();
    });
    while (!asking)
      std::this_thread::yield();
    std::this_thread::sleep_for(hold);
    const auto released = Clock::now();
    EXPECT_EQ(exec(holder_, "COMMIT"), SQLITE_OK);
    waiter.join();
    EXPECT_EQ(rc, SQLITE_OK) << "the waiter gave up";
    EXPECT_EQ(exec(waiter_, "COMMIT"), SQLITE_OK);
    return got - released;
  }

  // The holder keeps the write lock; the waiter asks for it and must be refused. Returns how
  // long it waited.
  Clock::duration refused_after() {
    EXPECT_EQ(exec(holder_, "BEGIN IMMEDIATE"), SQLITE_OK);
    const auto started = Clock::now();
    EXPECT_EQ(exec(waiter_, "BEGIN IMMEDIATE"), SQLITE_BUSY);
    const auto waited = Clock::now() - started;
    EXPECT_EQ(exec(holder_, "COMMIT"), SQLITE_OK);
    return waited;
  }

  std::filesystem::path dir_;
  sqlite3* holder_ = nullptr;
  sqlite3* waiter_ = nullptr;
};

// Twenty holds of 1.5 ms each, with SQLite's own busy timeout and then with wait_when_busy: the
// medians of how late the waiter got the lock (the median, so that one slow wake-up on a busy
// machine does not decide). SQLite's sleeps 1 ms, then 2 ms, so it comes about 1.5 ms late; ours
// retries every 100 µs.
TEST_F(SqliteBusyTest, AWaiterGetsTheLockSoonAfterItIsFree) {
  auto median_late = [this] {
    std::vector<Clock::duration> late;
    for (int i = 0; i < 20; ++i)
      late.push_back(late_by(std::chrono::microseconds(1500)));
    std::sort(late.begin(), late.end());
    return late[late.size() / 2];
  };
  sqlite3_busy_timeout(waiter_, 5000);
  const auto sqlite_own = median_late();
  sql::wait_when_busy(waiter_);
  const auto ours = median_late();
  auto us = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  };
  EXPECT_GE(sqlite_own, std::chrono::milliseconds(1)) << us(sqlite_own) << " µs";
  EXPECT_LT(ours * 2, sqlite_own) << us(ours) << " µs against " << us(sqlite_own) << " µs";
}

// A lock held for longer than one step is still waited for, not refused.
TEST_F(SqliteBusyTest, ALockHeldForManyStepsIsWaitedFor) {
  sql::wait_when_busy(waiter_);
  (void)late_by(std::chrono::milliseconds(30));  // late_by checks the waiter got it
}

// A lock that stays held is given up after 5 s, not waited for without end.
TEST_F(SqliteBusyTest, ALockHeldForTooLongIsGivenUpAfterFiveSeconds) {
  sql::wait_when_busy(waiter_);
  const auto waited = refused_after();
  EXPECT_GE(waited, std::chrono::seconds(5));
  EXPECT_LT(waited, std::chrono::seconds(7));
}

// A shorter limit (the checkpoint connection's 50 ms for its RESTART) is kept as well.
TEST_F(SqliteBusyTest, AShorterLimitGivesUpSooner) {
  sql::wait_when_busy(waiter_, std::chrono::milliseconds(50));
  const auto waited = refused_after();
  EXPECT_GE(waited, std::chrono::milliseconds(50));
  EXPECT_LT(waited, std::chrono::seconds(2));
}

}  // namespace
}  // namespace sdoh::store
