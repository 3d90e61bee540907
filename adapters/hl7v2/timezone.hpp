#pragma once
// IANA time zones for HL7 timestamps sent without an offset (HL7 v2.5.1 2.A.22: a DTM without
// an offset is in the sender's local time). libstdc++ 12 has no std::chrono::tzdb, so this
// reads the system's compiled zone files (TZif, RFC 8536, package tzdata) itself: the
// transition table, and the POSIX TZ rule in the footer for instants after the last transition.
// Zones are loaded once at start-up; lookups are pure and thread-safe.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::hl7v2 {

/// $TZDIR when set, else /usr/share/zoneinfo.
std::filesystem::path zoneinfo_dir();

class TimeZone {
 public:
  /// Loads `name` ("America/New_York") from `dir`. Fails (kConfig) for an unknown or
  /// unreadable zone, naming it.
  static Result<TimeZone> load(std::string_view name, const std::filesystem::path& dir);
  static Result<TimeZone> load(std::string_view name) { return load(name, zoneinfo_dir()); }
  /// Parses TZif bytes (version 2 or later).
  static Result<TimeZone> from_tzif(std::string name, std::string_view bytes);

  const std::string& name() const { return name_; }

  /// UTC offset in effect at instant `t`.
  std::chrono::seconds offset_at(std::chrono::sys_seconds t) const;

  /// The instant of a local wall-clock time. An ambiguous time (the repeated hour when clocks
  /// go back) gives the earlier instant; a time that does not exist (the hour skipped when
  /// clocks go forward) is moved later by the length of the gap, as java.time does.
  std::chrono::sys_seconds to_utc(std::chrono::local_seconds local) const;

 private:
  struct Rule {  // POSIX TZ "Mm.w.d[/time]", "Jn[/time]" or "n[/time]"
    char kind = 'M';
    int month = 0, week = 0, day = 0;
    std::int64_t time = 7200;  // seconds after local midnight
  };
  struct Footer {
    bool valid = false;
    std::int64_t std_offset = 0, dst_offset = 0;  // seconds east of UTC
    bool has_dst = false;
    Rule start, end;
  };
  static bool parse_footer(std::string_view tz, Footer& out);
  static std::int64_t rule_local_seconds(const Rule& r, int year);
  std::int64_t footer_offset(std::int64_t t) const;

  std::string name_;
  std::vector<std::int64_t> transitions_;      // UTC seconds, ascending
  std::vector<std::uint8_t> transition_type_;  // index into offsets_
  std::vector<std::int64_t> offsets_;          // per local time type, seconds east of UTC
  std::int64_t initial_offset_ = 0;
  Footer footer_;
};

}  // namespace sdoh::hl7v2
