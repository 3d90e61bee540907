#include "gateway/referral/task_document.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"
#include "gateway/core/json_text.hpp"
#include "gateway/mapping/lifecycle.hpp"

namespace sdoh::referral {

namespace {

using Json = rapidjson::Value;
// The SDOHCC category code system: the need a Task is for (reasonCode).
constexpr std::string_view kSdohccCategories =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes";

std::string write(const rapidjson::Document& doc) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

Json str(std::string_view v, rapidjson::Document::AllocatorType& alloc) {
  return Json(v.data(), static_cast<rapidjson::SizeType>(v.size()), alloc);
}

void set_text(rapidjson::Document& doc, const char* name, std::string_view text) {
  auto& alloc = doc.GetAllocator();
  doc.RemoveMember(name);
  if (text.empty()) return;
  Json codeable(rapidjson::kObjectType);
  codeable.AddMember("text", str(text, alloc), alloc);
  doc.AddMember(Json(name, alloc), codeable, alloc);
}

// Task.businessStatus as the gateway keeps it: the code of the lifecycle's vocabulary in its
// system with its display (text: as the sender wrote it, else the display); none: removed.
void set_business_status(rapidjson::Document& doc, std::string_view code) {
  const auto* entry = mapping::find_business_status(code);
  if (entry == nullptr) return set_text(doc, "businessStatus", code);
  auto& alloc = doc.GetAllocator();
  std::string text(entry->display);
  if (auto it = doc.FindMember("businessStatus");
      it != doc.MemberEnd() && it->value.IsObject() && it->value.HasMember("text") &&
      it->value["text"].IsString() && it->value["text"].GetStringLength() > 0) {
    text = it->value["text"].GetString();
  }
  doc.RemoveMember("businessStatus");
  Json coding(rapidjson::kObjectType);
  coding.AddMember("system", str(mapping::kBusinessStatusSystem, alloc), alloc);
  coding.AddMember("code", str(entry->code, alloc), alloc);
  coding.AddMember("display", str(entry->display, alloc), alloc);
  Json codings(rapidjson::kArrayType);
  codings.PushBack(coding, alloc);
  Json codeable(rapidjson::kObjectType);
  codeable.AddMember("coding", codings, alloc);
  codeable.AddMember("text", str(text, alloc), alloc);
  doc.AddMember("businessStatus", codeable, alloc);
}

std::string_view member_text(const Json& v, const char* name) {
  if (!v.IsObject()) return {};
  auto it = v.FindMember(name);
  if (it == v.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

const Json* member(const Json& v, const char* name) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(name);
  return it == v.MemberEnd() ? nullptr : &it->value;
}

// "Patient" and "p1" for a relative literal reference "Patient/p1[/_history/n]"; empty strings
// otherwise (absolute URLs, urn:uuid:, logical references).
std::pair<std::string, std::string> type_and_id(std::string_view reference) {
  if (reference.empty() || reference.find(':') != std::string_view::npos) return {};
  const auto slash = reference.find('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  auto id = reference.substr(slash + 1);
  id = id.substr(0, id.find('/'));
  if (id.empty() || id.size() > 64) return {};
  for (char ch : id) {
    const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
    if (!ok) return {};
  }
  return {std::string(reference.substr(0, slash)), std::string(id)};
}

std::pair<std::string, std::string> reference_of(const Json& task, const char* name) {
  const auto* ref = member(task, name);
  return ref == nullptr ? std::pair<std::string, std::string>{}
                        : type_and_id(member_text(*ref, "reference"));
}

}  // namespace

std::string new_task_json(const mapping::NormalizedReferral& r,
                          const mapping::MappedReferral& mapped, std::string_view last_updated,
                          std::int64_t version) {
  std::string out = R"({"resourceType":"Task","id":)";
  append_json_string(out, mapped.referral_id);
  out += R"(,"meta":{"versionId":)";
  append_json_string(out, std::to_string(version));
  out += R"(,"lastUpdated":)";
  append_json_string(out, last_updated);
  out +=
      R"(,"profile":["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"]},"identifier":[{"system":)";
  append_json_string(out, r.clinic_number_system);
  out += R"(,"value":)";
  append_json_string(out, r.clinic_number_value);
  out += R"(}],"status":"requested","intent":"order","priority":)";
  append_json_string(out, r.priority.empty() ? "routine" : r.priority);
  out +=
      R"(,"code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},"focus":{"identifier":{"system":)";
  append_json_string(out, r.clinic_number_system);
  out += R"(,"value":)";
  append_json_string(out, r.clinic_number_value);
  out +=
      R"(},"display":"the clinic's HL7 v2 REF^I12 referral"},"for":{"identifier":{"system":"urn:sdoh-gateway:patient-pseudonym","value":)";
  append_json_string(out, mapped.patient_pseudonym);
  out += R"(}},"authoredOn":)";
  append_json_string(out, r.authored_on.empty() ? std::string(last_updated) : r.authored_on);
  out += R"(,"requester":{"identifier":{"value":)";
  append_json_string(out, r.facility.code);
  out += "}}";
  if (!r.agency_id.empty()) {
    out += R"(,"owner":{"reference":)";
    append_json_string(out, "Organization/" + r.agency_id);
    if (!r.agency_name.empty()) {
      out += R"(,"display":)";
      append_json_string(out, r.agency_name);
    }
    out += "}";
  }
  if (!mapped.business_status.empty()) {
    // As the gateway keeps every Task's businessStatus: the lifecycle's code, its display.
    const auto* known = mapping::find_business_status(mapped.business_status);
    out += R"(,"businessStatus":{)";
    if (known != nullptr) {
      out += R"("coding":[{"system":)";
      append_json_string(out, mapping::kBusinessStatusSystem);
      out += R"(,"code":)";
      append_json_string(out, known->code);
      out += R"(,"display":)";
      append_json_string(out, known->display);
      out += "}],";
    }
    out += R"("text":)";
    append_json_string(out, known != nullptr ? known->display : mapped.business_status);
    out += "}";
  }
  out += R"(,"reasonCode":{"coding":[{"system":)";
  append_json_string(out, kSdohccCategories);
  out += R"(,"code":)";
  append_json_string(out, mapped.category);
  out += "}]}}";
  return out;
}

Result<std::string> with_status(std::string_view current, std::string_view status,
                                std::string_view business_status, std::string_view reason,
                                std::string_view note, std::string_view note_time) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, current) || !doc.IsObject())
    return fail(Error::internal("the stored Task is not readable"));
  auto& alloc = doc.GetAllocator();
  doc.RemoveMember("status");
  doc.AddMember("status", str(status, alloc), alloc);
  doc.RemoveMember("businessStatus");  // replaced whole: the sender's text was for the old code
  set_business_status(doc, business_status);
  set_text(doc, "statusReason", reason);
  if (!note.empty()) {
    if (!doc.HasMember("note") || !doc["note"].IsArray()) {
      doc.RemoveMember("note");
      doc.AddMember("note", Json(rapidjson::kArrayType), alloc);
    }
    Json annotation(rapidjson::kObjectType);
    if (!note_time.empty()) annotation.AddMember("time", str(note_time, alloc), alloc);
    annotation.AddMember("text", str(note, alloc), alloc);
    doc["note"].PushBack(annotation, alloc);
  }
  return write(doc);
}

