#pragma once
// Runs one awaitable to completion on an io_context of its own and returns its result: how unit
// tests call the coroutine interfaces (commit ports, the overdue check) from plain test code.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace sdoh::test {

template <class T>
T run(boost::asio::awaitable<T> a) {
  boost::asio::io_context io;
  auto f = boost::asio::co_spawn(io, std::move(a), boost::asio::use_future);
  io.run();
  return f.get();
}

}  // namespace sdoh::test
