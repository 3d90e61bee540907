#include "adapters/fhir/resources.hpp"

#include <algorithm>
#include <cctype>

#include <rapidjson/error/en.h>

#include "adapters/fhir/json_reader.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/core/text.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::fhir {

using detail::Json;
using detail::Reader;

namespace {

bool digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool in_range(std::string_view two, int lo, int hi) {
  if (!digits(two)) return false;
  const int v = (two[0] - '0') * 10 + (two[1] - '0');
  return v >= lo && v <= hi;
}

// hh:mm:ss(.f+)?(Z|(+|-)hh:mm) — FHIR requires the offset when a time is given.
bool valid_time_with_offset(std::string_view s) {
  if (s.size() < 9 || s[2] != ':' || s[5] != ':') return false;
  if (!in_range(s.substr(0, 2), 0, 23) || !in_range(s.substr(3, 2), 0, 59) ||
      !in_range(s.substr(6, 2), 0, 60))
    return false;
  auto rest = s.substr(8);
  if (!rest.empty() && rest[0] == '.') {
    std::size_t n = 1;
    while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9')
      ++n;
    if (n == 1) return false;
    rest = rest.substr(n);
  }
  if (rest == "Z") return true;
  return rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
         in_range(rest.substr(1, 2), 0, 14) && in_range(rest.substr(4, 2), 0, 59);
}

std::string path_of(const std::string& path, std::string_view element) {
  std::string out = path;
  out += '.';
  out += element;
  return out;
}

std::string indexed(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// Phone numbers as the referral event's schema wants them: E.164 for a North American number
// (10 digits, or 11 starting with 1), a leading + kept, else as sent.
std::string normalize_phone(std::string_view sent) {
  std::string d;
  for (char c : sent) {
    if (c >= '0' && c <= '9') d += c;
  }
  if (!sent.empty() && sent.front() == '+' && !d.empty()) return "+" + d;
  if (d.size() == 10) return "+1" + d;
  if (d.size() == 11 && d.front() == '1') return "+" + d;
  return std::string(sent);
}

// ---- the resources -------------------------------------------------------------------------

mapping::HumanName human_name(Reader& r, const Json& v, const std::string& path) {
  mapping::HumanName n;
  if (!v.IsObject()) return n;
  n.family = r.str(v, "family", path_of(path, "family"));
  if (const auto* given = r.array(v, "given", path_of(path, "given"))) {
    for (const auto& g : given->GetArray()) {
      if (g.IsString()) n.given.emplace_back(detail::view(g));
    }
  }
  return n;
}

// The name with use official (else usual, else the first).
mapping::HumanName preferred_name(Reader& r, const Json& obj, const std::string& path) {
  const auto* names = r.array(obj, "name", path_of(path, "name"));
  if (names == nullptr || names->Empty()) return {};
  std::size_t best = 0;
  for (std::size_t i = 0; i < names->Size(); ++i) {
    const auto& n = (*names)[static_cast<rapidjson::SizeType>(i)];
    if (!n.IsObject()) continue;
    const auto use = r.str(n, "use", indexed(path_of(path, "name"), i) + ".use");
    if (use == "official") {
      best = i;
      break;
    }
    if (use == "usual") best = i;
  }
  return human_name(r, (*names)[static_cast<rapidjson::SizeType>(best)],
                    indexed(path_of(path, "name"), best));
}

std::string phone_of(Reader& r, const Json& obj, const std::string& path) {
  const auto* telecom = r.array(obj, "telecom", path_of(path, "telecom"));
  if (telecom == nullptr) return {};
  std::string fallback;
  for (std::size_t i = 0; i < telecom->Size(); ++i) {
    const auto& t = (*telecom)[static_cast<rapidjson::SizeType>(i)];
    if (!t.IsObject()) continue;
    const auto p = indexed(path_of(path, "telecom"), i);
    if (r.str(t, "system", p + ".system") != "phone") continue;
    const auto value = r.str(t, "value", p + ".value");
    if (value.empty()) continue;
    if (r.str(t, "use", p + ".use") == "home" || r.str(t, "use", p + ".use") == "mobile")
      return normalize_phone(value);
    if (fallback.empty()) fallback = normalize_phone(value);
  }
  return fallback;
}

void race_or_ethnicity(Reader& r, const Json& ext, const std::string& path,
                       std::vector<Coding>& out) {
  const auto* parts = r.array(ext, "extension", path_of(path, "extension"));
  if (parts == nullptr) return;
  for (std::size_t i = 0; i < parts->Size(); ++i) {
    const auto& part = (*parts)[static_cast<rapidjson::SizeType>(i)];
    if (!part.IsObject()) continue;
    const auto p = indexed(path_of(path, "extension"), i);
    const auto url = r.str(part, "url", p + ".url");
    if (url != "ombCategory" && url != "detailed") continue;
    if (const auto* c = r.object(part, "valueCoding", p + ".valueCoding")) {
      auto coding = r.coding(*c, p + ".valueCoding");
      if (!coding.code.empty()) out.push_back(std::move(coding));
    }
  }
}

Patient read_patient(Reader& r, const Json& v, const std::string& root) {
  Patient p;
  p.id = r.id(v, root);
  p.identifiers = r.identifiers(v, root);
  // The medical record number (identifier.type MR, HL7 table 0203), else the first with a value.
  if (const auto* ids = Reader::get(v, "identifier"); ids != nullptr && ids->IsArray()) {
    for (std::size_t i = 0; i < ids->Size() && i < p.identifiers.size(); ++i) {
      const auto& id = (*ids)[static_cast<rapidjson::SizeType>(i)];
      const auto* type = id.IsObject() ? Reader::get(id, "type") : nullptr;
      if (type == nullptr) continue;
      for (const auto& c : r.codeable(*type, indexed(path_of(root, "identifier"), i) + ".type")) {
        if (c.code == "MR" && !p.identifiers[i].empty()) p.record_number = p.identifiers[i];
      }
      if (!p.record_number.empty()) break;
    }
  }
  if (p.record_number.empty()) {
    for (const auto& id : p.identifiers) {
      if (!id.empty()) {
        p.record_number = id;
        break;
      }
    }
  }
  p.birth_date = r.date(v, "birthDate", path_of(root, "birthDate"));
  if (const auto* exts = r.array(v, "extension", path_of(root, "extension"))) {
    for (std::size_t i = 0; i < exts->Size(); ++i) {
      const auto& e = (*exts)[static_cast<rapidjson::SizeType>(i)];
      if (!e.IsObject()) continue;
      const auto p_ext = indexed(path_of(root, "extension"), i);
      const auto url = r.str(e, "url", p_ext + ".url", true);
      if (url == kUsCoreRace) race_or_ethnicity(r, e, p_ext, p.race);
      if (url == kUsCoreEthnicity) race_or_ethnicity(r, e, p_ext, p.ethnicity);
    }
  }
  if (const auto* comms = r.array(v, "communication", path_of(root, "communication"))) {
    for (std::size_t i = 0; i < comms->Size(); ++i) {
      const auto& c = (*comms)[static_cast<rapidjson::SizeType>(i)];
      if (!c.IsObject()) continue;
      const auto pc = indexed(path_of(root, "communication"), i);
      const auto* lang = r.object(c, "language", pc + ".language", true);
      if (lang == nullptr) continue;
      auto codings = r.codeable(*lang, pc + ".language");
      if (codings.empty()) continue;
      const auto* preferred = Reader::get(c, "preferred");
      const bool is_preferred = preferred != nullptr && preferred->IsBool() && preferred->GetBool();
      if (!p.language || is_preferred) p.language = codings.front();
      if (is_preferred) break;
    }
  }
  if (const auto* addrs = r.array(v, "address", path_of(root, "address"))) {
    std::optional<std::size_t> chosen;
    for (std::size_t i = 0; i < addrs->Size(); ++i) {
      const auto& a = (*addrs)[static_cast<rapidjson::SizeType>(i)];
      if (!a.IsObject()) continue;
      if (!chosen) chosen = i;
      if (r.str(a, "use", indexed(path_of(root, "address"), i) + ".use") == "home") {
        chosen = i;
        break;
      }
    }
    if (chosen) {
      const auto& a = (*addrs)[static_cast<rapidjson::SizeType>(*chosen)];
      const auto pa = indexed(path_of(root, "address"), *chosen);
      mapping::PostalAddress addr;
      if (const auto* lines = r.array(a, "line", pa + ".line")) {
        for (const auto& l : lines->GetArray()) {
          if (l.IsString()) addr.lines.emplace_back(detail::view(l));
        }
      }
      addr.city = r.str(a, "city", pa + ".city");
      addr.state = r.str(a, "state", pa + ".state");
      addr.postal_code = r.str(a, "postalCode", pa + ".postalCode");
      p.postal_code = addr.postal_code;
      p.contact.address = std::move(addr);
    }
  }
  p.managing_organization =
      r.reference_member(v, "managingOrganization", path_of(root, "managingOrganization"));
  p.contact.name = preferred_name(r, v, root);
  p.contact.phone = phone_of(r, v, root);
  p.contact.preferred_language = p.language;
  // The guardian: the first Patient.contact with a relationship and a name.
  if (const auto* contacts = r.array(v, "contact", path_of(root, "contact"))) {
    for (std::size_t i = 0; i < contacts->Size(); ++i) {
      const auto& c = (*contacts)[static_cast<rapidjson::SizeType>(i)];
      if (!c.IsObject()) continue;
      const auto pc = indexed(path_of(root, "contact"), i);
      mapping::Guardian g;
      for (const auto& rel : r.codeables(c, "relationship", pc + ".relationship")) {
        if (!rel.code.empty()) {
          g.relationship = rel;
          break;
        }
      }
      if (const auto* n = r.object(c, "name", pc + ".name"))
        g.name = human_name(r, *n, pc + ".name");
      g.phone = phone_of(r, c, pc);
      if (g.name.empty() || g.relationship.code.empty()) continue;
      p.contact.guardian = std::move(g);
      break;
    }
  }
  if (p.identifiers.empty()) {
    r.warning(IssueType::kRequired, path_of(root, "identifier"),
              "US Core Patient requires an identifier (1..*); without one the patient's "
              "screenings cannot be linked to other sources");
  }
  return p;
}

mapping::AnswerValue answer_value(Reader& r, const Json& v, const std::string& path,
                                  std::string* expression, bool* found) {
  mapping::AnswerValue a;
  *found = true;
  auto at = [&](const char* element) { *expression = path_of(path, element); };
  if (const auto* c = Reader::get(v, "valueCoding")) {
    at("valueCoding");
    if (!c->IsObject()) {
      r.error(IssueType::kStructure, *expression, "valueCoding must be a JSON object");
    } else {
      a.coding = r.coding(*c, *expression);
    }
  } else if (const auto* cc = Reader::get(v, "valueCodeableConcept")) {
    at("valueCodeableConcept");
    std::string text;
    auto codings = r.codeable(*cc, *expression, &text);
    if (!codings.empty()) {
      // The LOINC answer code when there is one.
      auto it = std::find_if(codings.begin(), codings.end(),
                             [](const Coding& k) { return k.system == kLoincSystem; });
      a.coding = it != codings.end() ? *it : codings.front();
    } else {
      a.text = text;
    }
  } else if (const auto* q = Reader::get(v, "valueQuantity")) {
    at("valueQuantity");
    const auto* value = q->IsObject() ? Reader::get(*q, "value") : nullptr;
    if (value == nullptr || !value->IsNumber()) {
      r.error(IssueType::kValue, *expression + ".value", "valueQuantity.value must be a number");
    } else {
      a.number = value->GetDouble();
    }
  } else if (const auto* n = Reader::get(v, "valueInteger")) {
    at("valueInteger");
    if (!n->IsInt()) {
      r.error(IssueType::kValue, *expression, "valueInteger must be an integer");
    } else {
      a.number = n->GetInt();
    }
  } else if (const auto* d = Reader::get(v, "valueDecimal")) {
    at("valueDecimal");
    if (!d->IsNumber()) {
      r.error(IssueType::kValue, *expression, "valueDecimal must be a number");
    } else {
      a.number = d->GetDouble();
    }
  } else if (const auto* b = Reader::get(v, "valueBoolean")) {
    at("valueBoolean");
    if (!b->IsBool()) {
      r.error(IssueType::kValue, *expression, "valueBoolean must be true or false");
    } else {
      a.boolean = b->GetBool();
    }
  } else {
    for (const char* name :
         {"valueString", "valueDate", "valueDateTime", "valueTime", "valueUri"}) {
      if (Reader::get(v, name) == nullptr) continue;
      at(name);
      a.text = r.str(v, name, *expression);
      return a;
    }
    *found = false;
  }
  return a;
}

// A LOINC code in a linkId: "/88122-7" or "88122-7" (the SDOHCC Questionnaires' convention).
std::optional<Coding> loinc_from_link_id(std::string_view link_id) {
  if (!link_id.empty() && link_id.front() == '/') link_id.remove_prefix(1);
  const auto dash = link_id.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 2 != link_id.size())
    return std::nullopt;
  if (!digits(link_id.substr(0, dash)) || !digits(link_id.substr(dash + 1))) return std::nullopt;
  return Coding{std::string(kLoincSystem), std::string(link_id), ""};
}

void read_items(Reader& r, const Json& parent, const std::string& path,
                std::vector<QuestionnaireAnswerItem>& out) {
  const auto* items = r.array(parent, "item", path_of(path, "item"));
  if (items == nullptr) return;
  for (std::size_t i = 0; i < items->Size(); ++i) {
    const auto& item = (*items)[static_cast<rapidjson::SizeType>(i)];
    const auto pi = indexed(path_of(path, "item"), i);
    if (!item.IsObject()) {
      r.error(IssueType::kStructure, pi, "an item must be a JSON object");
      continue;
    }
    QuestionnaireAnswerItem a;
    a.expression = pi;
    a.link_id = r.str(item, "linkId", pi + ".linkId", true);
    a.code = loinc_from_link_id(a.link_id);
    if (a.code) a.code->display = r.str(item, "text", pi + ".text");
    if (const auto* answers = r.array(item, "answer", pi + ".answer")) {
      for (std::size_t j = 0; j < answers->Size(); ++j) {
        const auto& ans = (*answers)[static_cast<rapidjson::SizeType>(j)];
        const auto pa = indexed(pi + ".answer", j);
        if (!ans.IsObject()) {
          r.error(IssueType::kStructure, pa, "an answer must be a JSON object");
          continue;
        }
        std::string expression;
        bool found = false;
        auto value = answer_value(r, ans, pa, &expression, &found);
        if (found) a.answers.push_back(std::move(value));
        read_items(r, ans, pa, out);  // items nested under an answer
      }
    }
    // A question item with no answer was asked and not answered: kept, for the screening
    // event's `unanswered` list. An item with items of its own is a group, not a question.
    const auto* children = Reader::get(item, "item");
    const bool group = children != nullptr && children->IsArray() && !children->Empty();
    if (!a.answers.empty() || (!group && Reader::get(item, "answer") == nullptr))
      out.push_back(std::move(a));
    read_items(r, item, pi, out);  // a group's items
  }
}

QuestionnaireResponse read_questionnaire_response(Reader& r, const Json& v,
                                                  const std::string& root) {
  QuestionnaireResponse q;
  q.id = r.id(v, root);
  if (const auto* id = r.object(v, "identifier", path_of(root, "identifier")))
    q.identifier = r.identifier(*id, path_of(root, "identifier"));
  q.questionnaire = r.str(v, "questionnaire", path_of(root, "questionnaire"));
  q.status = r.code(v, "status", path_of(root, "status"),
                    {"in-progress", "completed", "amended", "entered-in-error", "stopped"}, true);
  q.subject = r.reference_member(v, "subject", path_of(root, "subject"));
  q.authored = r.date_time(v, "authored", path_of(root, "authored"));
  q.author = r.reference_member(v, "author", path_of(root, "author"));
  read_items(r, v, root, q.items);
  return q;
}

Observation read_observation(Reader& r, const Json& v, const std::string& root) {
  Observation o;
  o.id = r.id(v, root);
  o.identifiers = r.identifiers(v, root);
  o.status = r.code(v, "status", path_of(root, "status"),
                    {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                     "entered-in-error", "unknown"},
                    true);
  if (!o.status.empty() && o.status != "final" && o.status != "corrected" &&
      o.status != "entered-in-error" && o.status != "unknown") {
    r.warning(IssueType::kCodeInvalid, path_of(root, "status"),
              "SDOHCC screening responses use status final, corrected, entered-in-error or "
              "unknown");
  }
  o.categories = r.codeables(v, "category", path_of(root, "category"));
  const bool sdoh = std::any_of(o.categories.begin(), o.categories.end(), [](const Coding& c) {
    return c.system == kUsCoreCategorySystem && c.code == "sdoh";
  });
  if (!sdoh) {
    r.warning(IssueType::kInvariant, path_of(root, "category"),
              "SDOH-Obs-4: at least one category should be sdoh "
              "(http://hl7.org/fhir/us/core/CodeSystem/us-core-category)");
  }
  if (const auto* code = r.object(v, "code", path_of(root, "code"), true)) {
    o.code = r.codeable(*code, path_of(root, "code"), &o.code_text);
    if (o.code.empty() && o.code_text.empty()) {
      r.error(IssueType::kRequired, path_of(root, "code"),
              "Observation.code needs a coding or a text (1..1)");
    } else if (std::none_of(o.code.begin(), o.code.end(),
                            [](const Coding& c) { return c.system == kLoincSystem; })) {
      r.warning(IssueType::kCodeInvalid, path_of(root, "code.coding"),
                "SDOHCC screening responses are coded in LOINC (http://loinc.org)");
    }
  }
  o.subject = r.reference_member(v, "subject", path_of(root, "subject"));
  if (o.subject.empty()) {
    r.warning(IssueType::kRequired, path_of(root, "subject"),
              "SDOHCC screening responses require a subject (1..1)");
  }
  if (Reader::get(v, "effectiveDateTime") != nullptr) {
    o.effective = r.date_time(v, "effectiveDateTime", path_of(root, "effectiveDateTime"));
  } else if (const auto* period =
                 r.object(v, "effectivePeriod", path_of(root, "effectivePeriod"))) {
    o.effective = r.date_time(*period, "start", path_of(root, "effectivePeriod.start"));
  } else if (Reader::get(v, "effectiveInstant") != nullptr) {
    o.effective = r.date_time(v, "effectiveInstant", path_of(root, "effectiveInstant"));
  } else {
    r.warning(IssueType::kRequired, path_of(root, "effective[x]"),
              "SDOHCC screening responses require effectiveDateTime or effectivePeriod");
  }
  std::string expression;
  bool found = false;
  auto value = answer_value(r, v, root, &expression, &found);
  if (found) {
    o.value = std::move(value);
    o.value_expression = expression;
  }
  o.data_absent = Reader::get(v, "dataAbsentReason") != nullptr;
  if (found && o.data_absent) {
    r.error(IssueType::kInvariant, path_of(root, "dataAbsentReason"),
            "obs-6: dataAbsentReason SHALL only be present if value[x] is not present");
  }
  o.has_member = r.references(v, "hasMember", path_of(root, "hasMember"));
  o.derived_from = r.references(v, "derivedFrom", path_of(root, "derivedFrom"));
  o.performer = r.references(v, "performer", path_of(root, "performer"));
  if (o.performer.empty() && o.derived_from.empty() && o.has_member.empty()) {
    r.warning(IssueType::kInvariant, root, "SDOH-Obs-3: needs a performer or derivedFrom");
  }
  return o;
}

ServiceRequest read_service_request(Reader& r, const Json& v, const std::string& root) {
  ServiceRequest s;
  s.id = r.id(v, root);
  s.identifiers = r.identifiers(v, root);
  s.status = r.code(
      v, "status", path_of(root, "status"),
      {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}, true);
  s.intent = r.code(v, "intent", path_of(root, "intent"),
                    {"proposal", "plan", "directive", "order", "original-order", "reflex-order",
                     "filler-order", "instance-order", "option"},
                    true);
  s.categories = r.codeables(v, "category", path_of(root, "category"));
  if (const auto* code = r.object(v, "code", path_of(root, "code"))) {
    auto codings = r.codeable(*code, path_of(root, "code"));
    if (!codings.empty()) s.code = codings.front();
  }
  s.subject = r.reference_member(v, "subject", path_of(root, "subject"), true);
  s.authored_on = r.date_time(v, "authoredOn", path_of(root, "authoredOn"));
  s.requester = r.reference_member(v, "requester", path_of(root, "requester"));
  s.performer = r.references(v, "performer", path_of(root, "performer"));
  s.priority =
      r.code(v, "priority", path_of(root, "priority"), {"routine", "urgent", "asap", "stat"});
  s.supporting_info = r.references(v, "supportingInfo", path_of(root, "supportingInfo"));
  s.reason_reference = r.references(v, "reasonReference", path_of(root, "reasonReference"));
  if (const auto* notes = r.array(v, "note", path_of(root, "note"))) {
    for (std::size_t i = 0; i < notes->Size(); ++i) {
      const auto& n = (*notes)[static_cast<rapidjson::SizeType>(i)];
      if (!n.IsObject()) continue;
      const auto text = r.str(n, "text", indexed(path_of(root, "note"), i) + ".text", true);
      if (text.empty()) continue;
      if (!s.note.empty()) s.note += "\n";
      s.note += text;
    }
  }
  return s;
}

Task read_task(Reader& r, const Json& v, const std::string& root) {
  Task t;
  t.id = r.id(v, root);
  t.identifiers = r.identifiers(v, root);
  t.status = r.code(v, "status", path_of(root, "status"),
                    {"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
                     "in-progress", "on-hold", "failed", "completed", "entered-in-error"},
                    true);
  t.intent = r.code(v, "intent", path_of(root, "intent"),
                    {"unknown", "proposal", "plan", "order", "original-order", "reflex-order",
                     "filler-order", "instance-order", "option"},
                    true);
  if (const auto* code = r.object(v, "code", path_of(root, "code"))) {
    for (auto& c : r.codeable(*code, path_of(root, "code"))) {
      if (!t.code || c.system == kTaskCodeSystem) t.code = std::move(c);
    }
  }
  t.focus = r.reference_member(v, "focus", path_of(root, "focus"));
  t.for_ = r.reference_member(v, "for", path_of(root, "for"));
  t.authored_on = r.date_time(v, "authoredOn", path_of(root, "authoredOn"));
  t.last_modified = r.date_time(v, "lastModified", path_of(root, "lastModified"));
  t.requester = r.reference_member(v, "requester", path_of(root, "requester"));
  t.owner = r.reference_member(v, "owner", path_of(root, "owner"));
  t.priority =
      r.code(v, "priority", path_of(root, "priority"), {"routine", "urgent", "asap", "stat"});
  if (const auto* bs = r.object(v, "businessStatus", path_of(root, "businessStatus"))) {
    std::string text;
    auto codings = r.codeable(*bs, path_of(root, "businessStatus"), &text);
    t.business_status =
        referral::business_status_token(!codings.empty() ? codings.front().code : text);
  }
  if (const auto* reason = r.object(v, "statusReason", path_of(root, "statusReason"))) {
    std::string text;
    auto codings = r.codeable(*reason, path_of(root, "statusReason"), &text);
    t.status_reason = text;
    if (t.status_reason.empty() && !codings.empty()) {
      t.status_reason =
          codings.front().display.empty() ? codings.front().code : codings.front().display;
    }
  }
  // SDOHCC-TaskForReferralManagement: what the profile requires beyond the base resource.
  if (!t.intent.empty() && t.intent != "order")
    r.warning(IssueType::kValue, path_of(root, "intent"), "a referral Task has intent order");
  if (!t.code) {
    r.warning(IssueType::kRequired, path_of(root, "code"),
              "a referral Task has code fulfill (http://hl7.org/fhir/CodeSystem/task-code)");
  }
  for (const auto& [element, ref] : {std::pair<const char*, const Reference*>{"focus", &t.focus},
                                     {"for", &t.for_},
                                     {"requester", &t.requester}}) {
    if (ref->empty()) {
      r.warning(IssueType::kRequired, path_of(root, element),
                std::string("SDOHCC referral Tasks require Task.") + element + " (1..1)");
    }
  }
  if (t.authored_on.empty()) {
    r.warning(IssueType::kRequired, path_of(root, "authoredOn"),
              "SDOHCC referral Tasks require Task.authoredOn (1..1)");
  }
  if ((t.status == "rejected" || t.status == "cancelled" || t.status == "on-hold" ||
       t.status == "failed") &&
      t.status_reason.empty()) {
    r.warning(IssueType::kRequired, path_of(root, "statusReason.text"),
              "SDOHCC: a Task that is rejected, cancelled, on-hold or failed should say why in "
              "statusReason.text");
  }
  return t;
}

Consent read_consent(Reader& r, const Json& v, const std::string& root) {
  Consent c;
  c.id = r.id(v, root);
  c.identifiers = r.identifiers(v, root);
  c.status =
      r.code(v, "status", path_of(root, "status"),
             {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}, true);
  if (const auto* scope = r.object(v, "scope", path_of(root, "scope"), true))
    c.scope = r.codeable(*scope, path_of(root, "scope"));
  if (r.array(v, "category", path_of(root, "category"), true) != nullptr)
    c.categories = r.codeables(v, "category", path_of(root, "category"));
  if (Reader::get(v, "category") != nullptr && Reader::get(v, "category")->IsArray() &&
      Reader::get(v, "category")->Empty()) {
    r.error(IssueType::kRequired, path_of(root, "category"), "Consent.category is 1..*");
  }
  c.patient = r.reference_member(v, "patient", path_of(root, "patient"));
  c.date_time = r.date_time(v, "dateTime", path_of(root, "dateTime"));
  if (const auto* orgs = r.array(v, "organization", path_of(root, "organization"));
      orgs != nullptr && !orgs->Empty()) {
    c.organization = r.reference((*orgs)[0], path_of(root, "organization") + "[0]");
  }
  if (const auto* p = r.object(v, "provision", path_of(root, "provision"))) {
    const auto pp = path_of(root, "provision");
    c.provision_type = r.code(*p, "type", pp + ".type", {"deny", "permit"});
    if (const auto* period = r.object(*p, "period", pp + ".period")) {
      c.provision_start = r.date_time(*period, "start", pp + ".period.start");
      c.provision_end = r.date_time(*period, "end", pp + ".period.end");
    }
    if (const auto* actors = r.array(*p, "actor", pp + ".actor")) {
      for (std::size_t i = 0; i < actors->Size(); ++i) {
        const auto& a = (*actors)[static_cast<rapidjson::SizeType>(i)];
        if (!a.IsObject()) continue;
        c.provision_actors.push_back(
            r.reference_member(a, "reference", indexed(pp + ".actor", i) + ".reference", true));
      }
    }
    c.provision_actions = r.codeables(*p, "action", pp + ".action");
  }
  // SDOHCC-Consent: what the profile requires beyond the base resource.
  if (c.patient.empty()) {
    r.warning(IssueType::kRequired, path_of(root, "patient"),
              "SDOHCC Consent requires a patient (1..1); without one it applies to no referral");
  }
  if (c.date_time.empty()) {
    r.warning(IssueType::kRequired, path_of(root, "dateTime"),
              "SDOHCC Consent requires dateTime (1..1)");
  }
  const bool idscl = std::any_of(c.categories.begin(), c.categories.end(),
                                 [](const Coding& k) { return k.code == "IDSCL"; });
  if (!idscl) {
    r.warning(IssueType::kValue, path_of(root, "category"),
              "SDOHCC Consent has the category IDSCL (v3-ActCode: information disclosure)");
  }
  if (c.organization.empty()) {
    r.warning(IssueType::kRequired, path_of(root, "organization"),
              "SDOHCC Consent requires organization (1..1)");
  }
  return c;
}

}  // namespace

