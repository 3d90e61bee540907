#include "adapters/net/accept_loop.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gateway/log/log.hpp"

namespace sdoh::net {

namespace asio = boost::asio;
using asio::ip::tcp;

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, asio::io_context& ioc,
                                  const ConnectionTracker& tracker, const AcceptLimits& limits,
                                  const StartConnection& start) {
  constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ioc), kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // EMFILE and friends: back off instead of spinning; the acceptor keeps going.
      log::warn(limits.log_prefix + ".accept_failed", {{"reason", ec.message()}});
      asio::steady_timer t(ioc, std::chrono::milliseconds(100));
      co_await t.async_wait(kUseTuple);
      continue;
    }
    if (tracker.stopping()) co_return;
    if (tracker.count() >= limits.max_connections) {
      limits.rejected->inc();
      log::warn(limits.log_prefix + ".connection_limit", {{"limit", limits.max_connections}});
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    limits.accepted->inc();
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    start(std::move(socket));
  }
}

}  // namespace sdoh::net
