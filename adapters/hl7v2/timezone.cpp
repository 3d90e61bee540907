#include "adapters/hl7v2/timezone.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sdoh::hl7v2 {
namespace {

namespace chrono = std::chrono;

std::int64_t be(std::string_view b, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<std::size_t>(i)]);
  if (bytes == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
  return static_cast<std::int64_t>(v);
}

Error bad_zone(const std::string& name, const std::string& why) {
  return Error::config("timezone", "time zone \"" + name + "\": " + why);
}

// POSIX "[+-]hh[:mm[:ss]]" at `s`; advances `s`.
bool parse_hms(std::string_view& s, std::int64_t& out) {
  int sign = 1;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    sign = s[0] == '-' ? -1 : 1;
    s.remove_prefix(1);
  }
  std::int64_t total = 0;
  for (int part = 0; part < 3; ++part) {
    if (part > 0) {
      if (s.empty() || s[0] != ':') break;
      s.remove_prefix(1);
    }
    std::size_t n = 0;
    std::int64_t v = 0;
    while (n < s.size() && std::isdigit(static_cast<unsigned char>(s[n])))
      v = v * 10 + (s[n++] - '0');
    if (n == 0) return false;
    s.remove_prefix(n);
    total += v * (part == 0 ? 3600 : part == 1 ? 60 : 1);
  }
  out = sign * total;
  return true;
}

bool parse_name(std::string_view& s) {
  if (!s.empty() && s[0] == '<') {
    const auto close = s.find('>');
    if (close == std::string_view::npos) return false;
    s.remove_prefix(close + 1);
    return true;
  }
  std::size_t n = 0;
  while (n < s.size() && std::isalpha(static_cast<unsigned char>(s[n])))
    ++n;
  if (n < 3) return false;
  s.remove_prefix(n);
  return true;
}

std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
  return chrono::sys_days(chrono::year(y) / chrono::month(m) / chrono::day(d))
      .time_since_epoch()
      .count();
}

int year_of(std::int64_t t) {
  const auto days = chrono::sys_days(chrono::days(t >= 0 ? t / 86400 : (t - 86399) / 86400));
  return static_cast<int>(chrono::year_month_day(days).year());
}

}  // namespace

std::filesystem::path zoneinfo_dir() {
  if (const char* dir = std::getenv("TZDIR"); dir != nullptr && *dir != '\0') return dir;
  return "/usr/share/zoneinfo";
}

Result<TimeZone> TimeZone::load(std::string_view name, const std::filesystem::path& dir) {
  const std::string n(name);
  // Names are paths below the zone directory: refuse anything that could leave it.
  if (n.empty() || n.front() == '/' || n.find("..") != std::string::npos)
    return fail(bad_zone(n, "not an IANA time zone name such as America/New_York"));
  std::ifstream in(dir / n, std::ios::binary);
  if (!in) return fail(bad_zone(n, "unknown (no file in " + dir.string() + ")"));
  std::stringstream bytes;
  bytes << in.rdbuf();
  return from_tzif(n, bytes.str());
}

Result<TimeZone> TimeZone::from_tzif(std::string name, std::string_view b) {
  constexpr std::size_t kHeader = 44;
  if (b.size() < kHeader || b.substr(0, 4) != "TZif")
    return fail(bad_zone(name, "not a TZif zone file"));
  if (b[4] < '2') return fail(bad_zone(name, "TZif version 1 files are not supported"));
  auto counts = [&](std::size_t at, std::int64_t c[6]) {
    for (int i = 0; i < 6; ++i)
      c[i] = be(b, at + 20 + static_cast<std::size_t>(i) * 4, 4);
  };
  std::int64_t c[6];  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  counts(0, c);
  // Skip the version 1 (32-bit) block; the version 2 block follows with 64-bit times.
  std::size_t at =
      kHeader + static_cast<std::size_t>(c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0]);
  if (b.size() < at + kHeader || b.substr(at, 4) != "TZif")
    return fail(bad_zone(name, "truncated zone file"));
  counts(at, c);
  at += kHeader;
  const auto timecnt = static_cast<std::size_t>(c[3]), typecnt = static_cast<std::size_t>(c[4]);
  const std::size_t need = timecnt * 9 + typecnt * 6 + static_cast<std::size_t>(c[5]) +
                           static_cast<std::size_t>(c[2]) * 12 + static_cast<std::size_t>(c[1]) +
                           static_cast<std::size_t>(c[0]);
  if (typecnt == 0 || b.size() < at + need) return fail(bad_zone(name, "truncated zone file"));
  TimeZone z;
  z.name_ = std::move(name);
  for (std::size_t i = 0; i < timecnt; ++i)
    z.transitions_.push_back(be(b, at + i * 8, 8));
  for (std::size_t i = 0; i < timecnt; ++i) {
    const auto type = static_cast<std::uint8_t>(b[at + timecnt * 8 + i]);
    if (type >= typecnt) return fail(bad_zone(name, "corrupt transition table"));
    z.transition_type_.push_back(type);
  }
  const auto types_at = at + timecnt * 9;
  for (std::size_t i = 0; i < typecnt; ++i)
    z.offsets_.push_back(be(b, types_at + i * 6, 4));
  z.initial_offset_ = z.offsets_[0];  // RFC 8536 3.2: type 0 applies before the first transition
  const auto footer_at = at + need;
  if (footer_at < b.size() && b[footer_at] == '\n') {
    const auto end = b.find('\n', footer_at + 1);
    if (end != std::string_view::npos) {
      const auto tz = b.substr(footer_at + 1, end - footer_at - 1);
      if (!tz.empty() && !parse_footer(tz, z.footer_))
        return fail(bad_zone(z.name_, "unreadable POSIX TZ rule in the zone file"));
    }
  }
  return z;
}

