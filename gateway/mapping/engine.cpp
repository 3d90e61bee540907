#include "gateway/mapping/engine.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"
#include "gateway/events/event.hpp"
#include "gateway/mapping/referral.hpp"

namespace sdoh::mapping {

std::string_view to_string(ResultStatus s) {
  switch (s) {
    case ResultStatus::kFinal:
      return "final";
    case ResultStatus::kCorrected:
      return "corrected";
    case ResultStatus::kCancelled:
      return "cancelled";
    case ResultStatus::kPreliminary:
      return "preliminary";
  }
  return "final";
}

AssistancePolicy::Rule AssistancePolicy::rule_for(std::string_view sender) const {
  if (auto it = by_sender.find(sender); it != by_sender.end()) return it->second;
  return default_rule;
}

std::optional<AssistancePolicy::Rule> AssistancePolicy::parse(std::string_view text) {
  if (text == "none") return Rule::kNone;
  if (text == "positive-domain") return Rule::kPositiveDomainRequestsHelp;
  return std::nullopt;
}

std::string ZipPolicy::zip3(std::string_view postal_code) const {
  // US ZIP or ZIP+4 only; anything else (a foreign postcode) yields no area.
  if (postal_code.size() != 5 && !(postal_code.size() == 10 && postal_code[5] == '-')) return {};
  for (std::size_t i = 0; i < postal_code.size(); ++i) {
    if (i == 5) continue;
    if (postal_code[i] < '0' || postal_code[i] > '9') return {};
  }
  std::string area(postal_code.substr(0, 3));
  if (std::find(restricted_zip3.begin(), restricted_zip3.end(), area) != restricted_zip3.end()) {
    return "000";
  }
  return area;
}

Result<ZipPolicy> load_zip_policy(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(Error::config(file.string(), file.string() + ": cannot read the file"));
  std::stringstream text;
  text << in.rdbuf();
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, text.str()) || !doc.IsObject() || !doc.HasMember("restricted") ||
      !doc["restricted"].IsArray()) {
    return fail(Error::config(file.string(),
                              file.string() + ": expected {\"restricted\": [\"036\", ...]}"));
  }
  ZipPolicy policy;
  for (const auto& v : doc["restricted"].GetArray()) {
    if (!v.IsString() || std::string_view(v.GetString()).size() != 3) {
      return fail(Error::config(file.string(),
                                file.string() + ": /restricted: every entry is a 3-digit string"));
    }
    policy.restricted_zip3.emplace_back(v.GetString());
  }
  return policy;
}

