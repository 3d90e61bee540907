#pragma once
// <data_dir>/runtime.json: written once the gateway is ready, removed on a clean exit. Tools
// and tests read the bound addresses from it (ports may be configured as 0).
#include <filesystem>
#include <string>

#include "gateway/core/result.hpp"

namespace sdoh::runtime {

struct RuntimeInfo {
  long pid = 0;
  std::string version;
  std::string gateway_id;
  std::string mode;
  std::string started_at;  ///< RFC 3339, UTC
  std::string http_address;
  bool http_tls = false;
  std::string mllp_address;
  bool mllp_tls = false;
  std::string kafka_bootstrap;
  bool kafka_embedded = false;
};

std::string render_runtime_json(const RuntimeInfo& info);
/// Writes atomically (temporary file, then rename) so a reader never sees half a file.
Result<void> write_runtime_file(const std::filesystem::path& file, const RuntimeInfo& info);

}  // namespace sdoh::runtime
