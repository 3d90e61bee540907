// The store's part of SMART Backend Services (pipeline/auth_port.hpp): used client
// assertions and the token-signing key, both written on the writer thread so that a jti is
// recorded once and the first key stored is the one every gateway on the database signs with.
#include <optional>

#include "adapters/store/sql_store_impl.hpp"

namespace sdoh::store {

Result<bool> SqlStore::record_assertion(std::string_view client_id, std::string_view jti,
                                        std::int64_t expires_at_ms) {
  return run_sync<bool>(
      *impl_,
      [client = std::string(client_id), jti = std::string(jti),
       expires_at_ms](Impl& s) -> Result<bool> {
        // A row that is still valid is a replay; an expired one (not yet pruned) is reused.
        auto changed = sql::run_once(
            *s.conn,
            "INSERT INTO auth_assertions(client_id, jti, expires_at) VALUES (?1, ?2, ?3) ON "
            "CONFLICT(client_id, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE "
            "auth_assertions.expires_at < ?4",
            [&](Statement& st) {
              st.text(1, client).text(2, jti).integer(3, expires_at_ms).integer(4, s.now());
            });
        if (!changed) return fail(changed.error());
        return *changed == 1;
      });
}

Result<pipeline::SigningKeyRow> SqlStore::signing_key(const pipeline::SigningKeyRow& candidate) {
  return run_sync<pipeline::SigningKeyRow>(
      *impl_, [candidate](Impl& s) -> Result<pipeline::SigningKeyRow> {
        auto current = [&s]() -> Result<std::optional<pipeline::SigningKeyRow>> {
          Statement st;
          if (auto p = st.prepare(*s.conn,
                                  "SELECT kid, alg, private_pem FROM auth_signing_keys WHERE "
                                  "retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1");
              !p) {
            return fail(p.error());
          }
          auto r = st.step();
          if (!r) return fail(r.error());
          if (*r != kRow) return std::optional<pipeline::SigningKeyRow>();
          pipeline::SigningKeyRow row;
          row.kid = st.column_text(0);
          row.alg = st.column_text(1);
          row.private_pem = st.column_text(2);
          return std::optional<pipeline::SigningKeyRow>(std::move(row));
        };
        // Read first: a key stored before is the key (a read-only standby can answer that).
        auto found = current();
        if (!found) return fail(found.error());
        if (*found) return std::move(**found);
        // Gateways starting at once on one database: the first key stored wins.
        if (auto locked = s.conn->lock(sql::kSigningKeyLock); !locked) return fail(locked.error());
        // The SELECT's values have no column to take their types from: CAST gives them.
        auto stored = sql::run_once(
            *s.conn,
            "INSERT INTO auth_signing_keys(kid, alg, private_pem, created_at) SELECT CAST(?1 AS "
            "TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT), CAST(?4 AS BIGINT) WHERE NOT EXISTS "
            "(SELECT 1 FROM auth_signing_keys WHERE retired_at IS NULL)",
            [&](Statement& st) {
              st.text(1, candidate.kid).text(2, candidate.alg).text(3, candidate.private_pem);
              st.integer(4, s.now());
            });
        if (!stored) return fail(stored.error());
        found = current();
        if (!found) return fail(found.error());
        if (!*found) return fail(Error::unavailable("no current token-signing key is stored"));
        return std::move(**found);
      });
}

}  // namespace sdoh::store
