#include "gateway/events/schema_catalog.hpp"

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"

namespace sdoh::events {

namespace rj = rapidjson;

inline constexpr std::string_view kEnvelopeSchemaId = "urn:sdoh:schema:cloudevent:v1";

struct SchemaCatalog::Impl {
  struct Schema {
    rj::Document raw;  // kept to name what a failed keyword wanted (RapidJSON 1.1 does not)
    std::unique_ptr<rj::SchemaDocument> compiled;
  };
  std::map<std::string, Schema, std::less<>> schemas;
};

SchemaCatalog::SchemaCatalog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SchemaCatalog::~SchemaCatalog() = default;

namespace {

// "/data/status" under `prefix` "data" → "data.status"; "" → the prefix (or "$" for the root).
std::string dotted(std::string_view prefix, std::string_view pointer) {
  std::string out(prefix);
  std::size_t at = 0;
  while (at < pointer.size()) {
    const auto next = pointer.find('/', at + 1);
    auto part = pointer.substr(
        at + 1, next == std::string_view::npos ? std::string_view::npos : next - at - 1);
    if (!out.empty()) out += '.';
    out += part;
    if (next == std::string_view::npos) break;
    at = next;
  }
  return out.empty() ? std::string("$") : out;
}

// The property a failed "required" or "additionalProperties" is about: the first required
// property the object lacks, or the first one the schema does not allow.
std::string property_of(const rj::Document& schema, const char* schema_pointer,
                        std::string_view keyword, const rj::Value& doc, const char* doc_pointer) {
  const auto* node = rj::Pointer(schema_pointer).Get(schema);
  const auto* object = rj::Pointer(doc_pointer).Get(doc);
  if (node == nullptr || object == nullptr || !node->IsObject() || !object->IsObject()) return {};
  if (keyword == "required" && node->HasMember("required") && (*node)["required"].IsArray()) {
    for (const auto& name : (*node)["required"].GetArray()) {
      if (name.IsString() && !object->HasMember(name.GetString())) return name.GetString();
    }
  }
  if (keyword == "additionalProperties") {
    for (const auto& m : object->GetObject()) {
      const std::string name(m.name.GetString(), m.name.GetStringLength());
      if (node->HasMember("properties") && (*node)["properties"].HasMember(name.c_str())) continue;
      bool matched = false;
      if (node->HasMember("patternProperties") && (*node)["patternProperties"].IsObject()) {
        for (const auto& p : (*node)["patternProperties"].GetObject()) {
          if (std::regex_search(name, std::regex(p.name.GetString()))) matched = true;
        }
      }
      if (!matched) return name;
    }
  }
  return {};
}

// The error names where (a dotted path under `prefix`, also in where.expression) and the rule
// broken: "data.reason: required", "data.status: enum", "Traceparent: additionalProperties".
Result<void> check(const SchemaCatalog::Impl::Schema& schema, const rj::Value& doc,
                   std::string_view what, std::string_view prefix = "") {
  rj::SchemaValidator validator(*schema.compiled);
  if (doc.Accept(validator)) return {};
  rj::StringBuffer pointer, schema_pointer, doc_pointer, node_pointer;
  validator.GetInvalidDocumentPointer().StringifyUriFragment(pointer);
  validator.GetInvalidSchemaPointer().StringifyUriFragment(schema_pointer);
  validator.GetInvalidDocumentPointer().Stringify(doc_pointer);
  validator.GetInvalidSchemaPointer().Stringify(node_pointer);
  const std::string keyword = validator.GetInvalidSchemaKeyword();
  auto path = dotted(prefix, doc_pointer.GetString());
  if (auto name =
          property_of(schema.raw, node_pointer.GetString(), keyword, doc, doc_pointer.GetString());
      !name.empty()) {
    path = path == "$" ? name : path + "." + name;
  }
  auto e = Error::invalid(path + ": " + keyword + " (" + std::string(what) +
                          " does not match its schema at " + pointer.GetString() + ", schema " +
                          schema_pointer.GetString() + ")");
  e.where.expression = path;
  return fail(std::move(e));
}

}  // namespace

Result<std::unique_ptr<SchemaCatalog>> SchemaCatalog::load(const std::filesystem::path& dir) {
  auto impl = std::make_unique<Impl>();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (name.size() < 12 || name.compare(name.size() - 12, 12, ".schema.json") != 0) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    rj::Document doc;
    if (auto parsed = sdoh::json::parse(doc, text.str()); !parsed) {
      return fail(
          Error::config(entry.path().string(),
                        entry.path().string() + ": not valid JSON: " + parsed.error().message));
    }
    if (!doc.IsObject() || !doc.HasMember("$id") || !doc["$id"].IsString()) {
      return fail(Error::config(entry.path().string(), entry.path().string() + ": no $id"));
    }
    std::string id = doc["$id"].GetString();
    auto& schema = impl->schemas[id];
    schema.compiled = std::make_unique<rj::SchemaDocument>(doc);
    schema.raw = std::move(doc);
  }
  if (ec)
    return fail(Error::config(dir.string(), "cannot list " + dir.string() + ": " + ec.message()));
  if (impl->schemas.find(kEnvelopeSchemaId) == impl->schemas.end()) {
    return fail(Error::config(
        dir.string(), dir.string() + ": no schema with $id " + std::string(kEnvelopeSchemaId)));
  }
  return std::unique_ptr<SchemaCatalog>(new SchemaCatalog(std::move(impl)));
}

