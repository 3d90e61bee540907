#include "gateway/mapping/local_codes.hpp"

#include <algorithm>

#include <rapidjson/document.h>
#include <rapidjson/schema.h>

#include "gateway/mapping/data_file.hpp"
#include "gateway/mapping/tables.hpp"

namespace sdoh::mapping {

namespace {

std::string text(const rapidjson::Value& v, const char* name) {
  if (!v.IsObject()) return {};
  const auto it = v.FindMember(name);
  return it != v.MemberEnd() && it->value.IsString() ? it->value.GetString() : std::string();
}

}  // namespace

Result<LocalCodes> LocalCodes::load(const std::filesystem::path& dir, const MappingTables& tables) {
  LocalCodes out;
  const auto folder = dir / "local";
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) return out;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  if (ec) return fail(data_file::error(folder, "", "cannot list: " + ec.message()));
  if (files.empty()) return out;
  std::sort(files.begin(), files.end());

  auto schema_json = data_file::read_json(dir / "local-codes.schema.json");
  if (!schema_json) return fail(schema_json.error());
  rapidjson::SchemaDocument schema(*schema_json);

  std::map<std::string, std::filesystem::path> ids;
  for (const auto& file : files) {
    auto doc = data_file::read_json(file);
    if (!doc) return fail(doc.error());
    if (auto r = data_file::check_schema(schema, "local-codes.schema.json", *doc, file); !r)
      return fail(r.error());
    const auto id = text(*doc, "id");
    if (auto [at, fresh] = ids.emplace(id, file); !fresh) {
      return fail(data_file::error(
          file, "/id",
          "duplicate table id \"" + id + "\" (also in " + at->second.filename().string() + ")"));
    }
    std::vector<std::string> senders;
    for (const auto& s : (*doc)["senders"].GetArray())
      senders.emplace_back(s.GetString());
    std::size_t index = 0;
    for (const auto& c : (*doc)["codes"].GetArray()) {
      const auto pointer = "/codes/" + std::to_string(index++);
      LocalCode meaning{id, text(c, "category")};
      if (!meaning.category.empty() && !tables.known_category(meaning.category)) {
        return fail(data_file::error(
            file, pointer + "/category",
            "unknown category \"" + meaning.category + "\" (not in categories.json)"));
      }
      const auto system = text(c, "system");
      const auto code = text(c, "code");
      for (const auto& sender : senders) {
        if (!out.codes_.emplace(std::tuple{sender, system, code}, meaning).second) {
          return fail(data_file::error(file, pointer + "/code",
                                       "the code " + system + "|" + code + " of sender " + sender +
                                           " is already translated by another row or table"));
        }
      }
    }
  }
  return out;
}

std::optional<LocalCode> LocalCodes::find(std::string_view sender, std::string_view system,
                                          std::string_view code) const {
  for (const std::string_view who : {sender, std::string_view("*")}) {
    if (auto it = codes_.find(std::tuple{who, system, code}); it != codes_.end()) return it->second;
  }
  return std::nullopt;
}

}  // namespace sdoh::mapping
