#pragma once
// Readiness: each component registers a check that returns its *cached* state — a check runs
// on an I/O thread when /readyz is asked and must never block (the Kafka client refreshes
// broker metadata on its own thread; the store reports the state of its last transaction).
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace sdoh::ops {

struct CheckState {
  bool ok = false;
  std::string detail;  ///< short, operator-facing, never PHI
};

class Health {
 public:
  void add_check(std::string name, std::function<CheckState()> check);

  struct Report {
    bool ready = false;
    bool draining = false;
    std::vector<std::pair<std::string, CheckState>> checks;
  };
  /// Ready when every check is ok and the process is not draining.
  Report readiness() const;

  /// SIGTERM received: /readyz turns 503 so load balancers stop sending.
  void set_draining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, std::function<CheckState()>>> checks_;
  std::atomic<bool> draining_{false};
};

}  // namespace sdoh::ops