namespace {

// Parses the YYYY-MM-DD prefix of a date or date-time (also YYYYMMDD, HL7 style).
std::optional<std::tuple<int, int, int>> parse_date(std::string_view s) {
  int y = 0, m = 0, d = 0;
  auto num = [](std::string_view t, int& out) {
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
    return ec == std::errc() && p == t.data() + t.size();
  };
  if (s.size() >= 10 && s[4] == '-' && s[7] == '-') {
    if (num(s.substr(0, 4), y) && num(s.substr(5, 2), m) && num(s.substr(8, 2), d))
      return {{y, m, d}};
  } else if (s.size() >= 8 && num(s.substr(0, 8), y)) {
    if (num(s.substr(0, 4), y) && num(s.substr(4, 2), m) && num(s.substr(6, 2), d))
      return {{y, m, d}};
  }
  return std::nullopt;
}

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write_str(Writer& w, std::string_view key, std::string_view value) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void write_opt_str(Writer& w, std::string_view key, std::string_view value) {
  if (!value.empty()) write_str(w, key, value);
}

void write_coding(Writer& w, const Coding& c) {
  w.StartObject();
  write_opt_str(w, "system", c.system);
  write_str(w, "code", c.code);
  write_opt_str(w, "display", c.display);
  w.EndObject();
}

// An answer as received. Free text of a question no table knows is never copied (it may be an
// address or a name): `redact_text` writes {"redacted": true} in its place.
void write_answer(Writer& w, const AnswerValue& a, bool redact_text = false) {
  w.StartObject();
  if (a.coding) {
    write_opt_str(w, "system", a.coding->system);
    write_opt_str(w, "code", a.coding->code);
    write_opt_str(w, "display", a.coding->display);
  } else if (a.number) {
    w.Key("value");
    w.Double(*a.number);
  } else if (a.boolean) {
    w.Key("value");
    w.Bool(*a.boolean);
  } else if (redact_text) {
    w.Key("redacted");
    w.Bool(true);
  } else {
    write_str(w, "value", a.text);
  }
  w.EndObject();
}

struct Evaluated {
  AnswerResult result = AnswerResult::kUnknown;
  std::string category;
  std::optional<int> points;
  bool known = false;
};

Evaluated evaluate_answer(const ItemRule& rule, const AnswerValue& answer) {
  Evaluated e;
  e.category = rule.category;
  if (answer.coding) {
    if (const auto* a = rule.answer(answer.coding->code)) {
      e.result = a->result;
      e.points = a->points;
      if (!a->category.empty()) e.category = a->category;
      e.known = true;
    }
  } else if (answer.number) {
    for (const auto& r : rule.ranges) {
      if ((!r.min || *answer.number >= *r.min) && (!r.max || *answer.number < *r.max)) {
        e.result = r.result;
        e.points = r.points;
        e.known = true;
        break;
      }
    }
  } else if (answer.boolean && rule.answer_type == AnswerType::kBoolean) {
    e.result = *answer.boolean ? AnswerResult::kPositive : AnswerResult::kNegative;
    e.known = true;
  }
  return e;
}

struct ItemEntry {
  const ItemResponse* response;
  const AnswerValue* answer;
  AnswerResult result;
};

struct DomainAcc {
  std::string category;
  std::vector<ItemEntry> items;
  std::vector<std::string> answered_codes;  // distinct non-derived items answered (not declined)
  bool any_positive = false, any_negative = false, any_declined = false, any_other = false;
  int points = 0;
  std::optional<bool> assistance;
  bool by_policy = false;  // assistance from the clinic's policy, not the family's answer
};

AnswerResult any_positive_status(const DomainAcc& d) {
  if (d.any_positive) return AnswerResult::kPositive;
  if (d.any_negative) return AnswerResult::kNegative;
  if (d.any_declined && !d.any_other) return AnswerResult::kDeclined;
  return AnswerResult::kUnknown;
}

AnswerResult score_status(const DomainAcc& d, const DomainRule& rule, const Instrument& ins) {
  if (d.points >= rule.threshold) return AnswerResult::kPositive;
  std::size_t expected = 0;
  for (const auto& item : ins.items) {
    if (item.category == rule.category && !item.derived && item.screens()) ++expected;
  }
  if (d.answered_codes.size() >= expected && !d.any_declined) return AnswerResult::kNegative;
  if (d.any_declined && d.answered_codes.empty()) return AnswerResult::kDeclined;
  return AnswerResult::kUnknown;
}

}  // namespace

std::optional<int> age_in_months(std::string_view birth_date, std::string_view on_date) {
  const auto b = parse_date(birth_date);
  const auto o = parse_date(on_date);
  if (!b || !o) return std::nullopt;
  const auto [by, bm, bd] = *b;
  const auto [oy, om, od] = *o;
  const int months = (oy - by) * 12 + (om - bm) - (od < bd ? 1 : 0);
  if (months < 0) return std::nullopt;
  return months;
}

std::string age_band(std::string_view birth_date, std::string_view on_date) {
  const auto age = age_in_months(birth_date, on_date);
  if (!age) return {};
  const int months = *age;
  if (months < 12) return "0-11m";
  if (months < 24) return "12-23m";
  const int years = months / 12;
  if (years < 5) return "2-4y";
  if (years < 12) return "5-11y";
  if (years < 18) return "12-17y";
  return "18y+";
}

