// Every shipped instrument, row by row: the test reads schemas/mappings/instruments/*.json itself
// (not through the loader under test) and, for every answer of every question, maps a screening
// with that one answer and checks the event says what the row says. A row added to a data file
// is tested without code. Per instrument it also checks a partial screening, an answer code the
// table does not list, and the score rules; and that the answer counts in
// schemas/mappings/README.md match the files.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "gateway/mapping/engine.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::mapping {
namespace {

namespace fs = std::filesystem;
const fs::path kInstruments = test::kSchemas / "mappings" / "instruments";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string str(const rapidjson::Value& v, const char* key, std::string fallback = {}) {
  return v.IsObject() && v.HasMember(key) && v[key].IsString() ? v[key].GetString() : fallback;
}

// One question of a data file, as the file states it.
struct FileItem {
  std::string system, code, category, role;
  bool derived = false;
  std::vector<std::string> link_ids;
  struct Answer {
    std::string code, result, category;
    std::optional<int> points;
  };
  std::vector<Answer> answers;
};

// One instrument file, read with RapidJSON only.
struct FileInstrument {
  std::string file, id, panel_system, panel_code;
  std::vector<FileItem> items;
  std::map<std::string, std::pair<std::string, int>> domains;     // category → {rule, threshold}
  std::map<std::string, std::map<std::string, bool>> assistance;  // item code → answer → requested
};

std::vector<FileInstrument> read_instruments() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kInstruments)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<FileInstrument> out;
  for (const auto& f : files) {
    rapidjson::Document d;
    d.Parse(read_file(f).c_str());
    EXPECT_FALSE(d.HasParseError()) << f;
    if (d.HasParseError()) continue;
    FileInstrument ins;
    ins.file = f.filename().string();
    ins.id = str(d, "id");
    ins.panel_system = str(d["panel"], "system", "http://loinc.org");
    ins.panel_code = str(d["panel"], "code");
    for (const auto& it : d["items"].GetArray()) {
      FileItem item;
      item.system = str(it, "system", "http://loinc.org");
      item.code = str(it, "code");
      item.category = str(it, "category");
      item.role = str(it, "role");
      item.derived = it.HasMember("derived") && it["derived"].GetBool();
      if (it.HasMember("linkIds")) {
        for (const auto& l : it["linkIds"].GetArray())
          item.link_ids.emplace_back(l.GetString());
      }
      for (const auto& a : it["answers"].GetArray()) {
        FileItem::Answer answer{str(a, "code"), str(a, "result"), str(a, "category", item.category),
                                std::nullopt};
        if (a.HasMember("points")) answer.points = a["points"].GetInt();
        item.answers.push_back(std::move(answer));
      }
      ins.items.push_back(std::move(item));
    }
    if (d.HasMember("domains")) {
      for (const auto& r : d["domains"].GetArray()) {
        ins.domains[str(r, "category")] = {str(r, "rule"),
                                           r.HasMember("threshold") ? r["threshold"].GetInt() : 0};
      }
    }
    if (d.HasMember("assistance")) {
      for (const auto& r : d["assistance"].GetArray()) {
        for (const auto& a : r["answers"].GetArray())
          ins.assistance[str(r, "item")][str(a, "code")] = a["requested"].GetBool();
      }
    }
    out.push_back(std::move(ins));
  }
  return out;
}

const std::vector<FileInstrument>& instruments() {
  static const auto all = read_instruments();
  return all;
}

// One answer row of one question of one instrument file.
struct Row {
  std::size_t instrument = 0, item = 0, answer = 0;
  const FileInstrument& ins() const { return instruments()[instrument]; }
  const FileItem& question() const { return ins().items[item]; }
  const FileItem::Answer& row() const { return question().answers[answer]; }
};

std::vector<Row> rows() {
  std::vector<Row> out;
  for (std::size_t i = 0; i < instruments().size(); ++i) {
    for (std::size_t q = 0; q < instruments()[i].items.size(); ++q) {
      for (std::size_t a = 0; a < instruments()[i].items[q].answers.size(); ++a)
        out.push_back({i, q, a});
    }
  }
  return out;
}

bool screens(const FileItem& q) {
  return q.role != "assistance" || std::any_of(q.answers.begin(), q.answers.end(),
                                               [](const auto& a) { return a.result != "unknown"; });
}

