#pragma once
// Every connection is a file descriptor. The soft RLIMIT_NOFILE a process inherits is often 1024
// (systemd's default, a shell's ulimit), far below what mllp.max_connections and
// http.max_connections allow, while the hard limit is much higher. A server raises its soft limit
// to the hard one at start, as nginx (worker_rlimit_nofile) and Envoy do, and says when even the
// hard limit is below what its configuration can use.
#include <cstdint>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::runtime {

struct DescriptorLimit {
  std::uint64_t before = 0;  ///< the soft limit the process started with
  std::uint64_t soft = 0;    ///< the soft limit now
  std::uint64_t hard = 0;
};

/// Raises the soft RLIMIT_NOFILE to the hard limit (or leaves it when that fails) and returns the
/// limits before and after; fails when they cannot be read. Process-wide: call once at start,
/// before any thread opens files.
Result<DescriptorLimit> raise_descriptor_limit();

/// Descriptors the configuration can hold open at once: every HTTP and MLLP connection allowed,
/// plus a reserve for the store, the broker connections, the listeners and logs.
std::uint64_t descriptors_wanted(const config::GatewayConfig& cfg);

/// Raises the limit and logs it (gateway.descriptor_limit), a warning when it is below
/// descriptors_wanted(cfg): connections past it would be refused at accept.
void raise_and_log_descriptor_limit(const config::GatewayConfig& cfg);

}  // namespace sdoh::runtime
