// The PostgreSQL engine of sql.hpp (its rules: sql_pg.hpp).
//
// libpq (C), not libpqxx: group commit needs libpq's pipeline mode (PostgreSQL 14+), which
// libpqxx exposes only in part; libpq reports errors as values, so they become Result<T> without
// exceptions crossing the store; and libpq5 is already a Debian dependency of the postgresql
// package that tools/setup installs.
#include "adapters/store/sql_pg.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <libpq-fe.h>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "gateway/core/json_parse.hpp"

namespace sdoh::store::sql {
namespace {

// Type OIDs, as in PostgreSQL's pg_type.dat (stable across versions).
constexpr Oid kBool = 16, kBytea = 17, kChar = 18, kName = 19, kInt8 = 20, kInt2 = 21, kInt4 = 23,
              kText = 25, kOid = 26, kJson = 114, kFloat4 = 700, kFloat8 = 701, kUnknown = 705,
              kBpchar = 1042, kVarchar = 1043, kNumeric = 1700;

// Named statements of destroyed cursors are deallocated in one round trip once this many wait
// (only statements run more than once get a name, so few ever do).
constexpr std::size_t kDeallocateBatch = 32;

bool identifier_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '_' || c == '$' || u >= 0x80;
}
bool tag_char(char c, bool first) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalpha(u) != 0 || c == '_' || u >= 0x80 || (!first && std::isdigit(u) != 0);
}

/// Where a quoted or commented span that starts at `i` ends (one past it), or npos if none
/// starts there.
std::size_t skip_quoted(std::string_view in, std::size_t i) {
  const std::size_t n = in.size();
  const char c = in[i];
  if (c == '\'' || c == '"') {
    // E'...' strings take backslash escapes; elsewhere a quote is escaped by doubling it.
    const bool backslash = c == '\'' && i > 0 && (in[i - 1] == 'E' || in[i - 1] == 'e') &&
                           (i < 2 || !identifier_char(in[i - 2]));
    for (std::size_t j = i + 1; j < n; ++j) {
      if (backslash && in[j] == '\\') {
        ++j;
      } else if (in[j] == c) {
        if (j + 1 < n && in[j + 1] == c) {
          ++j;
        } else {
          return j + 1;
        }
      }
    }
    return n;
  }
  if (c == '-' && i + 1 < n && in[i + 1] == '-') {
    const auto end = in.find('\n', i);
    return end == std::string_view::npos ? n : end + 1;
  }
  if (c == '/' && i + 1 < n && in[i + 1] == '*') {
    int depth = 0;  // PostgreSQL's block comments nest
    for (std::size_t j = i; j + 1 < n; ++j) {
      if (in[j] == '/' && in[j + 1] == '*') {
        ++depth;
        ++j;
      } else if (in[j] == '*' && in[j + 1] == '/') {
        ++j;
        if (--depth == 0) return j + 1;
      }
    }
    return n;
  }
  if (c == '$' && (i == 0 || !identifier_char(in[i - 1]))) {
    // $tag$ ... $tag$ (the tag may be empty); `$1` is a parameter, not a tag.
    std::size_t j = i + 1;
    while (j < n && tag_char(in[j], j == i + 1))
      ++j;
    if (j < n && in[j] == '$') {
      const auto tag = in.substr(i, j - i + 1);
      const auto end = in.find(tag, j + 1);
      return end == std::string_view::npos ? n : end + tag.size();
    }
  }
  return std::string_view::npos;
}