// ---- Reader ------------------------------------------------------------------------------

namespace detail {

std::string_view view(const Json& v) {
  return {v.GetString(), v.GetStringLength()};
}

const Json* Reader::get(const Json& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

std::string Reader::str(const Json& obj, const char* name, const std::string& path, bool required) {
  const auto* v = get(obj, name);
  if (v == nullptr) {
    if (required) error(IssueType::kRequired, path, std::string(name) + " is required");
    return {};
  }
  if (!v->IsString()) {
    error(IssueType::kStructure, path, std::string(name) + " must be a JSON string");
    return {};
  }
  if (v->GetStringLength() == 0) {
    // FHIR JSON: a primitive never has an empty string as its value.
    error(IssueType::kValue, path, std::string(name) + " must not be an empty string");
    return {};
  }
  return std::string(view(*v));
}

std::string Reader::code(const Json& obj, const char* name, const std::string& path,
                         std::initializer_list<std::string_view> allowed, bool required) {
  auto value = str(obj, name, path, required);
  if (value.empty()) return value;
  if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
    std::string list;
    for (auto a : allowed) {
      if (!list.empty()) list += ", ";
      list += a;
    }
    // The value itself is not echoed: it is the sender's data (STYLE.md: diagnostics are PHI-free).
    error(IssueType::kCodeInvalid, path,
          std::string(name) + " is not a code of its required value set (" + list + ")");
    return {};
  }
  return value;
}

std::string Reader::date_time(const Json& obj, const char* name, const std::string& path,
                              bool required) {
  auto value = str(obj, name, path, required);
  if (!value.empty() && !valid_date_time(value)) {
    error(IssueType::kValue, path,
          std::string(name) +
              " is not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a "
              "time zone offset)");
    return {};
  }
  return value;
}

std::string Reader::date(const Json& obj, const char* name, const std::string& path) {
  auto value = str(obj, name, path);
  if (!value.empty() && !valid_date(value)) {
    error(IssueType::kValue, path, std::string(name) + " is not a FHIR date (YYYY-MM-DD)");
    return {};
  }
  return value;
}

std::string Reader::id(const Json& obj, const std::string& path) {
  auto value = str(obj, "id", path + ".id");
  if (!value.empty() && !valid_id(value)) {
    error(IssueType::kValue, path + ".id", "id must be 1-64 of A-Z a-z 0-9 - .");
    return {};
  }
  return value;
}

const Json* Reader::array(const Json& obj, const char* name, const std::string& path,
                          bool required) {
  const auto* v = get(obj, name);
  if (v == nullptr) {
    if (required) error(IssueType::kRequired, path, std::string(name) + " is required");
    return nullptr;
  }
  if (!v->IsArray()) {
    error(IssueType::kStructure, path, std::string(name) + " repeats: it must be a JSON array");
    return nullptr;
  }
  return v;
}

const Json* Reader::object(const Json& obj, const char* name, const std::string& path,
                           bool required) {
  const auto* v = get(obj, name);
  if (v == nullptr) {
    if (required) error(IssueType::kRequired, path, std::string(name) + " is required");
    return nullptr;
  }
  if (!v->IsObject()) {
    error(IssueType::kStructure, path, std::string(name) + " must be a JSON object");
    return nullptr;
  }
  return v;
}

Coding Reader::coding(const Json& v, const std::string& path) {
  Coding c;
  if (!v.IsObject()) {
    error(IssueType::kStructure, path, "a Coding must be a JSON object");
    return c;
  }
  c.system = str(v, "system", path + ".system");
  c.code = str(v, "code", path + ".code");
  c.display = str(v, "display", path + ".display");
  return c;
}

std::vector<Coding> Reader::codeable(const Json& v, const std::string& path, std::string* text) {
  std::vector<Coding> out;
  if (!v.IsObject()) {
    error(IssueType::kStructure, path, "a CodeableConcept must be a JSON object");
    return out;
  }
  if (const auto* codings = array(v, "coding", path + ".coding")) {
    for (std::size_t i = 0; i < codings->Size(); ++i) {
      auto c =
          coding((*codings)[static_cast<rapidjson::SizeType>(i)], indexed(path + ".coding", i));
      if (!c.code.empty()) out.push_back(std::move(c));
    }
  }
  auto t = str(v, "text", path + ".text");
  if (text != nullptr) *text = std::move(t);
  return out;
}

std::vector<Coding> Reader::codeables(const Json& obj, const char* name, const std::string& path) {
  std::vector<Coding> out;
  const auto* list = array(obj, name, path);
  if (list == nullptr) return out;
  for (std::size_t i = 0; i < list->Size(); ++i) {
    for (auto& c : codeable((*list)[static_cast<rapidjson::SizeType>(i)], indexed(path, i)))
      out.push_back(std::move(c));
  }
  return out;
}

Identifier Reader::identifier(const Json& v, const std::string& path) {
  Identifier id;
  if (!v.IsObject()) {
    error(IssueType::kStructure, path, "an Identifier must be a JSON object");
    return id;
  }
  id.system = str(v, "system", path + ".system");
  id.value = str(v, "value", path + ".value");
  return id;
}

std::vector<Identifier> Reader::identifiers(const Json& obj, const std::string& root) {
  std::vector<Identifier> out;
  const auto* list = array(obj, "identifier", root + ".identifier");
  if (list == nullptr) return out;
  for (std::size_t i = 0; i < list->Size(); ++i)
    out.push_back(
        identifier((*list)[static_cast<rapidjson::SizeType>(i)], indexed(root + ".identifier", i)));
  return out;
}

Reference Reader::reference(const Json& v, const std::string& path) {
  Reference ref;
  ref.expression = path;
  if (!v.IsObject()) {
    error(IssueType::kStructure, path, "a Reference must be a JSON object");
    return ref;
  }
  ref.reference = str(v, "reference", path + ".reference");
  if (const auto* id = object(v, "identifier", path + ".identifier"))
    ref.identifier = identifier(*id, path + ".identifier");
  ref.display = str(v, "display", path + ".display");
  return ref;
}

Reference Reader::reference_member(const Json& obj, const char* name, const std::string& path,
                                   bool required) {
  const auto* v = object(obj, name, path, required);
  if (v == nullptr) {
    Reference none;
    none.expression = path;
    return none;
  }
  auto ref = reference(*v, path);
  if (required && ref.empty()) {
    error(IssueType::kRequired, path + ".reference",
          std::string(name) + " needs a reference or an identifier");
  }
  return ref;
}

std::vector<Reference> Reader::references(const Json& obj, const char* name,
                                          const std::string& path) {
  std::vector<Reference> out;
  const auto* list = array(obj, name, path);
  if (list == nullptr) return out;
  for (std::size_t i = 0; i < list->Size(); ++i)
    out.push_back(reference((*list)[static_cast<rapidjson::SizeType>(i)], indexed(path, i)));
  return out;
}

std::optional<ParsedResource> read_resource(const Json& v, const std::string& root_in,
                                            std::vector<Issue>& issues) {
  Reader r(issues);
  if (!v.IsObject()) {
    r.error(IssueType::kStructure, root_in, "a resource must be a JSON object");
    return std::nullopt;
  }
  const auto* rt = Reader::get(v, "resourceType");
  if (rt == nullptr || !rt->IsString()) {
    r.error(IssueType::kRequired, root_in.empty() ? "resourceType" : root_in + ".resourceType",
            "resourceType is required");
    return std::nullopt;
  }
  const std::string type(view(*rt));
  const auto root = root_in.empty() ? type : root_in;
  if (!supported_resource_type(type)) {
    r.error(IssueType::kNotSupported, root,
            "this gateway accepts Bundle, QuestionnaireResponse, Observation, Patient, "
            "ServiceRequest, Task and Consent");
    return std::nullopt;
  }
  if (Reader::get(v, "contained") != nullptr) {
    r.error(IssueType::kNotSupported, root + ".contained",
            "contained resources are not supported; send them as Bundle entries");
  }
  ParsedResource out{type, Patient{}, {}};
  if (type == "Patient") {
    out.resource = read_patient(r, v, root);
  } else if (type == "QuestionnaireResponse") {
    out.resource = read_questionnaire_response(r, v, root);
  } else if (type == "Observation") {
    out.resource = read_observation(r, v, root);
  } else if (type == "ServiceRequest") {
    out.resource = read_service_request(r, v, root);
  } else if (type == "Task") {
    out.resource = read_task(r, v, root);
  } else {
    out.resource = read_consent(r, v, root);
  }
  return out;
}

}  // namespace detail