Result<void> SchemaCatalog::validate(std::string_view schema_id, std::string_view json) const {
  auto it = impl_->schemas.find(schema_id);
  if (it == impl_->schemas.end())
    return fail(Error::not_found("no schema " + std::string(schema_id)));
  rj::Document doc;
  if (auto parsed = sdoh::json::parse(doc, json); !parsed)
    return fail(Error::invalid("not valid JSON: " + parsed.error().message));
  return check(it->second, doc, schema_id);
}

Result<void> SchemaCatalog::validate_event(std::string_view json) const {
  rj::Document doc;
  if (auto parsed = sdoh::json::parse(doc, json); !parsed)
    return fail(Error::invalid("not valid JSON: " + parsed.error().message));
  if (auto r = check(impl_->schemas.at(std::string(kEnvelopeSchemaId)), doc, "the envelope"); !r)
    return r;
  // CloudEvents 1.0 makes dataschema optional: without it, the type names the schema.
  std::string dataschema;
  if (doc.HasMember("dataschema")) {
    dataschema.assign(doc["dataschema"].GetString(), doc["dataschema"].GetStringLength());
  } else {
    dataschema = std::string(default_dataschema(doc["type"].GetString()));
  }
  auto it = impl_->schemas.find(dataschema);
  if (it == impl_->schemas.end()) {
    return fail(Error::invalid("dataschema " + dataschema + " is not in the catalogue"));
  }
  return check(it->second, doc["data"], std::string("data of ") + doc["type"].GetString(), "data");
}

std::string_view default_dataschema(std::string_view type) {
  // org.sdoh.referral.update.v1 → urn:sdoh:schema:referral-update:v1 (the pairing in
  // cloudevent.v1.schema.json's oneOf).
  static const std::map<std::string_view, std::string_view, std::less<>> kPairs = {
      {"org.sdoh.screening.v1", "urn:sdoh:schema:screening:v1"},
      {"org.sdoh.referral.v1", "urn:sdoh:schema:referral:v1"},
      {"org.sdoh.referral.status.v1", "urn:sdoh:schema:referral-status:v1"},
      {"org.sdoh.deadletter.v1", "urn:sdoh:schema:deadletter:v1"},
      {"org.sdoh.referral.update.v1", "urn:sdoh:schema:referral-update:v1"},
      {"org.sdoh.audit.anchor.v1", "urn:sdoh:schema:audit-anchor:v1"},
  };
  auto it = kPairs.find(type);
  return it == kPairs.end() ? std::string_view() : it->second;
}

}  // namespace sdoh::events