std::string one_line(std::string_view message) {
  std::string out;
  for (const char c : message) {
    if (c == '\n' || c == '\t' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return out;
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

void quiet_notices(void*, const char*) {}  // NOTICEs (e.g. "already exists, skipping")

/// One libpq connection, shared by the Connection and its cursors so that a cursor destroyed
/// after its Connection is still safe.
struct Session {
  PGconn* conn = nullptr;
  std::uint64_t generation = 0;  // sessions opened; named statements belong to one
  std::uint64_t next_name = 0;
  std::vector<std::string> unused;  // named statements of destroyed cursors, this session
  std::string password;             // kept to redact it from any message, never shown
  // Pipeline mode (a write transaction, begin_write to COMMIT): statements nobody reads the
  // result of are sent without waiting (Cursor::send); the next statement that is read, or
  // flush_sent(), sends a Sync and reads every result up to it: one round trip for them all.
  bool pipeline = false;
  int sent = 0;  // results owed by the server (each followed by its NULL) before the next Sync

  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (conn != nullptr) PQfinish(conn);
  }

  std::string where() const {
    const char* host = PQhost(conn);
    const char* port = PQport(conn);
    const char* db = PQdb(conn);
    return std::string("PostgreSQL at ") + (host != nullptr ? host : "") + ":" +
           (port != nullptr ? port : "") + "/" + (db != nullptr ? db : "");
  }

  std::string redact(std::string message) const {
    if (password.empty()) return message;
    for (auto at = message.find(password); at != std::string::npos; at = message.find(password, at))
      message.replace(at, password.size(), "***");
    return message;
  }

  /// Resets a lost connection once; named statements of the old session are gone.
  Result<void> ensure_open() {
    if (PQstatus(conn) == CONNECTION_OK) return {};
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
      return fail(Error::unavailable(where() + ": connection lost and not re-established: " +
                                     redact(one_line(PQerrorMessage(conn)))));
    }
    ++generation;
    unused.clear();
    return {};
  }

  /// The Error for a failed result (`r` may be null: libpq could not even send).
  Error error_of(const PGresult* r, std::string_view doing) const {
    const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    const std::string code = state != nullptr ? state : "";
    // 08P01 (protocol violation) is what a wrong parameter count gets: a bug, not an outage.
    if (PQstatus(conn) != CONNECTION_OK || (code.starts_with("08") && code != "08P01")) {
      return Error::unavailable(where() + ": connection lost (" + std::string(doing) +
                                "): " + redact(one_line(PQerrorMessage(conn))));
    }
    if (code.empty()) {  // refused by libpq itself
      return Error::internal("PostgreSQL " + std::string(doing) + ": " +
                             redact(one_line(PQerrorMessage(conn))));
    }
    // The primary message only: DETAIL quotes row values. Class 22 messages quote the input.
    const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    std::string message = "PostgreSQL " + code + " (" + std::string(doing) + "): " +
                          (code.starts_with("22") ? std::string("data exception")
                           : primary != nullptr   ? redact(primary)
                                                  : std::string());
    if (code.starts_with("23")) return Error::conflict(std::move(message));
    static const std::set<std::string, std::less<>> kTryAgain = {
        "40001", "40P01", "57P01", "57P02", "57P03", "57014", "55P03", "55006"};
    if (kTryAgain.contains(code) || code.starts_with("53"))
      return Error::unavailable(std::move(message));
    return Error::internal(std::move(message));
  }

  /// Sends a Sync and reads every owed result up to it. `keep`: the last one's result (a
  /// statement just sent that the caller reads), else nothing. The first failure among them is
  /// the answer (later ones are aborted by the server: PGRES_PIPELINE_ABORTED).
  Result<void> sync(PgResult* keep) {
    if (PQpipelineSync(conn) != 1) return fail(error_of(nullptr, "pipeline sync"));
    std::optional<Error> first;
    for (int unit = 0; unit < sent; ++unit) {
      PgResult last;
      while (PGresult* r = PQgetResult(conn)) {
        const auto status = PQresultStatus(r);
        if (status == PGRES_FATAL_ERROR && !first) first = error_of(r, "execute");
        last.reset(r);
      }
      if (keep != nullptr && unit == sent - 1) *keep = std::move(last);
    }
    sent = 0;
    // The Sync's own result.
    while (PGresult* r = PQgetResult(conn)) {
      const auto status = PQresultStatus(r);
      PQclear(r);
      if (status == PGRES_PIPELINE_SYNC) break;
    }
    if (PQstatus(conn) != CONNECTION_OK && !first) first = error_of(nullptr, "pipeline");
    if (first) return fail(std::move(*first));
    return {};
  }

  /// Leaves pipeline mode (COMMIT, ROLLBACK and other exec() run outside it): the owed results
  /// first. Their error, if any, is the answer; the mode is left anyway.
  Result<void> leave_pipeline() {
    if (!pipeline) return {};
    Result<void> r;
    if (sent > 0) r = sync(nullptr);
    pipeline = false;
    if (PQexitPipelineMode(conn) != 1) {
      PQreset(conn);  // results still owed after a failure: start a clean session
      ++generation;
      unused.clear();
    }
    return r;
  }

  /// Deallocates named statements of destroyed cursors, between transactions only (a failed
  /// DEALLOCATE must not abort one); its errors are of no consequence.
  void release_unused() {
    if (unused.size() < kDeallocateBatch || PQtransactionStatus(conn) != PQTRANS_IDLE) return;
    std::string sql;
    for (const auto& name : unused)
      sql += "DEALLOCATE " + name + ";";
    unused.clear();
    PgResult(PQexec(conn, sql.c_str()));
  }
};

std::int64_t big_endian(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  if (bytes < 8 && bytes > 0 && (v >> (bytes * 8 - 1)) != 0)  // sign-extend int2 / int4
    v |= ~std::uint64_t{0} << (bytes * 8);
  return static_cast<std::int64_t>(v);
}

std::string four_digits(int v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04d", v);
  return buf;
}

/// A double as the shortest text that reads back as it.
std::string shortest(double d) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return ec == std::errc() ? std::string(buf, end) : std::string();
}

