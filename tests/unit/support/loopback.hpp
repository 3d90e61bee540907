#pragma once
// What the listener tests (MLLP, HTTP) share: a deadline for every awaited event, a Gate that
// keeps a handler "in flight" until opened, a blocking loopback client whose every read has a
// deadline, and one sample read from a metrics registry's exposition.
#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <poll.h>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "gateway/metrics/registry.hpp"

namespace sdoh::test {

using LoopbackClock = std::chrono::steady_clock;
/// The longest any awaited event may take before the test fails; never slept.
inline constexpr std::chrono::milliseconds kWait{5000};

template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = kWait) {
  const auto deadline = LoopbackClock::now() + limit;
  while (!condition()) {
    if (LoopbackClock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

/// Keeps handler calls waiting until opened: a message or request "in flight" for as long as a
/// test needs.
class Gate {
 public:
  boost::asio::awaitable<void> wait() {
    auto executor = co_await boost::asio::this_coro::executor;
    boost::asio::steady_timer timer(executor, LoopbackClock::time_point::max());
    {
      std::lock_guard lock(mutex_);
      if (open_) co_return;
      waiting_.push_back({executor, &timer});
    }
    co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));  // open()
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    for (const auto& w : waiting_)
      boost::asio::post(w.executor, [timer = w.timer] { timer->cancel(); });
    waiting_.clear();
  }

 private:
  struct Waiter {
    boost::asio::any_io_executor executor;
    boost::asio::steady_timer* timer;
  };
  std::mutex mutex_;
  bool open_ = false;
  std::vector<Waiter> waiting_;
};

/// A client on plain blocking TCP. Reads wait on poll() with a deadline, so a listener that
/// never answers fails the test instead of hanging it. `from` picks the client's address (all
/// of 127.0.0.0/8 is loopback), to be a different peer. Protocol clients derive from it and
/// take what they understand from received_.
class LoopbackClient {
 public:
  explicit LoopbackClient(std::uint16_t port, const char* from = "127.0.0.1") : socket_(io_) {
    namespace ip = boost::asio::ip;
    boost::system::error_code ec;
    socket_.open(ip::tcp::v4(), ec);
    if (!ec) socket_.bind({ip::make_address(from), 0}, ec);
    if (!ec) socket_.connect({ip::make_address("127.0.0.1"), port}, ec);
    connected_ = !ec;
  }
  bool connected() const { return connected_; }
  std::uint16_t local_port() const { return socket_.local_endpoint().port(); }
  void send(const std::string& bytes) {
    boost::system::error_code ignored;  // the listener may have closed already
    boost::asio::write(socket_, boost::asio::buffer(bytes), ignored);
  }
  /// Whether `n` bytes have arrived within `limit`.
  bool read_at_least(std::size_t n, std::chrono::milliseconds limit = kWait) {
    const auto deadline = LoopbackClock::now() + limit;
    while (received_.size() < n) {
      if (closed_ || !read_once(deadline)) return false;
    }
    return true;
  }
  /// Whether the listener closed the connection within `limit` (what came before is kept).
  bool wait_closed(std::chrono::milliseconds limit = kWait) {
    const auto deadline = LoopbackClock::now() + limit;
    while (!closed_) {
      if (!read_once(deadline)) return false;
    }
    return true;
  }
  bool closed() const { return closed_; }
  /// Bytes received and not yet taken.
  const std::string& unread() const { return received_; }
  void close() { socket_.close(); }

 protected:
  /// One read, if anything arrives by `deadline`.
  bool read_once(LoopbackClock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - LoopbackClock::now());
    if (left.count() <= 0) return false;
    pollfd p{socket_.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    std::array<char, 64 * 1024> chunk{};
    boost::system::error_code ec;
    const auto n = socket_.read_some(boost::asio::buffer(chunk), ec);
    if (ec) {
      closed_ = true;  // end of stream or reset
    } else {
      received_.append(chunk.data(), n);
    }
    return true;
  }

  bool closed_ = false;
  std::string received_;

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  bool connected_ = false;
};

/// A sample's value from the registry's exposition ("name" or "name{labels}"); -1 when absent.
inline double metric_sample(const metrics::Registry& registry, const std::string& sample) {
  const auto text = registry.render();
  const auto at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + sample.size() + 2));
}

}  // namespace sdoh::test
