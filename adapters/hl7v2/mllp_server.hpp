#pragma once
// The MLLP listener: accepts TCP (or TLS, optionally mTLS) connections from clinic interface
// engines, frames messages, hands each one to the Hl7Handler and writes its ACK back. One
// coroutine per connection and one message at a time per connection, so ACKs always leave in
// the order messages arrived (FIELD-NOTES: an ACK must never be credited to the wrong message).
#include <cstddef>
#include <memory>
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/pipeline/hl7_port.hpp"

namespace boost::asio {
class io_context;
}

namespace sdoh::hl7v2 {

class MllpServer {
 public:
  /// `handler` and `registry` must outlive every connection (the runtime destroys the
  /// io_context first).
  MllpServer(boost::asio::io_context& ioc, const config::MllpConfig& cfg,
             pipeline::Hl7Handler& handler, metrics::Registry& registry);
  ~MllpServer();
  MllpServer(const MllpServer&) = delete;
  MllpServer& operator=(const MllpServer&) = delete;

  /// Loads TLS (if configured) and binds; returns the bound address.
  Result<std::string> bind();
  void start();
  /// Loads the TLS certificate and key again (SIGHUP): new connections use them, open ones keep
  /// theirs. On failure the current ones stay. Nothing to do for a plain listener.
  Result<void> reload_tls();
  /// Stops accepting; idle connections close now, a connection with a message in flight
  /// closes after writing its ACK. Thread-safe, idempotent.
  void stop();
  std::size_t open_connections() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace sdoh::hl7v2
