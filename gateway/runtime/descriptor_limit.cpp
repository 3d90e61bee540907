#include "gateway/runtime/descriptor_limit.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/resource.h>

#include "gateway/log/log.hpp"

namespace sdoh::runtime {

namespace {
// The store (database, WAL, checkpoint and reader connections), the broker's sockets, listeners,
// timers and logs: generous, since running short refuses connections.
constexpr std::uint64_t kReservedDescriptors = 256;
}  // namespace

Result<DescriptorLimit> raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return fail(Error::unavailable(std::string("getrlimit(RLIMIT_NOFILE) failed: ") +
                                   std::strerror(errno)));
  }
  DescriptorLimit out{limit.rlim_cur, limit.rlim_cur, limit.rlim_max};
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    // Fails when the hard limit is unlimited and above fs.nr_open: the soft limit stays.
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) out.soft = raised.rlim_cur;
  }
  return out;
}

std::uint64_t descriptors_wanted(const config::GatewayConfig& cfg) {
  return cfg.http.max_connections + cfg.mllp.max_connections + kReservedDescriptors;
}

void raise_and_log_descriptor_limit(const config::GatewayConfig& cfg) {
  const auto wanted = descriptors_wanted(cfg);
  const auto raised = raise_descriptor_limit();
  if (!raised) {
    log::warn("gateway.descriptor_limit_unknown",
              {{"wanted", wanted},
               {"detail", raised.error().message +
                              ": the limit stays as the process started with it, and "
                              "connections past it are refused at accept"}});
    return;
  }
  const auto& limit = *raised;
  if (limit.soft != RLIM_INFINITY && limit.soft < wanted) {
    log::warn("gateway.descriptor_limit_low",
              {{"soft", limit.soft},
               {"hard", limit.hard},
               {"wanted", wanted},
               {"detail",
                "connections past the limit are refused at accept: raise the hard limit "
                "(LimitNOFILE= in the systemd unit, ulimit -Hn) or lower "
                "http.max_connections / mllp.max_connections"}});
  } else {
    log::info("gateway.descriptor_limit", {{"soft", limit.soft},
                                           {"hard", limit.hard},
                                           {"started_with", limit.before},
                                           {"wanted", wanted}});
  }
}

}  // namespace sdoh::runtime