// The rows of questions that screen and have FHIR linkIds.
std::vector<Row> linked_rows() {
  auto all = rows();
  std::erase_if(
      all, [](const Row& r) { return r.question().link_ids.empty() || !screens(r.question()); });
  return all;
}

std::string row_name(const ::testing::TestParamInfo<Row>& info) {
  auto name = info.param.ins().id + "_" + info.param.question().code + "_" + info.param.row().code;
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name + "_" + std::to_string(info.index);
}

class ShippedMapping {
 protected:
  ShippedMapping() : mapper_(test::shipped_mapper(registry_)), catalog_(test::shipped_catalog()) {}

  static NormalizedScreening screening(const FileInstrument& ins, std::vector<ItemResponse> items) {
    NormalizedScreening s;
    s.protocol = "hl7v2";
    s.sender = "EHR^PEDS_A";
    s.message_id = "ROW-1";
    s.panel = Coding{ins.panel_system, ins.panel_code, ""};
    s.performed = "2026-11-20T10:00:00-05:00";
    s.facility = {"", "PEDS_A", ""};
    s.patient_authority = "PEDS_A";
    s.patient_identifier = "MRN-ROW";
    s.items = std::move(items);
    return s;
  }
  static ItemResponse answered(const FileItem& q, const std::vector<std::string>& codes) {
    ItemResponse r;
    r.question = {q.system, q.code, ""};
    for (const auto& c : codes)
      r.answers.push_back({Coding{"http://loinc.org", c, ""}, {}, {}, {}});
    return r;
  }

  // Maps, validates the data against the screening schema, returns it parsed.
  rapidjson::Document map_valid(const NormalizedScreening& s, MappedScreening* out = nullptr) {
    auto mapped = mapper_->map(s);
    EXPECT_TRUE(mapped) << mapped.error().message;
    rapidjson::Document doc;
    if (!mapped) return doc;
    auto valid = catalog_->validate("urn:sdoh:schema:screening:v1", mapped->data);
    EXPECT_TRUE(valid) << valid.error().message << "\n" << mapped->data;
    doc.Parse(mapped->data.c_str());
    if (out != nullptr) *out = *mapped;
    return doc;
  }
  static const rapidjson::Value* domain(const rapidjson::Document& d, const std::string& category) {
    for (const auto& dom : d["domains"].GetArray()) {
      if (category == dom["category"].GetString()) return &dom;
    }
    return nullptr;
  }
  static std::string status(const rapidjson::Document& d, const std::string& category) {
    const auto* dom = domain(d, category);
    return dom == nullptr ? "absent" : (*dom)["status"].GetString();
  }

  metrics::Registry registry_;
  std::unique_ptr<ScreeningMapper> mapper_;
  std::unique_ptr<events::SchemaCatalog> catalog_;
};

class EveryAnswer : public ShippedMapping, public ::testing::TestWithParam<Row> {};
class EveryLinkedAnswer : public ShippedMapping, public ::testing::TestWithParam<Row> {};

// The one answer's result, in the item entry and (but for score rules, which need every item)
// in the domain, is the row's result; a help question's answer sets assistanceRequested.
TEST_P(EveryAnswer, MapsToTheResultItsRowStates) {
  const auto& p = GetParam();
  const auto& q = p.question();
  const auto& a = p.row();
  SCOPED_TRACE(p.ins().file + " " + q.code + " " + a.code);
  MappedScreening m;
  auto d = map_valid(screening(p.ins(), {answered(q, {a.code})}), &m);
  EXPECT_EQ(d["instrument"]["id"].GetString(), p.ins().id);
  EXPECT_EQ(m.unknown_answers, 0u) << "the row's code is listed";
  EXPECT_EQ(d["unmapped"].Size(), 0u);

  const bool help = q.role == "assistance";
  const auto* dom = domain(d, a.category);
  if (screens(q)) {
    ASSERT_NE(dom, nullptr) << "no domain " << a.category;
    ASSERT_EQ((*dom)["items"].Size(), 1u);
    EXPECT_EQ((*dom)["items"][0]["result"].GetString(), a.result);
    const auto rule = p.ins().domains.count(a.category) ? p.ins().domains.at(a.category).first
                                                        : std::string("any-positive");
    if (rule == "any-positive") {
      EXPECT_EQ(status(d, a.category), a.result);
    }
  } else if (dom != nullptr) {
    EXPECT_EQ((*dom)["items"].Size(), 0u) << "a help question alone yields no screening result";
    EXPECT_EQ(status(d, a.category), "unknown");
  }
  if (help && p.ins().assistance.count(q.code) && p.ins().assistance.at(q.code).count(a.code)) {
    ASSERT_NE(dom, nullptr);
    EXPECT_TRUE((*dom)["assistanceRequested"].IsBool());
    if ((*dom)["assistanceRequested"].IsBool()) {
      EXPECT_EQ((*dom)["assistanceRequested"].GetBool(), p.ins().assistance.at(q.code).at(a.code));
    }
    EXPECT_STREQ((*dom)["assistanceBasis"].GetString(), "question");
  }
}