/// numeric's binary form (ndigits, weight, sign, dscale, then base-10000 digits) as decimal text.
std::string numeric_text(const char* p, int length) {
  if (length < 8) return "0";
  const auto ndigits = static_cast<int>(big_endian(p, 2));
  const auto weight = static_cast<int>(big_endian(p + 2, 2));
  const auto sign = static_cast<std::uint16_t>(big_endian(p + 4, 2));
  const auto dscale = static_cast<int>(big_endian(p + 6, 2));
  if (sign == 0xC000) return "NaN";
  if (sign == 0xD000) return "Infinity";
  if (sign == 0xF000) return "-Infinity";
  if (length < 8 + 2 * ndigits) return "0";
  auto digit = [&](int k) {
    return k >= 0 && k < ndigits ? static_cast<int>(big_endian(p + 8 + 2 * k, 2)) : 0;
  };
  std::string out = sign == 0x4000 ? "-" : "";
  if (weight < 0) {
    out += '0';
  } else {
    out += std::to_string(digit(0));
    for (int k = 1; k <= weight; ++k)
      out += four_digits(digit(k));
  }
  if (dscale > 0) {
    std::string fraction;
    for (int k = weight + 1; static_cast<int>(fraction.size()) < dscale; ++k)
      fraction += four_digits(digit(k));
    out += '.' + fraction.substr(0, static_cast<std::size_t>(dscale));
  }
  return out;
}

bool decodable(Oid type) {
  switch (type) {
    case kBool:
    case kBytea:
    case kChar:
    case kName:
    case kInt8:
    case kInt2:
    case kInt4:
    case kText:
    case kOid:
    case kJson:
    case kFloat4:
    case kFloat8:
    case kUnknown:
    case kBpchar:
    case kVarchar:
    case kNumeric:
      return true;
    default:
      return false;
  }
}

struct Param {
  char kind = 'u';  // signature letter: i(nt8) t(ext) b(ytea) n(ull) u(nbound)
  std::string value;
};

class PgCursor final : public Cursor {
 public:
  PgCursor(std::shared_ptr<Session> session, PgText text)
      : s_(std::move(session)), text_(std::move(text)), generation_(s_->generation) {}
  ~PgCursor() override {
    if (generation_ != s_->generation) return;
    for (const auto& [signature, name] : named_)
      s_->unused.push_back(name);
  }
  PgCursor(const PgCursor&) = delete;
  PgCursor& operator=(const PgCursor&) = delete;

  void bind_text(int i, std::string_view v) override {
    // PostgreSQL's text holds well-formed UTF-8 without NUL, where SQLite keeps any bytes: other
    // bytes (a sender field in another charset) become U+FFFD, the same way each time, so that
    // the value still finds its own (dedupe keys). Bytes that must come back as they were are
    // blobs.
    if (v.find('\0') == std::string_view::npos && json::valid_utf8(v)) {
      set(i, 't', v);
      return;
    }
    auto clean = json::with_replacement_characters(v);
    for (auto at = clean.find('\0'); at != std::string::npos; at = clean.find('\0', at))
      clean.replace(at, 1, "\xEF\xBF\xBD");
    set(i, 't', clean);
  }
  void bind_blob(int i, std::string_view v) override { set(i, 'b', v); }
  void bind_int(int i, std::int64_t v) override { set(i, 'i', std::to_string(v)); }
  void bind_null(int i) override { set(i, 'n', {}); }