std::string with_business_status(std::string_view json, std::string_view code) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, json) || !doc.IsObject()) return std::string(json);
  set_business_status(doc, code);
  return write(doc);
}

std::string with_need(std::string_view json, std::string_view category) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, json) || !doc.IsObject()) return std::string(json);
  auto& alloc = doc.GetAllocator();
  doc.RemoveMember("reasonCode");
  Json coding(rapidjson::kObjectType);
  coding.AddMember("system", str(kSdohccCategories, alloc), alloc);
  coding.AddMember("code", str(category, alloc), alloc);
  Json codings(rapidjson::kArrayType);
  codings.PushBack(coding, alloc);
  Json reason(rapidjson::kObjectType);
  reason.AddMember("coding", codings, alloc);
  doc.AddMember("reasonCode", reason, alloc);
  return write(doc);
}

std::string with_owner(std::string_view json, std::string_view agency_id,
                       std::string_view agency_name) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, json) || !doc.IsObject()) return std::string(json);
  auto& alloc = doc.GetAllocator();
  doc.RemoveMember("owner");
  Json owner(rapidjson::kObjectType);
  owner.AddMember("reference", str("Organization/" + std::string(agency_id), alloc), alloc);
  if (!agency_name.empty()) owner.AddMember("display", str(agency_name, alloc), alloc);
  doc.AddMember("owner", owner, alloc);
  return write(doc);
}