std::string screening_id(const NormalizedScreening& s) {
  return events::event_id("screening|" + s.protocol + "|" + s.sender + "|" + s.message_id,
                          s.position);
}

std::string ScreeningMapper::referral_id(std::string_view system, std::string_view value) const {
  if (known_) {
    auto legacy = legacy_referral_id(system, value);
    if (known_(legacy)) return legacy;
  }
  return pseudonymizer_.referral_id(system, value);
}

ScreeningMapper::ScreeningMapper(std::shared_ptr<const MappingTables> tables,
                                 identity::Pseudonymizer pseudonymizer, ZipPolicy zips,
                                 metrics::Registry& registry)
    : tables_(std::move(tables)),
      pseudonymizer_(std::move(pseudonymizer)),
      zips_(std::move(zips)),
      screenings_(registry.counter("sdoh_mapping_screenings_total",
                                   "Screenings mapped to events, by instrument.", {"instrument"})),
      unmapped_(registry.counter("sdoh_mapping_unmapped_items_total",
                                 "Answered questions no mapping table knows (kept as `unmapped`).",
                                 {"instrument"})),
      unknown_answers_(registry.counter(
          "sdoh_mapping_unknown_answers_total",
          "Answers to known questions that the tables do not list (result unknown).",
          {"instrument"})),
      unanswered_(registry.counter(
          "sdoh_mapping_unanswered_items_total",
          "Questions asked and not answered (final status, no answer; kept as `unanswered`).",
          {"instrument"})) {}

Result<MappedScreening> ScreeningMapper::map(const NormalizedScreening& s) const {
  auto out = evaluate(s);
  if (!out) return out;
  screenings_.with({out->instrument_id}).inc();
  if (out->unmapped_items > 0) unmapped_.with({out->instrument_id}).inc(out->unmapped_items);
  if (out->unknown_answers > 0)
    unknown_answers_.with({out->instrument_id}).inc(out->unknown_answers);
  if (out->unanswered_items > 0) unanswered_.with({out->instrument_id}).inc(out->unanswered_items);
  return out;
}

