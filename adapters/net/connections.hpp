#pragma once
// The open connections of one listener, so that a drain can close the idle ones at once and
// let busy ones finish their current message (FIELD-NOTES: shutdown must not hang on a
// connected client). Included only by server .cpp files.
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <set>

#include <boost/asio/any_io_executor.hpp>

namespace sdoh::net {

/// One connection's handle. `idle` and `alive` belong to the connection's strand (`executor`);
/// the tracker only reads them from closures posted to that strand.
struct ConnectionControl {
  boost::asio::any_io_executor executor;
  std::function<void()> close;  ///< cancels the socket; runs on `executor`
  bool idle = false;            ///< waiting for the next request/frame
  bool alive = true;            ///< false once the session has ended
};

class ConnectionTracker {
 public:
  std::shared_ptr<ConnectionControl> add(boost::asio::any_io_executor executor,
                                         std::function<void()> close);
  /// Called by the session as it ends (on its strand).
  void remove(const std::shared_ptr<ConnectionControl>& control);
  /// Stops new work: idle connections are closed now, busy ones after their current message.
  void stop();
  bool stopping() const { return stopping_.load(); }
  std::size_t count() const { return count_.load(); }

 private:
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> count_{0};
  std::mutex mutex_;
  std::set<std::shared_ptr<ConnectionControl>> connections_;
};

}  // namespace sdoh::net
