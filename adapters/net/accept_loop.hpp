#pragma once
// The accept loop both listeners share: accepts on its own strand, backs off on resource
// errors instead of spinning (the acceptor survives), refuses connections over the global cap,
// and starts each accepted connection on a strand of its own. The per-peer cap and the PROXY
// header are the connection's first step (adapters/net/admission.hpp), since a proxied client is
// known only once its header has been read. Included only by server .cpp files.
#include <cstddef>
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "adapters/net/connections.hpp"
#include "gateway/metrics/registry.hpp"

namespace sdoh::net {

struct AcceptLimits {
  std::size_t max_connections = 0;
  metrics::Counter* accepted = nullptr;
  metrics::Counter* rejected = nullptr;  ///< refused over max_connections
  std::string log_prefix;                ///< "http" or "mllp", for log events
};

using StartConnection = std::function<void(boost::asio::ip::tcp::socket)>;

/// Runs until the acceptor is closed. `start` is called with each accepted socket (already on
/// its own strand, TCP_NODELAY set). Everything is passed by reference and must outlive the
/// loop: callers keep them as named locals of their own coroutine frame (GCC 12 destroys some
/// temporaries of a co_await expression twice).
boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor,
                                         boost::asio::io_context& ioc,
                                         const ConnectionTracker& tracker,
                                         const AcceptLimits& limits, const StartConnection& start);

}  // namespace sdoh::net
