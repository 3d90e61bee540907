#pragma once
// The gateway's durable store: one SQLite database in WAL mode with synchronous=FULL, so a
// committed transaction survives a crash or power loss. Schema migrations are versioned in
// code (PRAGMA user_version) and applied at open.
#include <filesystem>
#include <memory>
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/ops/health.hpp"

namespace sdoh::store {

class SqliteStore {
 public:
  /// Opens (creating if needed) the database at `path`, applies pending migrations.
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& path,
                                                   const config::StoreConfig& cfg);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  /// The schema version after migrations.
  int schema_version() const;
  /// Open, and the last write succeeded (never blocks).
  ops::CheckState health() const;

  /// The newest schema version this build knows.
  static int latest_schema_version();

 private:
  struct Impl;
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::store
