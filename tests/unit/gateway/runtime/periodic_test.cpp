// gateway/runtime/periodic.cpp: scheduled work runs on the store threads, one pass at a time,
// until stopped.
#include "gateway/runtime/periodic.hpp"

#include <atomic>
#include <thread>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

namespace sdoh::runtime {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

TEST(Periodic, RunsItsWorkOnTheStoreThreadsUntilStopped) {
  asio::io_context io;
  pipeline::StoreExecutor store_threads(2);
  std::atomic<int> passes{0};
  std::atomic<int> running{0};
  std::atomic<bool> overlapped{false};
  std::atomic<bool> on_io_thread{false};
  const auto io_thread = std::this_thread::get_id();
  Periodic schedule(io, store_threads, 5ms, [&]() -> asio::awaitable<void> {
    if (running.fetch_add(1) != 0) overlapped = true;
    if (std::this_thread::get_id() == io_thread) on_io_thread = true;
    std::this_thread::sleep_for(2ms);  // a pass that takes a while
    running.fetch_sub(1);
    if (passes.fetch_add(1) + 1 == 5) schedule.stop();
    co_return;
  });
  schedule.start();
  io.run();  // returns when the loop has ended: stop() ended the schedule
  EXPECT_EQ(passes.load(), 5);
  EXPECT_FALSE(overlapped.load());
  EXPECT_FALSE(on_io_thread.load());
}

TEST(Periodic, StoppedBeforeItsFirstPassRunsNothing) {
  asio::io_context io;
  pipeline::StoreExecutor store_threads(1);
  int passes = 0;
  Periodic schedule(io, store_threads, 1h, [&]() -> asio::awaitable<void> {
    ++passes;
    co_return;
  });
  schedule.start();
  schedule.stop();
  io.run();  // the timer is cancelled: the loop ends without a pass
  EXPECT_EQ(passes, 0);
}

}  // namespace
}  // namespace sdoh::runtime
