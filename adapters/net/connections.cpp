#include "adapters/net/connections.hpp"

#include <boost/asio/post.hpp>

namespace sdoh::net {

std::shared_ptr<ConnectionControl> ConnectionTracker::add(boost::asio::any_io_executor executor,
                                                          std::function<void()> close) {
  auto control = std::make_shared<ConnectionControl>();
  control->executor = std::move(executor);
  control->close = std::move(close);
  std::lock_guard lock(mutex_);
  connections_.insert(control);
  count_.fetch_add(1);
  return control;
}

void ConnectionTracker::remove(const std::shared_ptr<ConnectionControl>& control) {
  control->alive = false;
  std::lock_guard lock(mutex_);
  if (connections_.erase(control) != 0) count_.fetch_sub(1);
}

void ConnectionTracker::stop() {
  stopping_.store(true);
  std::lock_guard lock(mutex_);
  for (const auto& control : connections_) {
    // Runs on the connection's strand, so it sees idle/alive as the session left them.
    boost::asio::post(control->executor, [control] {
      if (control->alive && control->idle) control->close();
    });
  }
}

}  // namespace sdoh::net
