// gateway/pipeline/store_executor.hpp: blocking work leaves the I/O thread and the caller
// resumes on its own executor with the result.
#include "gateway/pipeline/store_executor.hpp"

#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

namespace sdoh::pipeline {
namespace {

namespace asio = boost::asio;

asio::awaitable<std::thread::id> where_am_i() {
  co_return std::this_thread::get_id();
}

TEST(StoreExecutor, RunsTheWorkOnItsThreadsAndResumesTheCallerOnItsOwn) {
  StoreExecutor store_threads(2);
  asio::io_context io;
  std::thread::id worked_on, resumed_on;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        worked_on = co_await store_threads.run(where_am_i());
        resumed_on = std::this_thread::get_id();
      },
      asio::detached);
  io.run();  // returns once the coroutine is done: it did resume on this io_context
  EXPECT_NE(worked_on, std::thread::id());
  EXPECT_NE(worked_on, std::this_thread::get_id());
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
}

TEST(StoreExecutor, AnExceptionOfTheWorkReachesTheCaller) {
  StoreExecutor store_threads(1);
  asio::io_context io;
  std::string caught;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await store_threads.run([]() -> asio::awaitable<int> {
            throw std::runtime_error("store gone");
            co_return 0;
          }());
        } catch (const std::exception& e) {
          caught = e.what();
        }
      },
      asio::detached);
  io.run();
  EXPECT_EQ(caught, "store gone");
}

TEST(StoreExecutor, AWrappedHandlerAnswersFromTheStoreThreads) {
  StoreExecutor store_threads(1);
  std::function<asio::awaitable<std::thread::id>(int&)> handler =
      [](int& calls) -> asio::awaitable<std::thread::id> {
    ++calls;
    co_return std::this_thread::get_id();
  };
  auto wrapped = store_threads.wrap(handler);
  asio::io_context io;
  int calls = 0;
  std::thread::id answered_on;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { answered_on = co_await wrapped(calls); },
      asio::detached);
  io.run();
  EXPECT_EQ(calls, 1);  // the argument is the caller's own, by reference
  EXPECT_NE(answered_on, std::this_thread::get_id());
}

TEST(StoreExecutor, AThreadOutsideAnyIoContextWaitsForTheResult) {
  StoreExecutor store_threads(1);
  const auto worked_on = store_threads.wait(where_am_i());
  EXPECT_NE(worked_on, std::this_thread::get_id());
  EXPECT_NE(worked_on, std::thread::id());
}

}  // namespace
}  // namespace sdoh::pipeline