// ---- public ------------------------------------------------------------------------------

std::pair<std::string, std::string> Reference::type_and_id() const {
  if (reference.empty() || reference.find(':') != std::string::npos) return {};
  const auto slash = reference.find('/');
  if (slash == std::string::npos || slash == 0) return {};
  auto id = reference.substr(slash + 1);
  id = id.substr(0, id.find('/'));  // "Patient/p1/_history/2"
  if (!valid_id(id)) return {};
  return {reference.substr(0, slash), id};
}

std::optional<Coding> Observation::question() const {
  for (const auto& c : code) {
    if (c.system == kLoincSystem) return c;
  }
  if (!code.empty()) return code.front();
  return std::nullopt;
}

std::string Observation::category_code(std::string_view system) const {
  for (const auto& c : categories) {
    if (c.system == system) return c.code;
  }
  return {};
}

bool supported_resource_type(std::string_view type) {
  for (std::string_view t :
       {"Patient", "QuestionnaireResponse", "Observation", "ServiceRequest", "Task", "Consent"}) {
    if (t == type) return true;
  }
  return false;
}

bool valid_id(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
  });
}

bool valid_date(std::string_view s) {
  if (s.size() < 4 || !digits(s.substr(0, 4))) return false;
  if (s.size() == 4) return true;
  if (s.size() < 7 || s[4] != '-' || !in_range(s.substr(5, 2), 1, 12)) return false;
  if (s.size() == 7) return true;
  return s.size() == 10 && s[7] == '-' && in_range(s.substr(8, 2), 1, 31);
}

