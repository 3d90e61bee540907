#pragma once
// The store's schema on PostgreSQL, versioned like SQLite's (sqlite_schema.cpp, kMigrations):
// each migration moves the database from version i to i+1, and the version is recorded in the
// table schema_version (one row per applied migration). Migration 1 is the shape SQLite's
// migrations 1..14 left: a new PostgreSQL database starts there.
#include "adapters/store/sql.hpp"

namespace sdoh::store {

/// The schema version this build writes.
int latest_postgres_schema_version();

/// Applies the pending migrations in one transaction that holds a fixed advisory lock
/// (pg_advisory_xact_lock), so that gateways starting at once migrate one after the other and
/// the later ones find nothing to do. Idempotent. Returns the version now in force. A database
/// newer than this build is refused (kUnavailable, naming both versions) and left untouched.
/// `db` must be a PostgreSQL connection with no transaction open; blocks while another gateway
/// migrates.
Result<int> migrate_postgres(sql::Connection& db);

}  // namespace sdoh::store
