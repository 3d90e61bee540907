#include "gateway/log/log.hpp"

#include <cmath>
#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "gateway/core/json_text.hpp"

namespace sdoh::log {
namespace {

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::kTrace:
      return spdlog::level::trace;
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance;
  return instance;
}

std::once_flag g_init_once;

void create_logger() {
  auto sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  auto l = std::make_shared<spdlog::logger>("sdoh", sink);
  // Level names are spelled out so that lines are the same whatever spdlog's defaults are.
  l->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})", spdlog::pattern_time_type::utc));
  l->flush_on(spdlog::level::warn);
  logger() = std::move(l);
}

}  // namespace

Level parse_level(std::string_view name) {
  if (name == "trace") return Level::kTrace;
  if (name == "debug") return Level::kDebug;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  return Level::kInfo;
}

void init(Level level) {
  std::call_once(g_init_once, create_logger);
  logger()->set_level(to_spdlog(level));
}

bool enabled(Level level) {
  std::call_once(g_init_once, create_logger);
  return logger()->should_log(to_spdlog(level));
}

std::string render_fields(std::string_view event, Fields fields) {
  std::string out = "\"event\":";
  append_json_string(out, event);
  for (const auto& f : fields) {
    out += ',';
    append_json_string(out, f.key);
    out += ':';
    std::visit(
        [&out](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string_view>) {
            append_json_string(out, v);
          } else if constexpr (std::is_same_v<V, bool>) {
            out += v ? "true" : "false";
          } else if constexpr (std::is_same_v<V, double>) {
            out += std::isfinite(v) ? std::to_string(v) : "null";
          } else {
            out += std::to_string(v);
          }
        },
        f.value);
  }
  return out;
}

void write(Level level, std::string_view event, Fields fields) {
  if (!enabled(level)) return;
  logger()->log(to_spdlog(level), render_fields(event, fields));
}

void flush() {
  if (logger()) logger()->flush();
}

}  // namespace sdoh::log