// The same answer, given by FHIR linkId (as QuestionnaireResponse items carry it), means the same.
TEST_P(EveryLinkedAnswer, ByLinkIdMeansTheSame) {
  const auto& p = GetParam();
  for (const auto& link : p.question().link_ids) {
    ItemResponse r;
    r.link_id = link;
    r.answers.push_back({Coding{"http://loinc.org", p.row().code, ""}, {}, {}, {}});
    auto d = map_valid(screening(p.ins(), {r}));
    const auto* dom = domain(d, p.row().category);
    ASSERT_NE(dom, nullptr) << link;
    EXPECT_EQ((*dom)["items"][0]["result"].GetString(), p.row().result) << link;
  }
}

INSTANTIATE_TEST_SUITE_P(ShippedInstruments, EveryAnswer, ::testing::ValuesIn(rows()), row_name);
INSTANTIATE_TEST_SUITE_P(ShippedInstruments, EveryLinkedAnswer, ::testing::ValuesIn(linked_rows()),
                         row_name);

class EveryInstrument : public ShippedMapping, public ::testing::TestWithParam<std::size_t> {
 protected:
  const FileInstrument& ins() const { return instruments()[GetParam()]; }
  // The first question that screens on its own (not derived, not a pure help question).
  const FileItem& first_screening_item() const {
    for (const auto& q : ins().items) {
      if (!q.derived && q.role != "assistance") return q;
    }
    return ins().items.front();
  }
};

