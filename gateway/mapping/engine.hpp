#pragma once
// The mapping engine: one copy of the logic that turns a NormalizedScreening into the data of
// an org.sdoh.screening.v1 event, driven by the mapping tables. Both adapters call it.
// Items the tables do not know are kept in the event as `unmapped` and counted, never dropped.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/core/result.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/mapping/screening.hpp"
#include "gateway/mapping/tables.hpp"
#include "gateway/metrics/registry.hpp"

namespace sdoh::mapping {

/// One domain's outcome, for routing referrals from assistance requests.
struct DomainOutcome {
  std::string category;
  AnswerResult status = AnswerResult::kUnknown;
  std::optional<bool> assistance_requested;
  bool by_clinic_policy =
      false;  ///< assistance_requested came from AssistancePolicy, not a question
};

/// A clinic's rule for instruments that carry no help question of their own (or whose help
/// question was not answered): whether a positive domain counts as the family's request for
/// help. Off unless the operator configures it (mapping.assistance_policy), per sender.
struct AssistancePolicy {
  enum class Rule { kNone, kPositiveDomainRequestsHelp };
  Rule default_rule = Rule::kNone;
  std::map<std::string, Rule, std::less<>> by_sender;  ///< NormalizedScreening::sender → rule

  Rule rule_for(std::string_view sender) const;
  /// "none" | "positive-domain" → the rule; nullopt for anything else.
  static std::optional<Rule> parse(std::string_view text);
};

struct MappedScreening {
  std::string screening_id;
  std::string patient_pseudonym;
  std::string instrument_id;  ///< "unknown" when no table matched
  std::vector<DomainOutcome> domains;
  std::size_t unmapped_items = 0;
  std::size_t unknown_answers = 0;   ///< known questions with answers the tables do not list
  std::size_t unanswered_items = 0;  ///< questions asked (final/corrected) with no answer
  std::string data;                  ///< the event's data object as JSON text
};

/// 3-digit ZIP areas with fewer than 20,000 people, which HIPAA Safe Harbor replaces with "000".
struct ZipPolicy {
  std::vector<std::string> restricted_zip3;
  /// "277" for "27701" or "27701-1234"; "000" for a restricted area; empty when not a US ZIP.
  std::string zip3(std::string_view postal_code) const;
};

/// Loads schemas/privacy/restricted-zip3.json.
Result<ZipPolicy> load_zip_policy(const std::filesystem::path& file);

/// "0-11m", "12-23m", "2-4y", "5-11y", "12-17y", "18y+" from a birth date and the screening
/// date (both YYYY-MM-DD prefixes); empty when either is missing or malformed.
std::string age_band(std::string_view birth_date, std::string_view on_date);

/// The age in completed months on `on_date` (both YYYY-MM-DD prefixes), e.g. 35 the day before
/// the third birthday; nullopt when either is missing or malformed, or `on_date` is before birth.
std::optional<int> age_in_months(std::string_view birth_date, std::string_view on_date);

class ScreeningMapper {
 public:
  ScreeningMapper(std::shared_ptr<const MappingTables> tables,
                  identity::Pseudonymizer pseudonymizer, ZipPolicy zips,
                  metrics::Registry& registry);

  /// Fails (kInvalid, with `where.expression` naming the field) only when the screening cannot
  /// be an event at all: no patient identifier, or no items. A screening whose only items were
  /// asked and not answered is an event: its `unanswered` list says so.
  Result<MappedScreening> map(const NormalizedScreening& screening) const;

  /// The same mapping without counting it in the screening metrics: for answers that support
  /// something else (the OBR/OBX of a REF^I12 referral, which name its need).
  Result<MappedScreening> evaluate(const NormalizedScreening& screening) const;

  const MappingTables& tables() const { return *tables_; }
  const identity::Pseudonymizer& pseudonymizer() const { return pseudonymizer_; }

  /// The referralId (32 lowercase hex, a valid FHIR id) for a clinic's referral number in its
  /// namespace: the keyed id (Pseudonymizer::referral_id), or the id a referral made before
  /// keyed ids already has (legacy_referral_id, when `known` says it exists). Deterministic, so
  /// every message about the referral finds the same id.
  std::string referral_id(std::string_view system, std::string_view value) const;
  /// Which referralIds exist (the store's referrals), for referrals made before keyed ids. Set
  /// once at start-up, before any message is mapped; empty: none is looked for.
  void recognise_existing_referrals(std::function<bool(const std::string& id)> known) {
    known_ = std::move(known);
  }
  const ZipPolicy& zip_policy() const { return zips_; }
  /// Set once at start-up, before any message is mapped.
  void set_assistance_policy(AssistancePolicy policy) { policy_ = std::move(policy); }

 private:
  std::shared_ptr<const MappingTables> tables_;
  identity::Pseudonymizer pseudonymizer_;
  ZipPolicy zips_;
  std::function<bool(const std::string&)> known_;
  AssistancePolicy policy_;
  metrics::Family<metrics::Counter>& screenings_;
  metrics::Family<metrics::Counter>& unmapped_;
  metrics::Family<metrics::Counter>& unknown_answers_;
  metrics::Family<metrics::Counter>& unanswered_;
};

/// The screeningId for a source message and position (deterministic, 32 hex).
std::string screening_id(const NormalizedScreening& s);

}  // namespace sdoh::mapping