bool valid_date_time(std::string_view s) {
  const auto t = s.find('T');
  if (t == std::string_view::npos) return valid_date(s);
  return t == 10 && valid_date(s.substr(0, 10)) && valid_time_with_offset(s.substr(11));
}

bool full_date_or_date_time(std::string_view s) {
  return (s.size() == 10 && valid_date(s)) || (s.size() > 10 && valid_date_time(s));
}

FhirResult<ParsedResource> parse_resource(std::string_view json) {
  rapidjson::Document doc;
  if (auto parsed = sdoh::json::parse(doc, json); !parsed) {
    return std::unexpected(Problem::bad_request(
        IssueType::kStructure, "", "the body is not valid JSON: " + parsed.error().message));
  }
  std::vector<Issue> issues;
  auto parsed = detail::read_resource(doc, "", issues);
  const bool failed = !parsed || std::any_of(issues.begin(), issues.end(),
                                             [](const Issue& i) { return i.is_error(); });
  if (failed) {
    std::stable_partition(issues.begin(), issues.end(),
                          [](const Issue& i) { return i.is_error(); });
    return std::unexpected(Problem{classify(issues), std::move(issues)});
  }
  parsed->warnings = std::move(issues);
  return std::move(*parsed);
}

}  // namespace sdoh::fhir
