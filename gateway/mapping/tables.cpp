#include "gateway/mapping/tables.hpp"

#include <algorithm>
#include <set>

#include <rapidjson/document.h>
#include <rapidjson/schema.h>

#include "gateway/mapping/data_file.hpp"
#include "gateway/mapping/local_codes.hpp"

namespace sdoh::mapping {

std::string_view to_string(AnswerResult r) {
  switch (r) {
    case AnswerResult::kPositive:
      return "positive";
    case AnswerResult::kNegative:
      return "negative";
    case AnswerResult::kDeclined:
      return "declined";
    case AnswerResult::kUnknown:
      return "unknown";
  }
  return "unknown";
}

const AnswerRule* ItemRule::answer(std::string_view c) const {
  for (const auto& a : answers) {
    if (a.code == c) return &a;
  }
  return nullptr;
}

bool ItemRule::screens() const {
  return !assistance || std::any_of(answers.begin(), answers.end(), [](const AnswerRule& a) {
    return a.result != AnswerResult::kUnknown;
  });
}

const ItemRule* Instrument::item(std::string_view system, std::string_view code) const {
  for (const auto& i : items) {
    if (i.code == code && (system.empty() || i.system == system)) return &i;
  }
  return nullptr;
}

const ItemRule* Instrument::item_by_link_id(std::string_view link_id) const {
  for (const auto& i : items) {
    if (std::find(i.link_ids.begin(), i.link_ids.end(), link_id) != i.link_ids.end()) return &i;
  }
  return nullptr;
}

const DomainRule* Instrument::domain(std::string_view category) const {
  for (const auto& d : domains) {
    if (d.category == category) return &d;
  }
  return nullptr;
}

namespace {

namespace rj = rapidjson;

using data_file::check_schema;
using data_file::read_json;

// "<file>: <json pointer>: <reason>", with the file and pointer in `where`.
Error table_error(const std::filesystem::path& file, std::string_view pointer, std::string reason) {
  return data_file::error(file, pointer, std::move(reason));
}

std::string str(const rj::Value& obj, const char* key, std::string fallback = {}) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString())
                                                       : fallback;
}

std::optional<int> opt_int(const rj::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsInt()) return std::nullopt;
  return it->value.GetInt();
}

std::optional<double> opt_number(const rj::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsNumber()) return std::nullopt;
  return it->value.GetDouble();
}

std::vector<std::string> strings(const rj::Value& obj, const char* key) {
  std::vector<std::string> out;
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto& v : it->value.GetArray()) {
    if (v.IsString()) out.emplace_back(v.GetString());
  }
  return out;
}

const rj::Value* member(const rj::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

AnswerResult parse_result(const std::string& s) {
  if (s == "positive") return AnswerResult::kPositive;
  if (s == "negative") return AnswerResult::kNegative;
  if (s == "declined") return AnswerResult::kDeclined;
  return AnswerResult::kUnknown;
}

AnswerType parse_answer_type(const std::string& s) {
  if (s == "quantity") return AnswerType::kQuantity;
  if (s == "string") return AnswerType::kString;
  if (s == "boolean") return AnswerType::kBoolean;
  return AnswerType::kCoding;
}

// Reads an instrument that already matched the schema, so types are known.
Instrument parse_instrument(const rj::Value& doc) {
  Instrument ins;
  ins.id = str(doc, "id");
  ins.title = str(doc, "title");
  ins.version = str(doc, "version");
  ins.sources = strings(doc, "sources");
  if (const auto* panel = member(doc, "panel")) {
    ins.panel = {str(*panel, "system", std::string(kLoinc)), str(*panel, "code"),
                 str(*panel, "display")};
  }
  ins.questionnaires = strings(doc, "questionnaires");
  if (const auto* items = member(doc, "items")) {
    for (const auto& it : items->GetArray()) {
      ItemRule item;
      item.system = str(it, "system", std::string(kLoinc));
      item.code = str(it, "code");
      item.display = str(it, "display");
      item.link_ids = strings(it, "linkIds");
      item.category = str(it, "category");
      item.source = str(it, "source");
      item.answer_type = parse_answer_type(str(it, "answerType", "coding"));
      item.assistance = str(it, "role") == "assistance";
      if (const auto* d = member(it, "derived"); d != nullptr && d->IsBool())
        item.derived = d->GetBool();
      if (const auto* answers = member(it, "answers")) {
        for (const auto& a : answers->GetArray()) {
          item.answers.push_back({str(a, "code"), str(a, "display"), parse_result(str(a, "result")),
                                  str(a, "category"), opt_int(a, "points"), str(a, "source")});
        }
      }
      if (const auto* ranges = member(it, "ranges")) {
        for (const auto& r : ranges->GetArray()) {
          item.ranges.push_back({opt_number(r, "min"), opt_number(r, "max"),
                                 parse_result(str(r, "result")), opt_int(r, "points")});
        }
      }
      ins.items.push_back(std::move(item));
    }
  }
  if (const auto* domains = member(doc, "domains")) {
    for (const auto& d : domains->GetArray()) {
      DomainRule rule;
      rule.category = str(d, "category");
      rule.kind = str(d, "rule") == "score-at-least" ? DomainRuleKind::kScoreAtLeast
                                                     : DomainRuleKind::kAnyPositive;
      rule.threshold = opt_int(d, "threshold").value_or(0);
      ins.domains.push_back(std::move(rule));
    }
  }
  if (const auto* assistance = member(doc, "assistance")) {
    for (const auto& a : assistance->GetArray()) {
      AssistanceRule rule;
      rule.item = str(a, "item");
      if (const auto* cats = member(a, "categories")) {
        if (cats->IsString()) {
          rule.all_positive = std::string(cats->GetString()) == "all-positive";
        } else {
          rule.categories = strings(a, "categories");
        }
      }
      if (const auto* answers = member(a, "answers")) {
        for (const auto& ans : answers->GetArray()) {
          const auto* requested = member(ans, "requested");
          rule.answers[str(ans, "code")] =
              requested != nullptr && requested->IsBool() && requested->GetBool();
        }
      }
      ins.assistance.push_back(std::move(rule));
    }
  }
  return ins;
}

}  // namespace

