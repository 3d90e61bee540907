#pragma once
// Screening mapping tables, loaded from data (schemas/mappings/): the Gravity SDOH categories
// and one file per instrument saying which LOINC question maps to which category, which
// answers are positive, negative or declined, how item answers combine into a domain result,
// and which question carries the family's request for help. Adding an instrument is adding a
// file; see schemas/mappings/README.md for the format.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::mapping {

class LocalCodes;

inline constexpr std::string_view kLoinc = "http://loinc.org";

enum class AnswerResult { kPositive, kNegative, kDeclined, kUnknown };
std::string_view to_string(AnswerResult r);

struct Coding {
  std::string system;
  std::string code;
  std::string display;
};

struct AnswerRule {
  std::string code;
  std::string display;
  AnswerResult result = AnswerResult::kUnknown;
  std::string category;  ///< overrides the item's category (multi-select items); empty = item's
  std::optional<int> points;
  std::string source;  ///< where it was verified, when not the item's source
};

struct RangeRule {
  std::optional<double> min;  ///< inclusive
  std::optional<double> max;  ///< exclusive
  AnswerResult result = AnswerResult::kUnknown;
  std::optional<int> points;
};

enum class AnswerType { kCoding, kQuantity, kString, kBoolean };

struct ItemRule {
  std::string system{kLoinc};
  std::string code;
  std::string display;
  std::vector<std::string> link_ids;
  std::string category;
  AnswerType answer_type = AnswerType::kCoding;
  std::vector<AnswerRule> answers;
  std::vector<RangeRule> ranges;
  bool assistance = false;  ///< carries the family's request for help, not a screening answer
  bool derived = false;     ///< a computed result (e.g. HVS food insecurity risk)
  std::string source;       ///< where the question, its answers and their meaning were verified

  /// An assistance question whose answers also screen (AHC 96780-2 "Yes, help finding work"
  /// is a positive employment screen): some answer's result is not unknown.
  bool screens() const;

  const AnswerRule* answer(std::string_view code) const;
};

enum class DomainRuleKind { kAnyPositive, kScoreAtLeast };

struct DomainRule {
  std::string category;
  DomainRuleKind kind = DomainRuleKind::kAnyPositive;
  int threshold = 0;
};

struct AssistanceRule {
  std::string item;                     ///< item code
  bool all_positive = false;            ///< applies to every positive domain
  std::vector<std::string> categories;  ///< else these categories
  std::map<std::string, bool> answers;  ///< answer code → help requested
};

struct Instrument {
  std::string id;
  std::string title;
  std::string version;
  std::vector<std::string> sources;
  Coding panel;
  std::vector<std::string> questionnaires;
  std::vector<ItemRule> items;
  std::vector<DomainRule> domains;
  std::vector<AssistanceRule> assistance;

  const ItemRule* item(std::string_view system, std::string_view code) const;
  const ItemRule* item_by_link_id(std::string_view link_id) const;
  const DomainRule* domain(std::string_view category) const;
};

class MappingTables {
 public:
  /// Loads categories.json and instruments/*.json from `dir`, validating each instrument
  /// against instrument.schema.json and the rules between files. The error's message names
  /// the file, the JSON path and the reason.
  static Result<std::shared_ptr<const MappingTables>> load(const std::filesystem::path& dir);

  const Instrument* by_id(std::string_view id) const;
  const Instrument* by_panel(std::string_view system, std::string_view code) const;
  /// `url` may carry a "|version" suffix.
  const Instrument* by_questionnaire(std::string_view url) const;
  /// The instrument that defines a question, for answers that arrive without a panel.
  const Instrument* by_item(std::string_view system, std::string_view code) const;

  bool known_category(std::string_view code) const;
  std::string_view category_display(std::string_view code) const;
  const std::string& category_system() const { return category_system_; }
  const std::vector<Instrument>& instruments() const { return instruments_; }
  /// The clinics' local need codes (local/*.json; see local_codes.hpp).
  const LocalCodes& local_codes() const;

 private:
  std::shared_ptr<const LocalCodes> local_codes_;
  std::string category_system_;
  std::map<std::string, std::string, std::less<>> categories_;  // code → display
  std::vector<Instrument> instruments_;
};

}  // namespace sdoh::mapping