  Result<void> send() override {
    if (!s_->pipeline) {
      auto r = execute();
      if (!r) return r;
      return {};
    }
    return dispatch(false);
  }

  Result<int> step() override {
    if (!result_) {
      auto r = s_->pipeline ? dispatch(true) : execute();
      if (!r) return fail(r.error());
      row_ = -1;
    }
    if (PQresultStatus(result_.get()) != PGRES_TUPLES_OK) return kDone;
    if (row_ < PQntuples(result_.get())) ++row_;
    return row_ < PQntuples(result_.get()) ? kRow : kDone;
  }

  bool is_null(int i) const override { return !at(i) || PQgetisnull(result_.get(), row_, i) != 0; }
  std::string text(int i) const override {
    if (is_null(i)) return {};
    const char* p = PQgetvalue(result_.get(), row_, i);
    const int n = PQgetlength(result_.get(), row_, i);
    switch (PQftype(result_.get(), i)) {
      case kInt2:
      case kInt4:
      case kInt8:
      case kOid:
      case kBool:
        return std::to_string(integer(i));
      case kNumeric:
        return numeric_text(p, n);
      case kFloat4:
      case kFloat8:
        return shortest(real(i));
      default:
        return {p, static_cast<std::size_t>(n)};
    }
  }
  std::int64_t integer(int i) const override {
    if (is_null(i)) return 0;
    const char* p = PQgetvalue(result_.get(), row_, i);
    const int n = PQgetlength(result_.get(), row_, i);
    switch (PQftype(result_.get(), i)) {
      case kInt2:
      case kInt4:
      case kInt8:
      case kBool:
        return big_endian(p, n);
      case kOid:
        return static_cast<std::int64_t>(static_cast<std::uint64_t>(big_endian(p, n)) &
                                         0xFFFFFFFFu);
      case kFloat4:
      case kFloat8:
        return static_cast<std::int64_t>(real(i));
      case kNumeric:
        return leading_integer(numeric_text(p, n));
      default:  // text: its leading integer, as SQLite reads one
        return leading_integer({p, static_cast<std::size_t>(n)});
    }
  }
  std::int64_t changes() const override { return changes_; }
  void reset() override {
    result_.reset();
    params_.clear();
    changes_ = 0;
    row_ = -1;
  }

