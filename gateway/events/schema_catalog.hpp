#pragma once
// The event JSON Schemas (schemas/events/, the source of truth for the event contract),
// loaded for validation with RapidJSON's draft-04 validator. The test suite validates every
// event the gateway emits with it, and tools/validate-events checks what consumers receive.
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/core/result.hpp"

namespace sdoh::events {

/// The data schema an event type pairs with ("" for a type the gateway does not know).
std::string_view default_dataschema(std::string_view type);

class SchemaCatalog {
 public:
  /// Loads every *.schema.json in `dir`, indexed by its $id.
  static Result<std::unique_ptr<SchemaCatalog>> load(const std::filesystem::path& dir);
  ~SchemaCatalog();

  /// Validates a CloudEvent: the envelope against the CloudEvents schema, then `data` against
  /// the schema its `dataschema` names (absent: the one its type pairs with). The error names
  /// the place as a dotted path and the rule broken ("data.reason: required"), the path also in
  /// where.expression.
  Result<void> validate_event(std::string_view json) const;
  /// Validates a document against the schema with this $id.
  Result<void> validate(std::string_view schema_id, std::string_view json) const;

  struct Impl;

 private:
  explicit SchemaCatalog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::events