std::string instrument_name(const ::testing::TestParamInfo<std::size_t>& info) {
  auto name = instruments()[info.param].id;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// A partial screening: one question answered, every other asked and left blank. The answered
// question decides its domain; the others count toward nothing and are listed as unanswered.
TEST_P(EveryInstrument, PartialScreeningDecidesOnlyWhatWasAnswered) {
  const auto& q = first_screening_item();
  const auto negative = std::find_if(q.answers.begin(), q.answers.end(),
                                     [](const auto& a) { return a.result == "negative"; });
  ASSERT_NE(negative, q.answers.end()) << q.code << " has no negative answer";
  std::vector<ItemResponse> items{answered(q, {negative->code})};
  std::set<std::string> blank_categories;
  for (const auto& other : ins().items) {
    if (other.code == q.code) continue;
    items.push_back(answered(other, {}));
    blank_categories.insert(other.category);
  }
  MappedScreening m;
  auto d = map_valid(screening(ins(), items), &m);
  EXPECT_EQ(d["unanswered"].Size(), ins().items.size() - 1);
  EXPECT_EQ(m.unanswered_items, ins().items.size() - 1);
  const auto rule = ins().domains.count(negative->category)
                        ? ins().domains.at(negative->category).first
                        : std::string("any-positive");
  // A score needs every question of its domain: one answer below the threshold is not negative.
  const bool whole_score = rule == "score-at-least" &&
                           std::none_of(ins().items.begin(), ins().items.end(), [&](const auto& o) {
                             return o.code != q.code && o.category == negative->category;
                           });
  EXPECT_EQ(status(d, negative->category),
            rule == "any-positive" || whole_score ? "negative" : "unknown");
  for (const auto& c : blank_categories) {
    if (c != negative->category) {
      EXPECT_EQ(status(d, c), "absent") << c;
    }
  }
  EXPECT_THAT(registry_.render(),
              ::testing::HasSubstr("sdoh_mapping_unanswered_items_total{instrument=\"" + ins().id +
                                   "\"} " + std::to_string(ins().items.size() - 1)));
}

// An answer code the table does not list: kept, result unknown, counted.
TEST_P(EveryInstrument, UnlistedAnswerCodeIsUnknownAndCounted) {
  const auto& q = first_screening_item();
  MappedScreening m;
  auto d = map_valid(screening(ins(), {answered(q, {"LA0000-0"})}), &m);
  EXPECT_EQ(status(d, q.category), "unknown");
  EXPECT_EQ(m.unknown_answers, 1u);
  EXPECT_EQ((*domain(d, q.category))["items"][0]["result"].GetString(), std::string("unknown"));
}

// Every score rule, from the points in the file: each question of the domain at its highest
// answer, then at its lowest, then every question declined.
class EveryScoredInstrument : public EveryInstrument {};

TEST_P(EveryScoredInstrument, ScoreRulesFollowThePointsInTheFile) {
  for (const auto& [category, rule] : ins().domains) {
    if (rule.first != "score-at-least") continue;
    std::vector<ItemResponse> high, low, declined;
    int high_sum = 0, low_sum = 0;
    for (const auto& q : ins().items) {
      if (q.category != category || q.derived) continue;
      const FileItem::Answer *max = nullptr, *min = nullptr, *decline = nullptr;
      for (const auto& a : q.answers) {
        if (a.result == "declined") decline = &a;
        if (!a.points) continue;
        if (max == nullptr || *a.points > *max->points) max = &a;
        if (min == nullptr || *a.points < *min->points) min = &a;
      }
      ASSERT_NE(max, nullptr) << q.code;
      high.push_back(answered(q, {max->code}));
      low.push_back(answered(q, {min->code}));
      high_sum += *max->points;
      low_sum += *min->points;
      if (decline != nullptr) declined.push_back(answered(q, {decline->code}));
    }
    SCOPED_TRACE(category + " threshold " + std::to_string(rule.second));
    EXPECT_EQ(status(map_valid(screening(ins(), high)), category),
              high_sum >= rule.second ? "positive" : "negative");
    EXPECT_EQ(status(map_valid(screening(ins(), low)), category),
              low_sum >= rule.second ? "positive" : "negative");
    if (!declined.empty() && declined.size() == high.size()) {
      EXPECT_EQ(status(map_valid(screening(ins(), declined)), category), "declined");
    }
  }
}

std::vector<std::size_t> instrument_indexes(bool scored_only) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < instruments().size(); ++i) {
    const auto& d = instruments()[i].domains;
    if (!scored_only || std::any_of(d.begin(), d.end(), [](const auto& r) {
          return r.second.first == "score-at-least";
        })) {
      out.push_back(i);
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(ShippedInstruments, EveryInstrument,
                         ::testing::ValuesIn(instrument_indexes(false)), instrument_name);
INSTANTIATE_TEST_SUITE_P(ShippedInstruments, EveryScoredInstrument,
                         ::testing::ValuesIn(instrument_indexes(true)), instrument_name);

// schemas/mappings/README.md states, per instrument, how many answers map to each result; the
// figures are those of the files.
TEST(ShippedInstruments, ReadmeAnswerCountsMatchTheFiles) {
  const auto readme = read_file(test::kSchemas / "mappings" / "README.md");
  for (const auto& ins : instruments()) {
    std::map<std::string, int> count;
    for (const auto& q : ins.items) {
      for (const auto& a : q.answers)
        ++count[a.result];
    }
    const auto row = "| `" + ins.id + "` | " + std::to_string(count["positive"]) + " | " +
                     std::to_string(count["negative"]) + " | " + std::to_string(count["declined"]) +
                     " | " + std::to_string(count["unknown"]) + " |";
    EXPECT_NE(readme.find(row), std::string::npos) << "README lacks the row " << row;
  }
}

TEST(ShippedInstruments, EveryShippedInstrumentIsTested) {
  std::set<std::string> ids;
  for (const auto& ins : instruments())
    ids.insert(ins.id);
  EXPECT_EQ(ids, (std::set<std::string>{"ahc-hrsn", "hunger-vital-sign", "prapare", "we-care"}));
}

}  // namespace
}  // namespace sdoh::mapping
