#pragma once
// Work the gateway does on a schedule (the overdue check): every
// `interval`, `work` runs on the store executor (it reads the store), never on an I/O thread. A
// pass starts only after the previous one ended. stop() (any thread) ends the schedule: a pass
// under way finishes, no new one starts.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::runtime {

class Periodic {
 public:
  using Work = std::function<boost::asio::awaitable<void>()>;
  /// The timer runs on `ioc`; `work` on `store_threads`. Both must outlive the schedule.
  Periodic(boost::asio::io_context& ioc, pipeline::StoreExecutor& store_threads,
           std::chrono::milliseconds interval, Work work);
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  void start();
  void stop();

 private:
  boost::asio::awaitable<void> loop();

  boost::asio::io_context& ioc_;
  pipeline::StoreExecutor& store_threads_;
  std::chrono::milliseconds interval_;
  Work work_;
  boost::asio::steady_timer timer_;
  std::atomic<bool> stopping_{false};
};

}  // namespace sdoh::runtime