 private:
  void set(int i, char kind, std::string_view v) {
    if (i < 1) return;
    if (params_.size() < static_cast<std::size_t>(i)) params_.resize(static_cast<std::size_t>(i));
    params_[static_cast<std::size_t>(i - 1)] = Param{kind, std::string(v)};
  }
  bool at(int i) const {
    return result_ && row_ >= 0 && row_ < PQntuples(result_.get()) && i >= 0 &&
           i < PQnfields(result_.get());
  }
  double real(int i) const {
    const char* p = PQgetvalue(result_.get(), row_, i);
    if (PQftype(result_.get(), i) == kFloat4) {
      const auto bits = static_cast<std::uint32_t>(big_endian(p, 4));
      float f = 0;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    const auto bits = static_cast<std::uint64_t>(big_endian(p, 8));
    double d = 0;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  static std::int64_t leading_integer(std::string_view v) {
    std::int64_t out = 0;
    std::from_chars(v.data(), v.data() + v.size(), out);
    return out;
  }

  struct Call {
    std::string signature;
    std::vector<Oid> types;
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
  };
  /// The first `n` parameters as libpq takes them; the signature names their types.
  Call call(std::size_t n) const {
    Call c;
    c.types.resize(n);
    c.values.resize(n);
    c.lengths.resize(n);
    c.formats.resize(n);
    auto& signature = c.signature;
    auto& types = c.types;
    auto& values = c.values;
    auto& lengths = c.lengths;
    auto& formats = c.formats;
    for (std::size_t k = 0; k < n; ++k) {
      const auto& p = params_[k];
      signature += p.kind;
      switch (p.kind) {
        case 'i':
          types[k] = kInt8;
          break;
        case 't':
          types[k] = kText;
          break;
        case 'b':
          types[k] = kBytea;
          formats[k] = 1;
          break;
        case 'u':  // never bound (the text may skip a number): a NULL of some type
          types[k] = kText;
          break;
        default:  // NULL: the server infers the type
          types[k] = 0;
          break;
      }
      values[k] = p.kind == 'n' || p.kind == 'u' ? nullptr : p.value.c_str();
      lengths[k] = static_cast<int>(p.value.size());
    }
    return c;
  }

  /// In pipeline mode: sends the statement; `read`: and syncs, keeping its result.
  Result<void> dispatch(bool read) {
    forget_names_of_old_sessions();
    const auto n = static_cast<std::size_t>(text_.parameters);
    params_.resize(std::max(n, params_.size()));
    Call c = call(n);
    const int count = static_cast<int>(n);
    int ok = 0;
    if (auto it = named_.find(c.signature); it != named_.end()) {
      ok = PQsendQueryPrepared(s_->conn, it->second.c_str(), count, c.values.data(),
                               c.lengths.data(), c.formats.data(), 1);
    } else if (!ran_unnamed_.contains(c.signature)) {
      ran_unnamed_.insert(c.signature);
      ok = PQsendQueryParams(s_->conn, text_.sql.c_str(), count, c.types.data(), c.values.data(),
                             c.lengths.data(), c.formats.data(), 1);
    } else {  // the second run with these types: named, prepared in the same pipeline
      const std::string name = "sdoh_" + std::to_string(++s_->next_name);
      ok = PQsendPrepare(s_->conn, name.c_str(), text_.sql.c_str(), count, c.types.data());
      if (ok == 1) {
        ++s_->sent;
        named_.emplace(c.signature, name);
        ok = PQsendQueryPrepared(s_->conn, name.c_str(), count, c.values.data(), c.lengths.data(),
                                 c.formats.data(), 1);
      }
    }
    if (ok != 1) return fail(s_->error_of(nullptr, "send"));
    ++s_->sent;
    if (!read) return {};
    PgResult res;
    if (auto r = s_->sync(&res); !r) return r;
    return take(std::move(res));
  }

  /// A new session (reconnected) has none of the old one's named statements.
  void forget_names_of_old_sessions() {
    if (generation_ == s_->generation) return;
    named_.clear();
    generation_ = s_->generation;
  }

  Result<void> execute() {
    if (auto r = s_->ensure_open(); !r) return r;
    forget_names_of_old_sessions();
    // The parameters the text names; binds beyond them are ignored, as SQLite ignores them.
    const auto n = static_cast<std::size_t>(text_.parameters);
    params_.resize(std::max(n, params_.size()));
    Call c = call(n);
    const auto& signature = c.signature;
    const auto& types = c.types;
    const auto& values = c.values;
    const auto& lengths = c.lengths;
    const auto& formats = c.formats;
    const int count = static_cast<int>(n);
    PGresult* res = nullptr;
    if (auto it = named_.find(signature); it != named_.end()) {
      res = PQexecPrepared(s_->conn, it->second.c_str(), count, values.data(), lengths.data(),
                           formats.data(), 1);
    } else if (!ran_unnamed_.contains(signature)) {
      ran_unnamed_.insert(signature);
      res = PQexecParams(s_->conn, text_.sql.c_str(), count, types.data(), values.data(),
                         lengths.data(), formats.data(), 1);
    } else {  // the second run with these types: worth a name
      const std::string name = "sdoh_" + std::to_string(++s_->next_name);
      PgResult prepared(PQprepare(s_->conn, name.c_str(), text_.sql.c_str(), count, types.data()));
      if (PQresultStatus(prepared.get()) != PGRES_COMMAND_OK)
        return fail(s_->error_of(prepared.get(), "prepare"));
      named_.emplace(signature, name);
      res = PQexecPrepared(s_->conn, name.c_str(), count, values.data(), lengths.data(),
                           formats.data(), 1);
    }
    return take(PgResult(res));
  }

  /// Checks a statement's result and keeps it for the rows and changes().
  Result<void> take(PgResult result) {
    const auto status = PQresultStatus(result.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
      return fail(s_->error_of(result.get(), "execute"));
    for (int c = 0; status == PGRES_TUPLES_OK && c < PQnfields(result.get()); ++c) {
      if (!decodable(PQftype(result.get(), c))) {
        return fail(Error::internal("PostgreSQL engine: result column " + std::to_string(c) + " (" +
                                    PQfname(result.get(), c) + ") has type OID " +
                                    std::to_string(PQftype(result.get(), c)) +
                                    ", which it does not read; cast it to bigint or text"));
      }
    }
    const char* tuples = PQcmdTuples(result.get());
    changes_ = tuples != nullptr ? leading_integer(tuples) : 0;
    result_ = std::move(result);
    return {};
  }

  std::shared_ptr<Session> s_;
  PgText text_;
  std::uint64_t generation_;
  std::map<std::string, std::string> named_;  // parameter types -> statement name
  std::set<std::string> ran_unnamed_;         // parameter types run once, unnamed
  std::vector<Param> params_;
  PgResult result_;
  int row_ = -1;
  std::int64_t changes_ = 0;
};

class PgConnection final : public Connection {
 public:
  explicit PgConnection(std::shared_ptr<Session> s) : s_(std::move(s)) {}
  Engine engine() const override { return Engine::kPostgres; }
  Result<void> exec(std::string_view sql) override {
    // COMMIT, ROLLBACK: after the statements still in flight, outside pipeline mode.
    const auto owed = s_->leave_pipeline();
    if (auto r = s_->ensure_open(); !r) return r;
    const auto text = pg_dialect(sql);
    PgResult res(PQexec(s_->conn, text.sql.c_str()));
    const auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY)
      return fail(s_->error_of(res.get(), "exec"));
    if (!owed) return owed;
    return {};
  }
  Result<std::unique_ptr<Cursor>> prepare(std::string_view sql) override {
    if (auto r = s_->ensure_open(); !r) return fail(r.error());
    return std::unique_ptr<Cursor>(std::make_unique<PgCursor>(s_, pg_dialect(sql)));
  }
  Result<void> begin_write() override {
    if (auto r = begin("BEGIN"); !r) return r;
    if (PQenterPipelineMode(s_->conn) != 1) return fail(s_->error_of(nullptr, "pipeline mode"));
    s_->pipeline = true;
    return {};
  }
  Result<void> flush_sent() override {
    if (!s_->pipeline || s_->sent == 0) return {};
    return s_->sync(nullptr);
  }
  // In pipeline mode savepoints are sent like any statement; ROLLBACK TO waits (it follows a
  // failure, and the writer goes on only once it is undone).
  Result<void> savepoint() override { return pipelined("SAVEPOINT op", false); }
  Result<void> release() override { return pipelined("RELEASE op", false); }
  Result<void> rollback_to() override { return pipelined("ROLLBACK TO op", true); }
  Result<void> begin_read() override {
    return begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
  Result<void> lock(std::int64_t key) override {
    // Sent without waiting: the server runs what follows only once it holds the lock.
    if (lock_ == nullptr) {
      auto p = prepare("SELECT 1 FROM (SELECT pg_advisory_xact_lock(?1)) l");
      if (!p) return fail(p.error());
      lock_ = std::move(*p);
    }
    lock_->bind_int(1, key);
    auto r = lock_->send();
    lock_->reset();
    return r;
  }
  Result<bool> try_lock(std::int64_t key) override {
    return run_lock(try_lock_, "SELECT CASE WHEN pg_try_advisory_xact_lock(?1) THEN 1 ELSE 0 END",
                    key);
  }

 private:
  Result<void> begin(const char* sql) {
    if (auto r = s_->ensure_open(); !r) return r;
    s_->release_unused();
    auto r = exec(sql);
    // No transaction was open: on a new session BEGIN is simply said again.
    if (!r && PQstatus(s_->conn) != CONNECTION_OK) r = exec(sql);
    return r;
  }

  Result<void> pipelined(const char* sql, bool wait) {
    if (!s_->pipeline) return exec(sql);
    if (wait && s_->sent > 0) (void)s_->sync(nullptr);  // the failure being undone, and its aborts
    if (PQsendQueryParams(s_->conn, sql, 0, nullptr, nullptr, nullptr, nullptr, 1) != 1)
      return fail(s_->error_of(nullptr, "send"));
    ++s_->sent;
    if (!wait) return {};
    return s_->sync(nullptr);
  }

  /// Runs a lock statement (prepared once per connection): whether its one row says taken.
  Result<bool> run_lock(std::unique_ptr<Cursor>& st, std::string_view sql, std::int64_t key) {
    if (st == nullptr) {
      auto p = prepare(sql);
      if (!p) return fail(p.error());
      st = std::move(*p);
    }
    st->bind_int(1, key);
    auto r = st->step();
    const bool taken = r && *r == kRow && st->integer(0) != 0;
    st->reset();
    if (!r) return fail(r.error());
    return taken;
  }

  std::shared_ptr<Session> s_;
  std::unique_ptr<Cursor> lock_, try_lock_;
};

}  // namespace

PgText pg_dialect(std::string_view in) {
  static constexpr std::string_view kLock = "{lock}";
  PgText out;
  out.sql.reserve(in.size() + 16);
  std::size_t i = 0;
  while (i < in.size()) {
    if (const auto end = skip_quoted(in, i); end != std::string_view::npos) {
      out.sql.append(in.substr(i, end - i));
      i = end;
      continue;
    }
    if (in[i] == '?' && i + 1 < in.size() && std::isdigit(static_cast<unsigned char>(in[i + 1]))) {
      int number = 0;
      const auto* first = in.data() + i + 1;
      const auto [last, ec] = std::from_chars(first, in.data() + in.size(), number);
      if (ec == std::errc()) {
        out.sql += '$';
        out.sql.append(first, last);
        out.parameters = std::max(out.parameters, number);
        i = static_cast<std::size_t>(last - in.data());
        continue;
      }
    }
    if (in.substr(i, kLock.size()) == kLock) {
      out.sql += "FOR UPDATE";
      i += kLock.size();
      continue;
    }
    out.sql += in[i++];
  }
  return out;
}

Result<std::unique_ptr<Connection>> pg_connect(const std::string& url,
                                               const std::string& password) {
  // Parsed first on its own: libpq's parse errors may quote the URL, password included.
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &parse_error);
  if (parse_error != nullptr) PQfreemem(parse_error);
  if (options == nullptr) {
    return fail(Error::config("store.url",
                              "store.url is not a PostgreSQL connection URL "
                              "(postgresql://user@host:port/database?option=value)"));
  }
  std::string secret = password;  // redacted from messages, wherever it came from
  for (auto* o = options; o->keyword != nullptr; ++o) {
    if (secret.empty() && std::strcmp(o->keyword, "password") == 0 && o->val != nullptr)
      secret = o->val;
  }
  PQconninfoFree(options);
  // Keywords are applied in order: those before dbname (the URL, expanded) are defaults the URL
  // may override; the password after it wins. Keepalives and tcp_user_timeout: a server that
  // vanished without a FIN (host down, partition) is found within about a minute, not the
  // kernel's two hours, even while a statement waits for a lock.
  std::vector<const char*> keys = {
      "application_name",    "connect_timeout",  "client_encoding",  "keepalives_idle",
      "keepalives_interval", "keepalives_count", "tcp_user_timeout", "dbname"};
  std::vector<const char*> values = {"sdoh-gateway", "10", "UTF8",  "30",
                                     "10",           "3",  "30000", url.c_str()};
  if (!password.empty()) {
    keys.push_back("password");
    values.push_back(password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  auto session = std::make_shared<Session>();
  session->password = secret;
  session->conn = PQconnectdbParams(keys.data(), values.data(), 1);
  if (session->conn == nullptr) return fail(Error::unavailable("PostgreSQL: out of memory"));
  if (PQstatus(session->conn) != CONNECTION_OK) {
    return fail(Error::unavailable(session->where() + ": cannot connect: " +
                                   session->redact(one_line(PQerrorMessage(session->conn)))));
  }
  PQsetNoticeProcessor(session->conn, quiet_notices, nullptr);
  return std::unique_ptr<Connection>(std::make_unique<PgConnection>(std::move(session)));
}

}  // namespace sdoh::store::sql
