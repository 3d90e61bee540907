#pragma once
// The SQLite engine of sql.hpp: every sqlite3_* call of the store's shared code goes through it.
#include <chrono>
#include <memory>
#include <sqlite3.h>

#include "adapters/store/sql.hpp"

namespace sdoh::store::sql {

/// A Connection over `db`, which stays owned by the caller and must outlive it.
std::unique_ptr<Connection> sqlite_connection(sqlite3* db);

/// A statement on `db` waits up to `limit` for a lock another connection holds, then fails with
/// SQLITE_BUSY. It retries every 100 µs: SQLite's own busy timeout sleeps 1, 2, 5, 10, ... ms
/// between tries, so a writer held back for 200 µs by a checkpoint would wait 1 ms or more, and
/// a RESTART checkpoint, which holds new writers back while it waits for readers, would keep them
/// waiting for as long.
void wait_when_busy(sqlite3* db, std::chrono::milliseconds limit = std::chrono::seconds(5));

}  // namespace sdoh::store::sql
