#include "gateway/runtime/periodic.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sdoh::runtime {

namespace asio = boost::asio;

Periodic::Periodic(asio::io_context& ioc, pipeline::StoreExecutor& store_threads,
                   std::chrono::milliseconds interval, Work work)
    : ioc_(ioc),
      store_threads_(store_threads),
      interval_(interval),
      work_(std::move(work)),
      timer_(ioc) {}

void Periodic::start() {
  asio::co_spawn(ioc_, loop(), asio::detached);
}

void Periodic::stop() {
  stopping_ = true;
  // The timer belongs to the io_context's threads: cancelled there.
  asio::post(ioc_, [this] { timer_.cancel(); });
}

asio::awaitable<void> Periodic::loop() {
  while (!stopping_) {
    timer_.expires_after(interval_);
    auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || stopping_) break;
    co_await store_threads_.run(work_());
  }
}

}  // namespace sdoh::runtime
