#pragma once
// The SQLite engine of sql.hpp: every sqlite3_* call of the store's shared code goes through it.
#include <memory>
#include <sqlite3.h>

#include "adapters/store/sql.hpp"

namespace sdoh::store::sql {

/// A Connection over `db`, which stays owned by the caller and must outlive it.
std::unique_ptr<Connection> sqlite_connection(sqlite3* db);

}  // namespace sdoh::store::sql
