#pragma once
// The read side of the FHIR resources the gateway keeps (written through CommitPort with each
// message's ResourceWrite): current versions, history, identifiers and search parameters.
// Implemented by the SQLite store (adapters/store); a map in unit tests.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

/// One stored version of a FHIR resource.
struct ResourceRow {
  std::string type;
  std::string id;
  std::int64_t version = 0;
  std::string last_updated;  ///< RFC 3339
  std::string json;
  std::string source;  ///< ResourceWrite::source
};

/// A search over the current versions of one resource type: every parameter must match
/// (AND); a parameter matches when its stored value equals one of the given values (OR).
struct ResourceQuery {
  std::string type;
  std::vector<std::pair<std::string, std::vector<std::string>>> params;
  int count = 50;  ///< page size
  int offset = 0;
};

struct ResourcePage {
  std::vector<ResourceRow> rows;  ///< ordered by last update, newest first, then id
  std::int64_t total = 0;         ///< matches in all pages
};

/// Reads never wait for the writer; they are called from several threads at once.
class ResourceReader {
 public:
  virtual ~ResourceReader() = default;
  /// `version` 0 reads the current version.
  virtual Result<std::optional<ResourceRow>> read_resource(std::string_view type,
                                                           std::string_view id,
                                                           std::int64_t version = 0) const = 0;
  /// The id of the `type` resource whose current version has this identifier.
  virtual Result<std::optional<std::string>> find_resource_id(std::string_view type,
                                                              std::string_view system,
                                                              std::string_view value) const = 0;
  virtual Result<ResourcePage> search_resources(const ResourceQuery& query) const = 0;
  /// Every kept version of a resource, newest first (empty: unknown).
  virtual Result<std::vector<ResourceRow>> resource_history(std::string_view type,
                                                            std::string_view id) const = 0;
};

}  // namespace sdoh::pipeline