Result<std::shared_ptr<const MappingTables>> MappingTables::load(const std::filesystem::path& dir) {
  auto tables = std::make_shared<MappingTables>();

  // Categories.
  const auto categories_file = dir / "categories.json";
  auto categories = read_json(categories_file);
  if (!categories) return fail(categories.error());
  if (!categories->IsObject() || !categories->HasMember("categories") ||
      !(*categories)["categories"].IsArray()) {
    return fail(table_error(categories_file, "/categories", "expected a list of {code, display}"));
  }
  tables->category_system_ = str(*categories, "system");
  std::size_t index = 0;
  for (const auto& c : (*categories)["categories"].GetArray()) {
    const auto pointer = "/categories/" + std::to_string(index++);
    const auto code = c.IsObject() ? str(c, "code") : std::string();
    if (code.empty()) return fail(table_error(categories_file, pointer, "a category needs a code"));
    if (!tables->categories_.emplace(code, str(c, "display")).second) {
      return fail(
          table_error(categories_file, pointer + "/code", "duplicate category \"" + code + "\""));
    }
  }

  // The schema every instrument file must match.
  const auto schema_file = dir / "instrument.schema.json";
  auto schema_json = read_json(schema_file);
  if (!schema_json) return fail(schema_json.error());
  rj::SchemaDocument schema(*schema_json);

  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "instruments", ec)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  if (ec) return fail(table_error(dir / "instruments", "", "cannot list: " + ec.message()));
  std::sort(files.begin(), files.end());
  if (files.empty())
    return fail(table_error(dir / "instruments", "", "no instrument files (*.json)"));

  std::map<std::string, std::filesystem::path> ids, panels, questionnaires;
  for (const auto& file : files) {
    auto doc = read_json(file);
    if (!doc) return fail(doc.error());
    if (auto r = check_schema(schema, "instrument.schema.json", *doc, file); !r)
      return fail(r.error());
    auto ins = parse_instrument(*doc);

    auto known = [&](const std::string& category, const std::string& pointer) -> Result<void> {
      if (tables->known_category(category)) return {};
      return fail(table_error(file, pointer,
                              "unknown category \"" + category + "\" (not in categories.json)"));
    };
    if (auto [it, fresh] = ids.emplace(ins.id, file); !fresh) {
      return fail(table_error(
          file, "/id",
          "duplicate instrument id \"" + ins.id + "\", also in " + it->second.string()));
    }
    if (!ins.panel.code.empty()) {
      if (auto [it, fresh] = panels.emplace(ins.panel.system + "|" + ins.panel.code, file);
          !fresh) {
        return fail(table_error(
            file, "/panel/code",
            "panel " + ins.panel.code + " is already the panel of " + it->second.string()));
      }
    }
    for (const auto& q : ins.questionnaires) {
      if (auto [it, fresh] = questionnaires.emplace(q, file); !fresh) {
        return fail(
            table_error(file, "/questionnaires",
                        "questionnaire " + q + " is already mapped by " + it->second.string()));
      }
    }
    std::set<std::string> item_codes, link_ids, produced_categories;
    for (std::size_t i = 0; i < ins.items.size(); ++i) {
      const auto& item = ins.items[i];
      const auto p = "/items/" + std::to_string(i);
      if (!item_codes.insert(item.system + "|" + item.code).second) {
        return fail(table_error(file, p + "/code", "duplicate item code " + item.code));
      }
      for (const auto& l : item.link_ids) {
        if (!link_ids.insert(l).second) {
          return fail(table_error(file, p + "/linkIds", "duplicate linkId \"" + l + "\""));
        }
      }
      if (auto r = known(item.category, p + "/category"); !r) return fail(r.error());
      if (item.screens()) produced_categories.insert(item.category);
      std::set<std::string> answer_codes;
      for (std::size_t a = 0; a < item.answers.size(); ++a) {
        const auto& ans = item.answers[a];
        const auto ap = p + "/answers/" + std::to_string(a);
        if (!answer_codes.insert(ans.code).second) {
          return fail(table_error(file, ap + "/code", "duplicate answer code " + ans.code));
        }
        if (!ans.category.empty()) {
          if (auto r = known(ans.category, ap + "/category"); !r) return fail(r.error());
          produced_categories.insert(ans.category);
        }
      }
    }
    std::set<std::string> domain_categories;
    for (std::size_t d = 0; d < ins.domains.size(); ++d) {
      const auto& rule = ins.domains[d];
      const auto p = "/domains/" + std::to_string(d);
      if (auto r = known(rule.category, p + "/category"); !r) return fail(r.error());
      if (!domain_categories.insert(rule.category).second) {
        return fail(
            table_error(file, p + "/category", "duplicate domain rule for " + rule.category));
      }
      if (produced_categories.count(rule.category) == 0) {
        return fail(table_error(file, p + "/category",
                                "no item of this instrument maps to " + rule.category));
      }
      if (rule.kind == DomainRuleKind::kScoreAtLeast) {
        for (const auto& item : ins.items) {
          if (item.category != rule.category || item.derived) continue;
          for (const auto& ans : item.answers) {
            if (!ans.points && ans.result != AnswerResult::kDeclined) {
              return fail(table_error(file, p,
                                      "score rule needs points on every answer of item " +
                                          item.code + " (answer " + ans.code + " has none)"));
            }
          }
        }
      }
    }
    for (std::size_t a = 0; a < ins.assistance.size(); ++a) {
      const auto& rule = ins.assistance[a];
      const auto p = "/assistance/" + std::to_string(a);
      const auto* item = ins.item("", rule.item);
      if (item == nullptr) {
        return fail(
            table_error(file, p + "/item", "names item " + rule.item + ", which is not in items"));
      }
      if (!item->assistance) {
        return fail(table_error(file, p + "/item",
                                "item " + rule.item + " needs \"role\": \"assistance\""));
      }
      for (const auto& c : rule.categories) {
        if (auto r = known(c, p + "/categories"); !r) return fail(r.error());
      }
    }
    tables->instruments_.push_back(std::move(ins));
  }
  auto local = LocalCodes::load(dir, *tables);
  if (!local) return fail(local.error());
  tables->local_codes_ = std::make_shared<const LocalCodes>(std::move(*local));
  return std::shared_ptr<const MappingTables>(std::move(tables));
}

