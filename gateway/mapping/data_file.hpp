#pragma once
// Reading the gateway's data files (schemas/mappings/, schemas/routing/): JSON parsed with
// RapidJSON and checked against the file's JSON Schema, every error naming the file, the JSON
// pointer and the reason ("routing.json: /routes/3/agency: unknown agency \"wic\""), so that an
// operator can fix it without reading code. Internal to gateway/mapping: only its .cpp files
// include it, which keeps RapidJSON out of the public headers.
#include <filesystem>
#include <string>
#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/schema.h>

#include "gateway/core/result.hpp"

namespace sdoh::mapping::data_file {

/// A load error (kConfig): message "<file>: <pointer>: <reason>", where.expression
/// "<file>#<pointer>". An empty pointer leaves it out.
Error error(const std::filesystem::path& file, std::string_view pointer, std::string reason);

/// The file parsed as JSON, or an error naming the byte offset of a syntax error.
Result<rapidjson::Document> read_json(const std::filesystem::path& file);

/// Checks `doc` against `schema` (whose file name `schema_name` the message uses); the error names
/// the first invalid place, the schema keyword it breaks and, for a string or number, its value.
Result<void> check_schema(const rapidjson::SchemaDocument& schema, std::string_view schema_name,
                          const rapidjson::Document& doc, const std::filesystem::path& file);

}  // namespace sdoh::mapping::data_file