bool TimeZone::parse_footer(std::string_view s, Footer& f) {
  std::int64_t offset = 0;
  if (!parse_name(s) || !parse_hms(s, offset)) return false;
  f.std_offset = -offset;  // POSIX offsets count hours west of UTC
  f.valid = true;
  if (s.empty()) return true;
  if (!parse_name(s)) return false;
  f.has_dst = true;
  f.dst_offset = f.std_offset + 3600;
  if (!s.empty() && s[0] != ',') {
    if (!parse_hms(s, offset)) return false;
    f.dst_offset = -offset;
  }
  auto rule = [&s](Rule& r) {
    if (s.empty() || s[0] != ',') return false;
    s.remove_prefix(1);
    auto number = [&s](int& out) {
      std::size_t n = 0;
      out = 0;
      while (n < s.size() && std::isdigit(static_cast<unsigned char>(s[n])))
        out = out * 10 + (s[n++] - '0');
      s.remove_prefix(n);
      return n > 0;
    };
    if (!s.empty() && s[0] == 'M') {
      s.remove_prefix(1);
      r.kind = 'M';
      if (!number(r.month) || s.empty() || s[0] != '.') return false;
      s.remove_prefix(1);
      if (!number(r.week) || s.empty() || s[0] != '.') return false;
      s.remove_prefix(1);
      if (!number(r.day)) return false;
      if (r.month < 1 || r.month > 12 || r.week < 1 || r.week > 5 || r.day > 6) return false;
    } else if (!s.empty() && s[0] == 'J') {
      s.remove_prefix(1);
      r.kind = 'J';
      if (!number(r.day)) return false;
    } else {
      r.kind = 'n';
      if (!number(r.day)) return false;
    }
    if (!s.empty() && s[0] == '/') {
      s.remove_prefix(1);
      if (!parse_hms(s, r.time)) return false;
    }
    return true;
  };
  if (s.empty()) {
    // No rule given: POSIX leaves it implementation-defined; use the US rule like glibc.
    f.start = {'M', 3, 2, 0, 7200};
    f.end = {'M', 11, 1, 0, 7200};
    return true;
  }
  return rule(f.start) && rule(f.end) && s.empty();
}

std::int64_t TimeZone::rule_local_seconds(const Rule& r, int year) {
  std::int64_t day = 0;
  if (r.kind == 'M') {
    const auto ym = chrono::year(year) / chrono::month(static_cast<unsigned>(r.month));
    const chrono::weekday wd(static_cast<unsigned>(r.day));
    const chrono::sys_days d = r.week == 5
                                   ? chrono::sys_days(ym / chrono::weekday_last(wd))
                                   : chrono::sys_days(ym / wd[static_cast<unsigned>(r.week)]);
    day = d.time_since_epoch().count();
  } else if (r.kind == 'J') {
    // Julian day 1..365, February 29 never counted.
    day = days_from_civil(year, 1, 1) + r.day - 1;
    if (r.day >= 60 && chrono::year(year).is_leap()) ++day;
  } else {
    day = days_from_civil(year, 1, 1) + r.day;
  }
  return day * 86400 + r.time;
}

std::int64_t TimeZone::footer_offset(std::int64_t t) const {
  if (!footer_.has_dst) return footer_.std_offset;
  const int year = year_of(t + footer_.std_offset);
  // Transition instants in UTC: the start rule is in standard time, the end rule in DST.
  const auto start = rule_local_seconds(footer_.start, year) - footer_.std_offset;
  const auto end = rule_local_seconds(footer_.end, year) - footer_.dst_offset;
  const bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
  return dst ? footer_.dst_offset : footer_.std_offset;
}

std::chrono::seconds TimeZone::offset_at(std::chrono::sys_seconds when) const {
  const auto t = when.time_since_epoch().count();
  if (transitions_.empty() || t < transitions_.front()) {
    if (transitions_.empty() && footer_.valid) return chrono::seconds(footer_offset(t));
    return chrono::seconds(initial_offset_);
  }
  if (t >= transitions_.back() && footer_.valid) return chrono::seconds(footer_offset(t));
  const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), t);
  const auto index = static_cast<std::size_t>(it - transitions_.begin()) - 1;
  return chrono::seconds(offsets_[transition_type_[index]]);
}

std::chrono::sys_seconds TimeZone::to_utc(std::chrono::local_seconds local) const {
  const chrono::sys_seconds as_utc(local.time_since_epoch());
  // The offsets in effect a day either side bracket any single transition.
  const auto before = offset_at(as_utc - chrono::days(1));
  const auto after = offset_at(as_utc + chrono::days(1));
  const auto earlier = as_utc - std::max(before, after);
  const auto later = as_utc - std::min(before, after);
  if (offset_at(earlier) == std::max(before, after)) return earlier;
  if (offset_at(later) == std::min(before, after)) return later;
  return as_utc - before;  // in a gap: the offset before the transition moves it forward
}

}  // namespace sdoh::hl7v2
