#include "gateway/measures/equity.hpp"

#include <cctype>
#include <cmath>
#include <map>
#include <utility>

namespace sdoh::measures {

namespace {

constexpr double kDay = 86400.0;

// CDC Race & Ethnicity code set 1.0, the OMB categories (US Core race and ethnicity extensions).
constexpr std::pair<std::string_view, std::string_view> kRace[] = {
    {"1002-5", "American Indian or Alaska Native"},
    {"2028-9", "Asian"},
    {"2054-5", "Black or African American"},
    {"2076-8", "Native Hawaiian or Other Pacific Islander"},
    {"2106-3", "White"},
    {"2131-1", "Other Race"},
    {"ASKU", "Asked but no answer"},
    {"UNK", "Unknown"},
};
constexpr std::pair<std::string_view, std::string_view> kEthnicity[] = {
    {"2135-2", "Hispanic or Latino"},
    {"2186-5", "Not Hispanic or Latino"},
    {"ASKU", "Asked but no answer"},
    {"UNK", "Unknown"},
};
// BCP 47 primary language subtags most often preferred by US families besides English.
constexpr std::pair<std::string_view, std::string_view> kLanguage[] = {
    {"ar", "Arabic"},         {"en", "English"}, {"es", "Spanish"},    {"fr", "French"},
    {"ht", "Haitian Creole"}, {"ko", "Korean"},  {"pt", "Portuguese"}, {"ru", "Russian"},
    {"so", "Somali"},         {"tl", "Tagalog"}, {"vi", "Vietnamese"}, {"zh", "Chinese"},
};

template <std::size_t N>
std::string_view find(const std::pair<std::string_view, std::string_view> (&table)[N],
                      std::string_view code) {
  for (const auto& [c, name] : table)
    if (c == code) return name;
  return {};
}

// Accumulates a group's figures.
struct Tally {
  std::int64_t referrals = 0;
  std::int64_t closed = 0;
  std::int64_t completed = 0;
  std::vector<double> days_to_close;

  void add(const ReferralTimeline& t) {
    ++referrals;
    if (!t.open()) {
      ++closed;
      if (t.closed_ms != 0)
        days_to_close.push_back(
            std::max(0.0, static_cast<double>(t.closed_ms - t.released_ms) / 1000.0 / kDay));
    }
    if (t.outcome == "completed") ++completed;
  }
  GroupFigures figures() const {
    GroupFigures f{referrals, closed, completed, std::nullopt, quantile(days_to_close, 0.5)};
    if (referrals > 0)
      f.completion_rate = static_cast<double>(completed) / static_cast<double>(referrals);
    return f;
  }
};

// HL7 v2 sends ISO 639-2 codes (PID-15 "spa^Spanish^ISO6392"), FHIR BCP 47 tags ("es",
// "es-MX"): the same language is one group whichever protocol the clinic used.
constexpr std::pair<std::string_view, std::string_view> kIso6392[] = {
    {"ara", "ar"}, {"chi", "zh"}, {"eng", "en"}, {"fra", "fr"}, {"fre", "fr"},
    {"hat", "ht"}, {"kor", "ko"}, {"por", "pt"}, {"rus", "ru"}, {"som", "so"},
    {"spa", "es"}, {"tgl", "tl"}, {"vie", "vi"}, {"zho", "zh"},
};

// A language's group: its primary subtag, lower case, in its two-letter form when it has one.
std::string language_group(std::string_view code) {
  std::string primary(code.substr(0, code.find_first_of("-_")));
  for (auto& c : primary)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (auto two = find(kIso6392, primary); !two.empty()) return std::string(two);
  return primary;
}

}  // namespace

std::string group_of(const ReferralTimeline& t, std::string_view dimension) {
  const std::string* value = nullptr;
  if (dimension == "race") value = &t.race;
  if (dimension == "ethnicity") value = &t.ethnicity;
  if (dimension == "language") value = &t.language;
  if (dimension == "zip3") value = &t.zip3;
  if (value == nullptr || value->empty()) return std::string(kUnknown);
  return dimension == "language" ? language_group(*value) : *value;
}

std::string group_label(std::string_view dimension, std::string_view group) {
  std::string_view name;
  if (dimension == "race") name = find(kRace, group);
  if (dimension == "ethnicity") name = find(kEthnicity, group);
  if (dimension == "language") name = find(kLanguage, group);
  if (group == kUnknown) name = "Unknown";
  return std::string(name.empty() ? group : name);
}

Equity equity(std::span<const ReferralTimeline> timelines, Window window, int min_cell) {
  Tally overall;
  std::map<std::string, Tally> groups[std::size(kDimensions)];
  for (const auto& t : timelines) {
    if (!window.contains(t.released_ms)) continue;
    overall.add(t);
    for (std::size_t d = 0; d < std::size(kDimensions); ++d)
      groups[d][group_of(t, kDimensions[d])].add(t);
  }
  Equity out;
  out.overall = overall.figures();
  for (std::size_t d = 0; d < std::size(kDimensions); ++d) {
    EquityDimension dim;
    dim.dimension = std::string(kDimensions[d]);
    for (const auto& [group, tally] : groups[d]) {
      EquityGroup g;
      g.group = group;
      g.label = group_label(dim.dimension, group);
      g.suppressed = tally.referrals < min_cell;
      if (!g.suppressed) {
        g.figures = tally.figures();
        if (g.figures.completion_rate && out.overall.completion_rate)
          g.gap_vs_overall = *g.figures.completion_rate - *out.overall.completion_rate;
        if (g.gap_vs_overall && (!dim.largest_gap || std::abs(*g.gap_vs_overall) >
                                                         std::abs(dim.largest_gap->gap_vs_overall)))
          dim.largest_gap = EquityDimension::Gap{group, *g.gap_vs_overall};
      }
      dim.groups.push_back(std::move(g));
    }
    out.dimensions.push_back(std::move(dim));
  }
  return out;
}

}  // namespace sdoh::measures
