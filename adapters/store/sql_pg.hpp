#pragma once
// The PostgreSQL engine of sql.hpp, over libpq: every PQ* call of the store's shared code goes
// through it (sql_pg.cpp).
//
// Parameters. A statement's parameter types are fixed by how they are bound: bind_int is int8
// (sent as decimal text), bind_text is text, bind_blob is bytea (sent in binary: any bytes, NULs
// and invalid UTF-8 included), bind_null leaves the type to the server; a number the text uses
// but nobody bound is a NULL text, and binds beyond the text's highest number are ignored (as
// SQLite does). A cursor runs its first execution as one unnamed Parse/Bind/Execute
// (PQexecParams: one round trip, nothing left on the server for a one-off statement); when it
// runs again it is prepared under a name unique to the connection, once per set of parameter
// types it is bound with, and executed by name. Errors in the SQL text therefore surface at the
// first step(), not at prepare().
//
// Results come in binary for every column and are read by type: int2/int4/int8/oid/bool (bool
// reads as 0 or 1), text/varchar/char/name/bytea/json (raw bytes), numeric (sum() of a bigint is
// numeric: decoded to its decimal text, integer() truncates) and float4/float8. A result with a
// column of any other type is refused by step() with an error naming the column and its type
// OID: cast it in the SQL.
//
// Errors by SQLSTATE: class 23 (unique, check, foreign key) is kConflict; 40001/40P01
// (serialization failure, deadlock), class 08 and other lost connections, 57P01..57P03 (server
// shutting down), 57014 (statement timeout), 53xxx (out of resources), 55P03 (lock timeout) are
// kUnavailable; everything else (42xxx: the statement is wrong; 08P01, a wrong parameter count)
// is kInternal. Messages carry the SQLSTATE and PostgreSQL's primary message only, never its
// DETAIL (which quotes row values).
//
// Reconnecting. A lost connection fails the statement that found it (kUnavailable); the next
// exec, prepare or step resets it once (PQreset). Statements prepared by name on the old session
// are prepared again (the connection counts its sessions). begin_write and begin_read retry on
// the new session at once: no transaction was open, so nothing is lost.
#include <memory>
#include <string>
#include <string_view>

#include "adapters/store/sql.hpp"

namespace sdoh::store::sql {

/// The shared SQL text as PostgreSQL reads it: `?N` as `$N` and `{lock}` as `FOR UPDATE`, both
/// only outside string literals, quoted identifiers, dollar-quoted bodies and comments.
/// `parameters` is the highest N seen (the statement's parameter count).
struct PgText {
  std::string sql;
  int parameters = 0;
};
PgText pg_dialect(std::string_view sql);

/// Connects to `url` (`postgresql://user@host:port/db?option=...`, libpq's URI syntax) with
/// `password` (passed apart from the URL so that the URL can be logged; empty: libpq's own
/// sources, e.g. a password in the URL or PGPASSFILE). Sets application_name=sdoh-gateway unless
/// the URL names one, and TCP keepalives (30 s idle, 3 probes 10 s apart) and tcp_user_timeout
/// (30 s) unless the URL sets them: a vanished server is noticed in about a minute. Errors
/// (kUnavailable; kConfig for an unparsable URL) name the host, port and database, never the
/// password. Blocks for at most the URL's connect_timeout (10 s unless the URL says otherwise).
Result<std::unique_ptr<Connection>> pg_connect(const std::string& url, const std::string& password);

}  // namespace sdoh::store::sql
