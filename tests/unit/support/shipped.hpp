#pragma once
// What unit tests share: the shipped samples (../shared/samples), the schemas directory, and the
// screening mapper and event catalog built from the shipped tables, as the runtime builds them.
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "gateway/events/schema_catalog.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/mapping/tables.hpp"
#include "gateway/metrics/registry.hpp"

namespace sdoh::test {

inline const std::filesystem::path kSchemas = std::filesystem::path(SDOH_SOURCE_DIR) / "schemas";

/// A shared sample's bytes, as stored: `kind` is "fhir" or "hl7v2".
inline std::string shared_sample(std::string_view kind, std::string_view name) {
  std::ifstream in(std::filesystem::path(SDOH_SHARED_SAMPLES_DIR) / kind / name, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_FALSE(s.str().empty()) << kind << "/" << name;
  return s.str();
}

/// `json` parsed; a parse error fails the test.
inline rapidjson::Document parse_json(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  EXPECT_FALSE(d.HasParseError()) << json;
  return d;
}

/// The screening mapper over the shipped tables and ZIP policy, with a fixed test key.
inline std::unique_ptr<mapping::ScreeningMapper> shipped_mapper(metrics::Registry& registry) {
  auto tables = mapping::MappingTables::load(kSchemas / "mappings");
  EXPECT_TRUE(tables) << (tables ? "" : tables.error().message);
  auto zips = mapping::load_zip_policy(kSchemas / "privacy" / "restricted-zip3.json");
  EXPECT_TRUE(zips);
  if (!tables || !zips) return nullptr;
  return std::make_unique<mapping::ScreeningMapper>(
      *tables, identity::Pseudonymizer(std::string(48, 'k')), *zips, registry);
}

/// The event schemas of schemas/events.
inline std::unique_ptr<events::SchemaCatalog> shipped_catalog() {
  auto catalog = events::SchemaCatalog::load(kSchemas / "events");
  EXPECT_TRUE(catalog);
  return catalog ? std::move(*catalog) : nullptr;
}

}  // namespace sdoh::test
