#include "gateway/ops/health.hpp"

namespace sdoh::ops {

void Health::add_check(std::string name, std::function<CheckState()> check) {
  std::lock_guard lock(mutex_);
  checks_.emplace_back(std::move(name), std::move(check));
}

Health::Report Health::readiness() const {
  Report report;
  report.draining = draining();
  report.ready = !report.draining;
  std::lock_guard lock(mutex_);
  for (const auto& [name, check] : checks_) {
    auto state = check();
    report.ready = report.ready && state.ok;
    report.checks.emplace_back(name, std::move(state));
  }
  return report;
}

}  // namespace sdoh::ops
