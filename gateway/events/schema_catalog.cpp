#include "gateway/events/schema_catalog.hpp"

#include <fstream>
#include <map>
#include <sstream>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"

namespace sdoh::events {

namespace rj = rapidjson;

inline constexpr std::string_view kEnvelopeSchemaId = "urn:sdoh:schema:cloudevent:v1";

struct SchemaCatalog::Impl {
  std::map<std::string, std::unique_ptr<rj::SchemaDocument>, std::less<>> schemas;
};

SchemaCatalog::SchemaCatalog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SchemaCatalog::~SchemaCatalog() = default;

namespace {

Result<void> check(const rj::SchemaDocument& schema, const rj::Value& doc, std::string_view what) {
  rj::SchemaValidator validator(schema);
  if (doc.Accept(validator)) return {};
  rj::StringBuffer pointer, schema_pointer;
  validator.GetInvalidDocumentPointer().StringifyUriFragment(pointer);
  validator.GetInvalidSchemaPointer().StringifyUriFragment(schema_pointer);
  return fail(Error::invalid(
      std::string(what) + " does not match its schema at " + pointer.GetString() + " (keyword \"" +
      validator.GetInvalidSchemaKeyword() + "\", schema " + schema_pointer.GetString() + ")"));
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
    impl->schemas[id] = std::make_unique<rj::SchemaDocument>(doc);
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
  return check(*it->second, doc, schema_id);
}

Result<void> SchemaCatalog::validate_event(std::string_view json) const {
  rj::Document doc;
  if (auto parsed = sdoh::json::parse(doc, json); !parsed)
    return fail(Error::invalid("not valid JSON: " + parsed.error().message));
  if (auto r = check(*impl_->schemas.at(std::string(kEnvelopeSchemaId)), doc, "the envelope"); !r)
    return r;
  const auto& dataschema = doc["dataschema"];
  auto it =
      impl_->schemas.find(std::string_view(dataschema.GetString(), dataschema.GetStringLength()));
  if (it == impl_->schemas.end()) {
    return fail(Error::invalid(std::string("dataschema ") + dataschema.GetString() +
                               " is not in the catalogue"));
  }
  return check(*it->second, doc["data"], std::string("data of ") + doc["type"].GetString());
}

}  // namespace sdoh::events
