#pragma once
// Structured JSON log lines on stdout, one object per line:
//   {"ts":"2026-11-25T10:00:00.123Z","level":"info","event":"mllp.listening","addr":"127.0.0.1:2575"}
// `event` is a stable dotted name operators can alert on; fields carry the details.
// Never pass PHI (names, identifiers, addresses, phone numbers) as a field: log control ids,
// senders, counts and reasons.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace sdoh::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError };

/// One key/value pair of a log line. Values are copied into the line at once.
struct Field {
  using Value = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;
  std::string_view key;
  Value value;

  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  template <class I>
  requires(std::is_integral_v<I>&& std::is_signed_v<I> && !std::is_same_v<I, bool>)
      Field(std::string_view k, I v)
      : key(k), value(static_cast<std::int64_t>(v)) {}
  template <class I>
  requires(std::is_integral_v<I>&& std::is_unsigned_v<I> && !std::is_same_v<I, bool>)
      Field(std::string_view k, I v)
      : key(k), value(static_cast<std::uint64_t>(v)) {}
};

using Fields = std::initializer_list<Field>;

/// Sets up the process-wide logger (stdout, UTC timestamps). Safe to call again to change level.
void init(Level level);
/// "info" → Level::kInfo; unknown names give kInfo.
Level parse_level(std::string_view name);
bool enabled(Level level);

void write(Level level, std::string_view event, Fields fields);
inline void trace(std::string_view event, Fields fields = {}) {
  write(Level::kTrace, event, fields);
}
inline void debug(std::string_view event, Fields fields = {}) {
  write(Level::kDebug, event, fields);
}
inline void info(std::string_view event, Fields fields = {}) {
  write(Level::kInfo, event, fields);
}
inline void warn(std::string_view event, Fields fields = {}) {
  write(Level::kWarn, event, fields);
}
inline void error(std::string_view event, Fields fields = {}) {
  write(Level::kError, event, fields);
}

/// Renders the part of a line after the level: "event":"x","k":v,... (exposed for tests).
std::string render_fields(std::string_view event, Fields fields);

/// Flushes buffered lines (before exit).
void flush();

}  // namespace sdoh::log
