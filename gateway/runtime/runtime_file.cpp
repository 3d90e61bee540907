#include "gateway/runtime/runtime_file.hpp"

#include <fstream>

#include "gateway/core/json_text.hpp"

namespace sdoh::runtime {

std::string render_runtime_json(const RuntimeInfo& info) {
  auto str = [](std::string_view s) { return json_string(s); };
  auto boolean = [](bool b) { return b ? std::string("true") : std::string("false"); };
  std::string out = "{\n";
  out += "  \"pid\": " + std::to_string(info.pid) + ",\n";
  out += "  \"version\": " + str(info.version) + ",\n";
  out += "  \"gateway_id\": " + str(info.gateway_id) + ",\n";
  out += "  \"mode\": " + str(info.mode) + ",\n";
  out += "  \"started_at\": " + str(info.started_at) + ",\n";
  out += "  \"http\": {\"address\": " + str(info.http_address) +
         ", \"url\": " + str((info.http_tls ? "https://" : "http://") + info.http_address) +
         ", \"tls\": " + boolean(info.http_tls) + "},\n";
  out += "  \"mllp\": {\"address\": " + str(info.mllp_address) +
         ", \"tls\": " + boolean(info.mllp_tls) + "},\n";
  out += "  \"kafka\": {\"bootstrap_servers\": " + str(info.kafka_bootstrap) +
         ", \"embedded\": " + boolean(info.kafka_embedded) + "}\n";
  out += "}\n";
  return out;
}

Result<void> write_runtime_file(const std::filesystem::path& file, const RuntimeInfo& info) {
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << render_runtime_json(info);
    out.flush();
    if (!out) return fail(Error::unavailable("cannot write " + tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return fail(Error::unavailable("cannot rename " + tmp + ": " + ec.message()));
  return {};
}

}  // namespace sdoh::runtime
