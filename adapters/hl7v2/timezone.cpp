#include "adapters/hl7v2/timezone.hpp"

#include <cstdlib>
#include <date/tz.h>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>

// date 3.0.1's ptz.h names hh_mm_ss unqualified where both `using namespace date` and `using
// namespace std::chrono` are in force, which C++20's std::chrono::hh_mm_ss makes ambiguous (and
// qualified as date::hh_mm_ss elsewhere). Both spellings are pointed at date's own here.
namespace date {
template <class Duration>
using hh_mm_ss_date = hh_mm_ss<Duration>;
}  // namespace date
#define hh_mm_ss hh_mm_ss_date
#include <date/ptz.h>
#undef hh_mm_ss

namespace sdoh::hl7v2 {

namespace {

// date/tz keeps its own local_seconds and sys_seconds (std::chrono's clocks in C++20); the
// durations since the epoch are the same.
date::local_seconds to_date(std::chrono::local_seconds t) {
  return date::local_seconds(t.time_since_epoch());
}
date::sys_seconds to_date(std::chrono::sys_seconds t) {
  return date::sys_seconds(t.time_since_epoch());
}

// The POSIX TZ string that ends a version 2+ TZif file: "\n<TZ string>\n" (RFC 8536 3.3), for
// instants after the file's last transition. Empty when the file has none or cannot be read.
std::string tzif_footer(std::string_view name) {
  const char* dir = std::getenv("TZDIR");
  const std::filesystem::path base = dir != nullptr && *dir != '\0' ? dir : "/usr/share/zoneinfo";
  std::ifstream in(base / name, std::ios::binary);
  if (!in) return {};
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const auto text = bytes.str();
  if (text.size() < 2 || text.back() != '\n') return {};
  const auto start = text.rfind('\n', text.size() - 2);
  if (start == std::string::npos) return {};
  return text.substr(start + 1, text.size() - start - 2);
}

}  // namespace

Result<TimeZone> TimeZone::load(std::string_view name) {
  TimeZone tz;
  tz.name_ = std::string(name);
  // date::locate_zone throws std::runtime_error for a name the database lacks, and when it first
  // reads the database and finds none: both are the operator's to fix, so both are kConfig.
  try {
    tz.zone_ = date::locate_zone(name);
  } catch (const std::exception& e) {
    return fail(Error::config("timezone", "\"" + tz.name_ +
                                              "\" is not an IANA time zone known to this "
                                              "system's tzdata (such as America/New_York): " +
                                              e.what()));
  }
  // The last period date/tz knows never ends; it begins at the last transition.
  const date::sys_seconds far_future = date::sys_days(date::year(9999) / 1 / 1);
  tz.last_transition_ =
      std::chrono::sys_seconds(tz.zone_->get_info(far_future).begin.time_since_epoch());
  if (const auto footer = tzif_footer(name); !footer.empty()) {
    try {
      tz.rule_ = std::make_shared<const Posix::time_zone>(footer);
    } catch (const std::exception&) {
      // A rule date/tz cannot parse: keep the last transition's offset, as date/tz alone does.
    }
  }
  return tz;
}

std::chrono::seconds TimeZone::offset_at(std::chrono::sys_seconds t) const {
  if (rule_ && t >= last_transition_) return rule_->get_info(to_date(t)).offset;
  return zone_->get_info(to_date(t)).offset;
}

std::chrono::sys_seconds TimeZone::to_utc(std::chrono::local_seconds local) const {
  auto info = zone_->get_info(to_date(local));
  if (rule_ && info.result == date::local_info::unique &&
      info.first.begin >= to_date(last_transition_)) {
    info = rule_->get_info(to_date(local));
  }
  // For a unique time, `first` is its only offset; for an ambiguous one, the earlier instant's
  // (the offset before clocks went back); for a skipped one, the offset before the gap, which
  // moves the time later by the gap's length.
  return std::chrono::sys_seconds(local.time_since_epoch() - info.first.offset);
}

}  // namespace sdoh::hl7v2
