#include "adapters/store/sqlite_store.hpp"

#include <sqlite3.h>

#include <chrono>
#include <mutex>
#include <vector>

namespace sdoh::store {
namespace {

// Each entry moves the schema from version i to i+1. Never edit a released entry: add one.
const std::vector<const char*> kMigrations = {
    // 1: the store's identity.
    R"sql(
      CREATE TABLE gateway_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;
      INSERT INTO gateway_meta(key, value) VALUES ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    )sql",
};

Result<void> exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return fail(Error::unavailable(message));
  }
  return {};
}

Result<int> user_version(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK) {
    return fail(Error::unavailable(sqlite3_errmsg(db)));
  }
  int version = 0;
  if (sqlite3_step(stmt) == SQLITE_ROW) version = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  return version;
}

}  // namespace

struct SqliteStore::Impl {
  sqlite3* db = nullptr;
  std::filesystem::path path;
  int version = 0;
  mutable std::mutex mutex;
  ops::CheckState health{true, "open"};

  ~Impl() {
    if (db != nullptr) sqlite3_close_v2(db);
  }
};

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

int SqliteStore::latest_schema_version() { return static_cast<int>(kMigrations.size()); }

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& path,
                                                       const config::StoreConfig& cfg) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  std::error_code fs_ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), fs_ec);
  if (fs_ec) {
    return fail(Error::unavailable("cannot create " + path.parent_path().string() + ": " +
                                   fs_ec.message()));
  }
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &impl->db, flags, nullptr) != SQLITE_OK) {
    return fail(Error::unavailable("cannot open store " + path.string() + ": " +
                                   (impl->db != nullptr ? sqlite3_errmsg(impl->db) : "out of memory")));
  }
  sqlite3_busy_timeout(impl->db, 5000);
  const std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") +
                              (cfg.synchronous == "normal" ? "NORMAL" : "FULL") +
                              "; PRAGMA foreign_keys=ON;";
  if (auto r = exec(impl->db, pragmas.c_str()); !r) {
    return fail(Error::unavailable("store " + path.string() + ": " + r.error().message));
  }
  auto version = user_version(impl->db);
  if (!version) return fail(version.error());
  if (*version > latest_schema_version()) {
    return fail(Error::unavailable("store " + path.string() + " has schema version " +
                                   std::to_string(*version) + ", newer than this build (" +
                                   std::to_string(latest_schema_version()) + "); upgrade the gateway"));
  }
  for (int v = *version; v < latest_schema_version(); ++v) {
    const std::string sql = std::string("BEGIN IMMEDIATE;") + kMigrations[static_cast<std::size_t>(v)] +
                            "PRAGMA user_version=" + std::to_string(v + 1) + "; COMMIT;";
    if (auto r = exec(impl->db, sql.c_str()); !r) {
      (void)exec(impl->db, "ROLLBACK;");
      return fail(Error::unavailable("store migration to version " + std::to_string(v + 1) +
                                     " failed: " + r.error().message));
    }
  }
  impl->version = latest_schema_version();
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

int SqliteStore::schema_version() const { return impl_->version; }

ops::CheckState SqliteStore::health() const {
  std::lock_guard lock(impl_->mutex);
  auto state = impl_->health;
  if (state.ok) state.detail = "open, schema v" + std::to_string(impl_->version);
  return state;
}

}  // namespace sdoh::store
