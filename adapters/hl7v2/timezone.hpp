#pragma once
// IANA time zones for HL7 timestamps sent without an offset (HL7 v2.5.1 2.A.22: a DTM without
// an offset is in the sender's local time). libstdc++ 12 has no std::chrono::tzdb, so zones come
// from Howard Hinnant's date/tz (Debian libhowardhinnant-date-dev, the library C++20's
// std::chrono::tzdb was standardised from), built to read the system's tzdata
// (/usr/share/zoneinfo, package tzdata) rather than to download the IANA database. Zones are
// looked up once at start-up; lookups are pure and thread-safe.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/core/result.hpp"

namespace date {
class time_zone;
}
namespace Posix {
class time_zone;
}

namespace sdoh::hl7v2 {

class TimeZone {
 public:
  /// The zone `name` ("America/New_York") of the system's tzdata. Fails (kConfig), naming it, for
  /// a name the database does not have (or no database at all); never throws.
  static Result<TimeZone> load(std::string_view name);

  const std::string& name() const { return name_; }

  /// UTC offset in effect at instant `t`.
  std::chrono::seconds offset_at(std::chrono::sys_seconds t) const;

  /// The instant of a local wall-clock time. An ambiguous time (the repeated hour when clocks
  /// go back) gives the earlier instant; a time that does not exist (the hour skipped when
  /// clocks go forward) is moved later by the length of the gap, as java.time does.
  std::chrono::sys_seconds to_utc(std::chrono::local_seconds local) const;

 private:
  TimeZone() = default;

  std::string name_;
  const date::time_zone* zone_ = nullptr;  ///< owned by date's tzdb, which lives as the process
  /// The zone's rule for instants after its last transition (the TZif footer), or null. date/tz
  /// reading the OS database stops at the last transition the file lists (2037 in Debian's
  /// files) and keeps that offset for ever (HowardHinnant/date#760), so the rule takes over.
  std::shared_ptr<const Posix::time_zone> rule_;
  std::chrono::sys_seconds last_transition_{};
};

}  // namespace sdoh::hl7v2
