#include "gateway/mapping/data_file.hpp"

#include <fstream>
#include <sstream>

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"

namespace sdoh::mapping::data_file {

namespace rj = rapidjson;

Error error(const std::filesystem::path& file, std::string_view pointer, std::string reason) {
  std::string where = file.string();
  if (!pointer.empty()) where += "#" + std::string(pointer);
  std::string message = file.string() + ": ";
  if (!pointer.empty()) message += std::string(pointer) + ": ";
  message += reason;
  return Error::config(std::move(where), std::move(message));
}

Result<rj::Document> read_json(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(error(file, "", "cannot read the file"));
  std::stringstream text;
  text << in.rdbuf();
  rj::Document doc;
  if (auto parsed = sdoh::json::parse(doc, text.str()); !parsed)
    return fail(error(file, "", "not valid JSON: " + parsed.error().message));
  return doc;
}

Result<void> check_schema(const rj::SchemaDocument& schema, std::string_view schema_name,
                          const rj::Document& doc, const std::filesystem::path& file) {
  rj::SchemaValidator validator(schema);
  if (doc.Accept(validator)) return {};
  rj::StringBuffer pointer, schema_pointer;
  validator.GetInvalidDocumentPointer().StringifyUriFragment(pointer);
  validator.GetInvalidSchemaPointer().StringifyUriFragment(schema_pointer);
  std::string where = pointer.GetString();
  if (!where.empty() && where.front() == '#') where.erase(0, 1);
  std::string reason = "does not match " + std::string(schema_name) + " (keyword \"" +
                       validator.GetInvalidSchemaKeyword() + "\" at " + schema_pointer.GetString();
  // Data files hold codes and settings, no PHI: the value helps the operator find the typo.
  if (const auto* value = validator.GetInvalidDocumentPointer().Get(doc);
      value != nullptr && (value->IsString() || value->IsNumber())) {
    rj::StringBuffer text;
    rj::Writer<rj::StringBuffer> w(text);
    value->Accept(w);
    reason += "; the value is " + std::string(text.GetString(), text.GetSize());
  }
  reason += ")";
  return fail(error(file, where.empty() ? "/" : where, std::move(reason)));
}

}  // namespace sdoh::mapping::data_file