std::string with_meta(std::string_view json, std::int64_t version, std::string_view updated) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, json) || !doc.IsObject()) return std::string(json);
  auto& alloc = doc.GetAllocator();
  if (!doc.HasMember("meta") || !doc["meta"].IsObject()) {
    doc.RemoveMember("meta");
    doc.AddMember("meta", Json(rapidjson::kObjectType), alloc);
  }
  auto& meta = doc["meta"];
  meta.RemoveMember("versionId");
  meta.RemoveMember("lastUpdated");
  meta.AddMember("versionId", str(std::to_string(version), alloc), alloc);
  meta.AddMember("lastUpdated", str(updated, alloc), alloc);
  return write(doc);
}

std::string business_status_token(std::string_view text) {
  std::string out;
  bool dash = false;
  for (char ch : text) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
      if (dash && !out.empty()) out += '-';
      dash = false;
      out += ch;
    } else {
      dash = true;
    }
  }
  return out.substr(0, 64);
}

std::string agency_id_from(std::string_view raw) {
  std::string out;
  for (char ch : raw) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    out += ok ? static_cast<char>(c) : '-';
  }
  return out.substr(0, 64);
}

TaskIndex index_task(std::string_view json) {
  TaskIndex out;
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, json) || !doc.IsObject()) return out;
  auto& s = out.search;
  s.emplace_back("status", std::string(member_text(doc, "status")));
  if (auto [type, id] = reference_of(doc, "focus"); !id.empty())
    s.emplace_back("focus", type + "/" + id);
  if (const auto* owner = member(doc, "owner")) {
    std::string raw;
    if (const auto* ident = member(*owner, "identifier")) raw = member_text(*ident, "value");
    if (raw.empty()) {
      if (auto [type, id] = type_and_id(member_text(*owner, "reference")); type == "Organization")
        raw = id;
    }
    if (auto agency = agency_id_from(raw); !agency.empty()) s.emplace_back("owner", agency);
  }
  if (auto [type, id] = reference_of(doc, "for"); type == "Patient")
    s.emplace_back("patient", "Patient/" + id);
  if (auto [type, id] = reference_of(doc, "requester"); !id.empty())
    s.emplace_back("requester", type + "/" + id);
  if (const auto* ids = member(doc, "identifier"); ids != nullptr && ids->IsArray()) {
    for (const auto& i : ids->GetArray()) {
      const std::string value(member_text(i, "value"));
      if (value.empty()) continue;
      const std::string system(member_text(i, "system"));
      out.identifiers.emplace_back(system, value);
      s.emplace_back("identifier", system + "|" + value);
    }
  }
  if (const auto* bs = member(doc, "businessStatus"); bs != nullptr && bs->IsObject()) {
    std::string_view code;
    if (const auto* codings = member(*bs, "coding");
        codings != nullptr && codings->IsArray() && !codings->Empty())
      code = member_text((*codings)[0], "code");
    if (code.empty()) code = member_text(*bs, "text");
    if (auto token = business_status_token(code); !token.empty())
      s.emplace_back("business-status", std::move(token));
  }
  return out;
}

pipeline::ResourceWrite task_version(std::string_view id, std::string_view json,
                                     std::int64_t version, std::string_view updated,
                                     std::string_view source) {
  pipeline::ResourceWrite w;
  w.type = "Task";
  w.id = std::string(id);
  w.version = version;
  w.expected_version = version - 1;
  w.last_updated = std::string(updated);
  w.json = with_meta(json, version, updated);
  w.source = std::string(source);
  auto index = index_task(w.json);
  w.identifiers = std::move(index.identifiers);
  w.search = std::move(index.search);
  w.search.emplace_back("_id", w.id);
  w.search.emplace_back("_sender", w.source);
  return w;
}

}  // namespace sdoh::referral
