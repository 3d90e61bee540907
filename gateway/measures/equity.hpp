#pragma once
// The equity view: of the referrals released in a window, how many closed and were completed,
// per group of families — by race, ethnicity, preferred language and 3-digit ZIP — each group's
// completion rate against the overall one, and the largest gap. Groups with fewer referrals than
// measures.min_cell are suppressed (CMS cell-size rule: no figure from fewer than 11), so that no
// family can be singled out; "unknown" (the field was not given) is a group like any other.
// Pure; /metrics, /ops/api/v1/equity and tools/report show it.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/measures/referral_measures.hpp"
#include "gateway/measures/timeline.hpp"

namespace sdoh::measures {

/// The figures of a group of referrals.
struct GroupFigures {
  std::int64_t referrals = 0;  ///< released in the window
  std::int64_t closed = 0;
  std::int64_t completed = 0;
  std::optional<double> completion_rate;       ///< completed / referrals; nullopt with none
  std::optional<double> median_days_to_close;  ///< from release; nullopt when none closed
};

struct EquityGroup {
  std::string group;  ///< the code as stored (OMB race/ethnicity code, language, zip3), or unknown
  std::string label;  ///< for display: the code's name where known, else the code
  /// Fewer than min_cell referrals: `figures` and `gap_vs_overall` must not be shown.
  bool suppressed = false;
  GroupFigures figures;
  std::optional<double> gap_vs_overall;  ///< completion_rate - overall's
};

struct EquityDimension {
  std::string dimension;            ///< race | ethnicity | language | zip3
  std::vector<EquityGroup> groups;  ///< sorted by group
  /// The unsuppressed group farthest from the overall rate (the first by group on a tie).
  struct Gap {
    std::string group;
    double gap_vs_overall = 0;
  };
  std::optional<Gap> largest_gap;
};

struct Equity {
  GroupFigures overall;
  std::vector<EquityDimension> dimensions;  ///< race, ethnicity, language, zip3
};

/// The dimensions, in the order shown.
inline constexpr std::string_view kDimensions[] = {"race", "ethnicity", "language", "zip3"};

/// The group `t` is in for `dimension` (kUnknown when the field was not given).
std::string group_of(const ReferralTimeline& t, std::string_view dimension);
/// A display name for a group: the OMB race and ethnicity categories (CDC Race & Ethnicity code
/// set, as US Core and HL7 table 0005 send them) and common language codes; else the code.
std::string group_label(std::string_view dimension, std::string_view group);

Equity equity(std::span<const ReferralTimeline> timelines, Window window, int min_cell);

}  // namespace sdoh::measures