const LocalCodes& MappingTables::local_codes() const {
  static const LocalCodes none;
  return local_codes_ ? *local_codes_ : none;
}

const Instrument* MappingTables::by_id(std::string_view id) const {
  for (const auto& i : instruments_) {
    if (i.id == id) return &i;
  }
  return nullptr;
}

const Instrument* MappingTables::by_panel(std::string_view system, std::string_view code) const {
  for (const auto& i : instruments_) {
    if (i.panel.code == code && (system.empty() || i.panel.system == system)) return &i;
  }
  return nullptr;
}

const Instrument* MappingTables::by_questionnaire(std::string_view url) const {
  url = url.substr(0, url.find('|'));
  for (const auto& i : instruments_) {
    if (std::find(i.questionnaires.begin(), i.questionnaires.end(), url) !=
        i.questionnaires.end()) {
      return &i;
    }
  }
  return nullptr;
}

const Instrument* MappingTables::by_item(std::string_view system, std::string_view code) const {
  for (const auto& i : instruments_) {
    if (const auto* item = i.item(system, code); item != nullptr && !item->derived) return &i;
  }
  return nullptr;
}

bool MappingTables::known_category(std::string_view code) const {
  return categories_.find(code) != categories_.end();
}

std::string_view MappingTables::category_display(std::string_view code) const {
  auto it = categories_.find(code);
  return it == categories_.end() ? std::string_view() : std::string_view(it->second);
}

}  // namespace sdoh::mapping
