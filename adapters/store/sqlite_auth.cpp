// The SQLite store's part of SMART Backend Services (pipeline/auth_port.hpp): used client
// assertions and the token-signing key, both written on the writer thread so that a jti is
// recorded once and the first key stored is the one every gateway on the database signs with.
#include "adapters/store/sqlite_impl.hpp"

namespace sdoh::store {

Result<bool> SqliteStore::record_assertion(std::string_view client_id, std::string_view jti,
                                           std::int64_t expires_at_ms) {
  return run_sync<bool>(
      *impl_,
      [client = std::string(client_id), jti = std::string(jti),
       expires_at_ms](Impl& s) -> Result<bool> {
        // A row that is still valid is a replay; an expired one (not yet pruned) is reused.
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(s.db,
                               "INSERT INTO auth_assertions(client_id, jti, expires_at) VALUES "
                               "(?1, ?2, ?3) ON CONFLICT(client_id, jti) DO UPDATE SET "
                               "expires_at = excluded.expires_at WHERE auth_assertions.expires_at "
                               "< ?4",
                               -1, &st, nullptr) != SQLITE_OK)
          return fail(Error::unavailable(sqlite3_errmsg(s.db)));
        sqlite3_bind_text(st, 1, client.data(), static_cast<int>(client.size()), SQLITE_STATIC);
        sqlite3_bind_text(st, 2, jti.data(), static_cast<int>(jti.size()), SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, expires_at_ms);
        sqlite3_bind_int64(st, 4, s.now());
        const int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(s.db)));
        return sqlite3_changes(s.db) == 1;
      });
}

Result<pipeline::SigningKeyRow> SqliteStore::signing_key(const pipeline::SigningKeyRow& candidate) {
  return run_sync<pipeline::SigningKeyRow>(
      *impl_, [candidate](Impl& s) -> Result<pipeline::SigningKeyRow> {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(s.db,
                               "INSERT INTO auth_signing_keys(kid, alg, private_pem, created_at) "
                               "SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM "
                               "auth_signing_keys WHERE retired_at IS NULL)",
                               -1, &st, nullptr) != SQLITE_OK)
          return fail(Error::unavailable(sqlite3_errmsg(s.db)));
        sqlite3_bind_text(st, 1, candidate.kid.data(), static_cast<int>(candidate.kid.size()),
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 2, candidate.alg.data(), static_cast<int>(candidate.alg.size()),
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 3, candidate.private_pem.data(),
                          static_cast<int>(candidate.private_pem.size()), SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, s.now());
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(s.db)));
        if (sqlite3_prepare_v2(s.db,
                               "SELECT kid, alg, private_pem FROM auth_signing_keys WHERE "
                               "retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1",
                               -1, &st, nullptr) != SQLITE_OK)
          return fail(Error::unavailable(sqlite3_errmsg(s.db)));
        pipeline::SigningKeyRow row;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
          row.kid = column(st, 0);
          row.alg = column(st, 1);
          row.private_pem = column(st, 2);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW) return fail(Error::unavailable(sqlite3_errmsg(s.db)));
        return row;
      });
}

}  // namespace sdoh::store