Result<MappedScreening> ScreeningMapper::evaluate(const NormalizedScreening& s) const {
  if (s.patient_identifier.empty()) {
    Location where;
    where.expression = "patient.identifier";
    return fail(Error::invalid(where, "the screening names no patient identifier"));
  }
  if (s.items.empty()) {
    Location where;
    where.expression = "items";
    return fail(Error::invalid(where, "the screening has no questions"));
  }

  // Which instrument: the questionnaire, else the panel, else the first question a table knows.
  const Instrument* ins = nullptr;
  if (!s.questionnaire.empty()) ins = tables_->by_questionnaire(s.questionnaire);
  if (ins == nullptr && s.panel) ins = tables_->by_panel(s.panel->system, s.panel->code);
  for (std::size_t i = 0; ins == nullptr && i < s.items.size(); ++i) {
    ins = tables_->by_item(s.items[i].question.system, s.items[i].question.code);
  }

  MappedScreening out;
  out.screening_id = screening_id(s);
  out.patient_pseudonym = pseudonymizer_.pseudonym(s.patient_authority, s.patient_identifier);
  out.instrument_id = ins != nullptr ? ins->id : "unknown";

  std::vector<DomainAcc> domains;
  auto domain = [&domains](const std::string& category) -> DomainAcc& {
    for (auto& d : domains) {
      if (d.category == category) return d;
    }
    domains.push_back(
        DomainAcc{category, {}, {}, false, false, false, false, 0, std::nullopt, false});
    return domains.back();
  };
  std::vector<const ItemResponse*> unmapped;
  // Asked, not answered: the item and the category its table gives it (empty when none does).
  std::vector<std::pair<const ItemResponse*, std::string>> unanswered;
  std::vector<std::pair<const AssistanceRule*, bool>> assistance;
  bool corrected = false;

  for (const auto& item : s.items) {
    if (item.status == ResultStatus::kCancelled) continue;  // cancelled: no domain result
    corrected = corrected || item.status == ResultStatus::kCorrected;
    const ItemRule* rule = nullptr;
    if (ins != nullptr) {
      rule = ins->item(item.question.system, item.question.code);
      if (rule == nullptr && !item.link_id.empty()) rule = ins->item_by_link_id(item.link_id);
    }
    if (item.answers.empty()) {
      // A FHIR item with neither a code nor a linkId a table knows cannot be told from a
      // display item (R4 QuestionnaireResponse items carry no type), so it is not recorded.
      if (item.unanswered() && (rule != nullptr || !item.question.code.empty())) {
        unanswered.emplace_back(&item, rule != nullptr ? rule->category : std::string());
      }
      continue;
    }
    if (rule == nullptr) {
      unmapped.push_back(&item);
      continue;
    }
    if (rule->assistance) {
      for (const auto& ar : ins->assistance) {
        if (ar.item != rule->code) continue;
        for (const auto& a : item.answers) {
          if (!a.coding) continue;
          if (auto it = ar.answers.find(a.coding->code); it != ar.answers.end()) {
            assistance.emplace_back(&ar, it->second);
          }
        }
      }
      // A help question whose answers also screen (AHC 96780-2) counts toward its category.
      if (!rule->screens()) continue;
    }
    std::vector<std::string> declined_in;
    for (const auto& a : item.answers) {
      const auto e = evaluate_answer(*rule, a);
      if (!e.known) ++out.unknown_answers;
      auto& d = domain(e.category);
      d.items.push_back({&item, &a, e.result});
      switch (e.result) {
        case AnswerResult::kPositive:
          d.any_positive = true;
          break;
        case AnswerResult::kNegative:
          d.any_negative = true;
          break;
        case AnswerResult::kDeclined:
          d.any_declined = true;
          break;
        case AnswerResult::kUnknown:
          d.any_other = true;
          break;
      }
      if (!rule->derived && e.result != AnswerResult::kDeclined) {
        d.points += e.points.value_or(0);
        if (std::find(d.answered_codes.begin(), d.answered_codes.end(), rule->code) ==
            d.answered_codes.end()) {
          d.answered_codes.push_back(rule->code);
        }
      }
    }
  }

  // The family's requests for help.
  for (const auto& [rule, requested] : assistance) {
    if (rule->all_positive) {
      for (auto& d : domains) {
        if (any_positive_status(d) == AnswerResult::kPositive ||
            (ins->domain(d.category) != nullptr &&
             ins->domain(d.category)->kind == DomainRuleKind::kScoreAtLeast &&
             score_status(d, *ins->domain(d.category), *ins) == AnswerResult::kPositive)) {
          d.assistance = requested;
        }
      }
    } else {
      for (const auto& c : rule->categories)
        domain(c).assistance = requested;
    }
  }

  auto status_of = [ins](const DomainAcc& d) {
    const auto* rule = ins != nullptr ? ins->domain(d.category) : nullptr;
    return rule != nullptr && rule->kind == DomainRuleKind::kScoreAtLeast
               ? score_status(d, *rule, *ins)
               : any_positive_status(d);
  };
  // The clinic's policy, where the family's own answer to a help question is missing.
  if (policy_.rule_for(s.sender) == AssistancePolicy::Rule::kPositiveDomainRequestsHelp) {
    for (auto& d : domains) {
      if (!d.assistance && status_of(d) == AnswerResult::kPositive) {
        d.assistance = true;
        d.by_policy = true;
      }
    }
  }

  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  write_str(w, "screeningId", out.screening_id);
  w.Key("supersedes");
  if (s.supersedes.empty()) {
    w.Null();
  } else {
    w.String(s.supersedes.c_str());
  }
  write_str(w, "resultStatus", corrected ? "corrected" : "final");
  w.Key("instrument");
  w.StartObject();
  write_str(w, "id", out.instrument_id);
  if (ins != nullptr) {
    write_str(w, "system", ins->panel.system);
    write_str(w, "code", ins->panel.code);
    write_str(w, "display", ins->panel.display.empty() ? ins->title : ins->panel.display);
  } else if (s.panel) {
    write_str(w, "system", s.panel->system);
    write_str(w, "code", s.panel->code);
    write_opt_str(w, "display", s.panel->display);
  }
  w.EndObject();
  write_str(w, "performed", s.performed);
  w.Key("facility");
  w.StartObject();
  write_str(w, "id", s.facility.code);
  write_opt_str(w, "system", s.facility.system);
  write_opt_str(w, "name", s.facility.display);
  w.EndObject();
  w.Key("source");
  w.StartObject();
  write_str(w, "protocol", s.protocol);
  write_str(w, "sender", s.sender);
  write_str(w, "messageId", s.message_id);
  write_opt_str(w, "resourceType", s.resource_type);
  w.EndObject();
  w.Key("patient");
  w.StartObject();
  write_str(w, "pseudonym", out.patient_pseudonym);
  write_opt_str(w, "ageBand", age_band(s.birth_date, s.performed));
  w.EndObject();

  w.Key("domains");
  w.StartArray();
  for (const auto& d : domains) {
    const auto status = status_of(d);
    out.domains.push_back({d.category, status, d.assistance, d.by_policy});
    w.StartObject();
    write_str(w, "category", d.category);
    write_str(w, "status", to_string(status));
    w.Key("assistanceRequested");
    if (d.assistance) {
      w.Bool(*d.assistance);
      write_str(w, "assistanceBasis", d.by_policy ? "clinic-policy" : "question");
    } else {
      w.Null();
    }
    w.Key("items");
    w.StartArray();
    for (const auto& e : d.items) {
      w.StartObject();
      write_str(w, "code", e.response->question.code);
      write_str(w, "system", e.response->question.system);
      write_opt_str(w, "display", e.response->question.display);
      w.Key("answer");
      write_answer(w, *e.answer);
      write_str(w, "result", to_string(e.result));
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();

  w.Key("unmapped");
  w.StartArray();
  for (const auto* item : unmapped) {
    w.StartObject();
    write_str(w, "code", item->question.code);  // may be empty: a FHIR item with only a linkId
    write_opt_str(w, "system", item->question.system);
    write_opt_str(w, "display", item->question.display);
    write_opt_str(w, "linkId", item->link_id);
    w.Key("answers");
    w.StartArray();
    for (const auto& a : item->answers)
      write_answer(w, a, /*redact_text=*/true);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  out.unmapped_items = unmapped.size();

  w.Key("unanswered");
  w.StartArray();
  for (const auto& [item, category] : unanswered) {
    w.StartObject();
    write_str(w, "code", item->question.code);
    write_opt_str(w, "system", item->question.system);
    write_opt_str(w, "display", item->question.display);
    write_opt_str(w, "linkId", item->link_id);
    write_opt_str(w, "category", category);
    w.EndObject();
  }
  w.EndArray();
  out.unanswered_items = unanswered.size();

  const auto zip3 = zips_.zip3(s.postal_code);
  if (!s.race.empty() || !s.ethnicity.empty() || s.language || !zip3.empty()) {
    w.Key("equity");
    w.StartObject();
    if (!s.race.empty()) {
      w.Key("race");
      w.StartArray();
      for (const auto& c : s.race)
        write_coding(w, c);
      w.EndArray();
    }
    if (!s.ethnicity.empty()) {
      w.Key("ethnicity");
      w.StartArray();
      for (const auto& c : s.ethnicity)
        write_coding(w, c);
      w.EndArray();
    }
    if (s.language) {
      w.Key("language");
      write_coding(w, *s.language);
    }
    write_opt_str(w, "zip3", zip3);
    w.EndObject();
  }
  w.EndObject();
  out.data.assign(buf.GetString(), buf.GetSize());
  return out;
}

}  // namespace sdoh::mapping
