#pragma once
// The HTTP/1.1 listener (Boost.Beast), plain or TLS. One coroutine per connection; every read
// has a deadline, every request a header and body limit, and the number of connections a cap.
// Requests are converted to sdoh::http::Request and answered by the Router's handlers.
#include <cstddef>
#include <memory>
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/http/message.hpp"
#include "gateway/metrics/registry.hpp"

namespace boost::asio {
class io_context;
}

namespace sdoh::http {

class Server {
 public:
  /// `router` and `registry` must outlive every connection (the runtime owns them and destroys
  /// the io_context first).
  Server(boost::asio::io_context& ioc, const config::HttpConfig& cfg, const Router& router,
         metrics::Registry& registry);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the listener and loads the TLS context; returns the bound address ("127.0.0.1:8080").
  Result<std::string> bind();
  /// Starts accepting (after bind()).
  void start();
  /// Loads the TLS certificate and key again (SIGHUP): new connections use them, open ones keep
  /// theirs. On failure the current ones stay. Nothing to do for a plain listener.
  Result<void> reload_tls();
  /// Stops accepting and closes idle keep-alive connections; requests in flight finish and
  /// their connections close after the response. Thread-safe, idempotent.
  void stop();
  std::size_t open_connections() const;

  struct State;  // opaque; shared with the connection coroutines

 private:
  std::shared_ptr<State> state_;
};

}  // namespace sdoh::http
