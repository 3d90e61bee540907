// The store's reads: FHIR resources, referrals, the outbound queue, and what the ops API
// reads of them (held referrals, the outbound queue's state).
#include "adapters/store/sql_store_impl.hpp"

namespace sdoh::store {

namespace {

struct RecordReferralOp final : WriteOp {
  ReferralRow row;
  Result<void> execute(SqlStore::Impl& s) override { return upsert_referral(s, row, s.now()); }
  void add_locks(std::vector<std::int64_t>& keys) const override {
    keys.push_back(sql::referral_lock(row.referral_id));  // its timeline is read, then written
  }
  void finish(Result<void> result) override {
    if (!result) {
      log::error("store.referral_not_recorded",
                 {{"referral_id", row.referral_id}, {"reason", result.error().message}});
    }
  }
};

}  // namespace

void SqlStore::record_referral(ReferralRow row) {
  auto op = std::make_unique<RecordReferralOp>();
  op->row = std::move(row);
  impl_->enqueue(std::move(op));
}

namespace {

ReferralRow referral_row(const Statement& st) {
  ReferralRow r;
  r.referral_id = st.column_text(0);
  r.clinic_number_system = st.column_text(1);
  r.clinic_number_value = st.column_text(2);
  r.source_control_id = st.column_text(3);
  r.agency_id = st.column_text(4);
  r.category = st.column_text(5);
  r.status = st.column_text(6);
  r.business_status = st.column_text(7);
  r.sequence = static_cast<int>(st.column_int(8));
  r.overdue = st.column_int(9) != 0;
  r.created_at_ms = st.column_int(10);
  r.return_to = st.column_text(11);
  r.return_pid = st.column_text(12);
  r.race = st.column_text(13);
  r.ethnicity = st.column_text(14);
  r.language = st.column_text(15);
  return r;
}

ResourceRow resource_row(const Statement& st) {
  return {st.column_text(0), st.column_text(1), st.column_int(2),
          st.column_text(3), st.column_text(4), st.column_text(5)};
}

/// The one referral a bound statement finds (none when it finds none or several).
Result<std::optional<ReferralRow>> single_referral(Statement& st) {
  ResetOnExit reset{st};
  std::optional<ReferralRow> found;
  for (int rows = 0;; ++rows) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != kRow) break;
    if (rows > 0) return std::optional<ReferralRow>{};  // not unique: names none
    found = referral_row(st);
  }
  return found;
}

/// Every row of a bound statement that selects kResourceColumns.
Result<std::vector<ResourceRow>> resource_rows(Statement& st) {
  ResetOnExit reset{st};
  std::vector<ResourceRow> rows;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != kRow) return rows;
    rows.push_back(resource_row(st));
  }
}

}  // namespace

Result<std::optional<ReferralRow>> SqlStore::find_referral(const ReferralKeysRow& keys) const {
  auto conn = impl_->lease_reader();
  // Most specific first; a clinic number or control id only when exactly one referral has it.
  if (!keys.referral_id.empty()) {
    conn->referral_by_id.text(1, keys.referral_id);
    auto r = single_referral(conn->referral_by_id);
    if (!r || *r) return r;
  }
  if (!keys.clinic_number_value.empty()) {
    auto& st = keys.clinic_number_system.empty() ? conn->referral_by_number
                                                 : conn->referral_by_system_number;
    st.text(1, keys.clinic_number_value);
    if (!keys.clinic_number_system.empty()) st.text(2, keys.clinic_number_system);
    auto r = single_referral(st);
    if (!r || *r) return r;
  }
  if (!keys.source_control_id.empty()) {
    conn->referral_by_control.text(1, keys.source_control_id);
    return single_referral(conn->referral_by_control);
  }
  return std::optional<ReferralRow>{};
}

namespace {

/// The most values one search binds (every parameter's values together).
constexpr std::size_t kMaxSearchValues = 200;

}  // namespace

Result<std::optional<ResourceRow>> SqlStore::read_resource(std::string_view type,
                                                           std::string_view id,
                                                           std::int64_t version) const {
  auto conn = impl_->lease_reader();
  auto& st = version == 0 ? conn->current_resource : conn->resource_version;
  st.text(1, type).text(2, id);
  if (version != 0) st.integer(3, version);
  auto rows = resource_rows(st);
  if (!rows) return fail(rows.error());
  if (rows->empty()) return std::optional<ResourceRow>{};
  return std::optional<ResourceRow>(std::move(rows->front()));
}

Result<std::optional<std::string>> SqlStore::find_resource_id(std::string_view type,
                                                              std::string_view system,
                                                              std::string_view value) const {
  auto conn = impl_->lease_reader();
  auto& st = conn->resource_id;
  ResetOnExit reset{st};
  st.text(1, type).text(2, system).text(3, value);
  auto r = st.step();
  if (!r) return fail(r.error());
  if (*r != kRow) return std::optional<std::string>{};
  return std::optional<std::string>(st.column_text(0));
}

Result<ResourcePage> SqlStore::search_resources(const ResourceQuery& query) const {
  // Every parameter narrows the type's resources to the ids having one of its values (an index
  // lookup each); the SQL text depends only on how many parameters and values there are, and
  // every value is bound.
  std::string where = "WHERE r.type = ?1";
  std::vector<std::string_view> binds{query.type};
  for (const auto& [name, values] : query.params) {
    if (values.empty()) return ResourcePage{};
    where += " AND r.id IN (SELECT s.id FROM resource_search s WHERE s.type = ?1 AND s.name = ?" +
             std::to_string(binds.size() + 1) + " AND s.value IN (";
    binds.push_back(name);
    for (std::size_t i = 0; i < values.size(); ++i) {
      where += (i > 0 ? ", ?" : "?") + std::to_string(binds.size() + 1);
      binds.push_back(values[i]);
    }
    where += "))";
  }
  if (binds.size() > kMaxSearchValues) {
    return fail(Error::invalid("a search takes at most " + std::to_string(kMaxSearchValues) +
                               " parameter values"));
  }
  const std::string count_sql = "SELECT count(*) FROM resources r " + where;
  const std::string page_sql = std::string(kResourceColumns) + "AND h.version = r.version " +
                               where + " ORDER BY r.updated_at DESC, r.id LIMIT ?" +
                               std::to_string(binds.size() + 1) + " OFFSET ?" +
                               std::to_string(binds.size() + 2);
  auto conn = impl_->lease_reader();
  auto counter = conn->search(count_sql);
  if (!counter) return fail(counter.error());
  auto pager = conn->search(page_sql);
  if (!pager) return fail(pager.error());
  // The total and the page from one snapshot, whatever the writer commits meanwhile.
  ReadTransaction snapshot(*conn);
  if (snapshot.error()) return fail(*snapshot.error());
  ResourcePage page;
  {
    auto& st = **counter;
    ResetOnExit reset{st};
    for (std::size_t i = 0; i < binds.size(); ++i)
      st.text(static_cast<int>(i + 1), binds[i]);
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kRow) page.total = st.column_int(0);
  }
  const std::int64_t offset = std::max(query.offset, 0);
  if (query.count <= 0 || page.total <= offset) return page;
  auto& st = **pager;
  for (std::size_t i = 0; i < binds.size(); ++i)
    st.text(static_cast<int>(i + 1), binds[i]);
  st.integer(static_cast<int>(binds.size() + 1), query.count);
  st.integer(static_cast<int>(binds.size() + 2), offset);
  auto rows = resource_rows(st);
  if (!rows) return fail(rows.error());
  page.rows = std::move(*rows);
  return page;
}

Result<std::vector<ResourceRow>> SqlStore::resource_history(std::string_view type,
                                                            std::string_view id) const {
  auto conn = impl_->lease_reader();
  auto& st = conn->resource_history;
  st.text(1, type).text(2, id);
  return resource_rows(st);
}

Result<std::vector<SqlStore::WaitingReferral>> SqlStore::referrals_awaiting_agency(
    std::int64_t waiting_before_ms, int limit) const {
  // Several gateways on one database: the overdue check is a singleton, run by the holder of
  // relay bucket 0's lease (a dead holder's lease is taken over, and the check with it).
  if (impl_->shared_database() && !impl_->holds_lease(0)) return std::vector<WaitingReferral>();
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto r = st.prepare(
          *conn->conn,
          "SELECT referral_id, clinic_number_system, clinic_number_value, "
          "source_control_id, agency_id, category, status, business_status, sequence, "
          "created_at, updated_at FROM referrals WHERE status = 'requested' AND "
          "overdue_at IS NULL AND business_status NOT IN ('no-route', "
          "'uncategorised', 'awaiting-consent') AND updated_at < ?1 ORDER BY updated_at LIMIT ?2");
      !r) {
    return fail(r.error());
  }
  st.integer(1, waiting_before_ms).integer(2, limit);
  std::vector<WaitingReferral> rows;
  for (;;) {
    auto stepped = st.step();
    if (!stepped) return fail(stepped.error());
    if (*stepped == kDone) return rows;
    ReferralRow r;
    r.referral_id = st.column_text(0);
    r.clinic_number_system = st.column_text(1);
    r.clinic_number_value = st.column_text(2);
    r.source_control_id = st.column_text(3);
    r.agency_id = st.column_text(4);
    r.category = st.column_text(5);
    r.status = st.column_text(6);
    r.business_status = st.column_text(7);
    r.sequence = static_cast<int>(st.column_int(8));
    r.created_at_ms = st.column_int(9);
    rows.push_back({std::move(r), st.column_int(10)});
  }
}

Result<std::optional<std::string>> SqlStore::open_referral_for(std::string_view patient,
                                                               std::string_view category) const {
  if (patient.empty()) return std::optional<std::string>();
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto r = st.prepare(*conn->conn,
                          "SELECT referral_id FROM referrals WHERE patient = ?1 AND category = ?2 "
                          "AND patient <> '' AND status NOT IN ('rejected', 'completed', "
                          "'failed', 'cancelled') ORDER BY created_at LIMIT 1");
      !r) {
    return fail(r.error());
  }
  st.text(1, patient).text(2, category);
  auto r = st.step();
  if (!r) return fail(r.error());
  if (*r == kRow) return std::optional<std::string>(st.column_text(0));
  return std::optional<std::string>();
}

Result<std::vector<measures::ReferralTimeline>> SqlStore::timelines(std::int64_t since_ms) const {
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto r = st.prepare(*conn->conn, std::string(kTimelineColumns) +
                                           "WHERE started_at >= ?1 UNION ALL " + kTimelineColumns +
                                           "WHERE closed_at IS NULL AND started_at < ?1");
      !r) {
    return fail(r.error());
  }
  st.integer(1, since_ms);
  std::vector<measures::ReferralTimeline> rows;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kDone) return rows;
    rows.push_back(timeline_row(st));
  }
}

Result<std::vector<OutboundRow>> SqlStore::due_outbound(std::int64_t now_ms, int limit) const {
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto r = st.prepare(*conn->conn,
                          "SELECT id, destination, referral_id, message, attempts FROM outbound "
                          "WHERE done_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2");
      !r) {
    return fail(r.error());
  }
  st.integer(1, now_ms).integer(2, limit);
  std::vector<OutboundRow> rows;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kDone) return rows;
    rows.push_back({st.column_int(0), st.column_text(1), st.column_text(2), st.column_text(3),
                    static_cast<int>(st.column_int(4))});
  }
}

namespace {

struct OutboundAttemptOp final : WriteOp {
  std::int64_t id = 0;
  bool done = false;
  std::string outcome;
  std::string error;
  std::int64_t next_attempt_ms = 0;
  bool needs_durability() const override { return false; }
  Result<void> execute(SqlStore::Impl& s) override {
    Statement st;
    if (auto r = st.prepare(*s.conn,
                            "UPDATE outbound SET attempts = attempts + 1, next_attempt_at = ?2, "
                            "done_at = CASE WHEN ?3 <> 0 THEN ?4 END, outcome = ?5, "
                            "last_error = ?6 WHERE id = ?1");
        !r) {
      return r;
    }
    st.integer(1, id).integer(2, next_attempt_ms).integer(3, done ? 1 : 0).integer(4, s.now());
    st.text_or_null(5, outcome).text_or_null(6, error);
    if (auto r = st.step(); !r) return fail(r.error());
    return {};
  }
  void finish(Result<void> result) override {
    if (!result) {
      log::warn("store.outbound_not_recorded", {{"id", id}, {"reason", result.error().message}});
    }
  }
};

}  // namespace

void SqlStore::record_outbound_attempt(std::int64_t id, bool done, std::string outcome,
                                       std::string error, std::int64_t next_attempt_ms) {
  auto op = std::make_unique<OutboundAttemptOp>();
  op->id = id;
  op->done = done;
  op->outcome = std::move(outcome);
  op->error = std::move(error);
  op->next_attempt_ms = next_attempt_ms;
  impl_->enqueue(std::move(op));
}

Result<std::vector<pipeline::HeldReferral>> SqlStore::held_referrals(const std::string& reason,
                                                                     int limit) const {
  auto conn = impl_->lease_reader();
  // The FHIR client that sent a referral is its Task's source; an HL7 one's is return_to.
  Statement st;
  if (auto r = st.prepare(
          *conn->conn,
          "SELECT r.referral_id, r.category, r.business_status, CASE WHEN r.return_to <> '' THEN "
          "r.return_to ELSE coalesce((SELECT source FROM resources WHERE type = 'Task' AND id = "
          "r.referral_id), '') END, r.agency_id, r.updated_at FROM referrals r WHERE r.status = "
          "'requested' AND r.business_status IN ('no-route', 'awaiting-consent', "
          "'uncategorised') AND (?1 = '' OR r.business_status = ?1) ORDER BY r.updated_at, "
          "r.referral_id LIMIT ?2");
      !r) {
    return fail(r.error());
  }
  st.text(1, reason).integer(2, limit);
  std::vector<pipeline::HeldReferral> rows;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kDone) return rows;
    rows.push_back({st.column_text(0), st.column_text(1), st.column_text(2), st.column_text(3),
                    st.column_text(4), st.column_int(5)});
  }
}

Result<pipeline::OutboundSummary> SqlStore::outbound_summary() const {
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto r = st.prepare(*conn->conn,
                          "SELECT (SELECT count(*) FROM outbound WHERE done_at IS NULL), (SELECT "
                          "count(*) FROM outbound WHERE done_at IS NULL AND attempts > 0), "
                          "(SELECT coalesce(min(created_at), 0) FROM outbound WHERE done_at IS "
                          "NULL), (SELECT count(*) FROM outbound WHERE done_at IS NOT NULL AND "
                          "coalesce(outcome, '') NOT IN ('AA', 'CA'))");
      !r) {
    return fail(r.error());
  }
  auto r = st.step();
  if (!r) return fail(r.error());
  if (*r != kRow) return fail(Error::internal("the outbound summary returned no row"));
  return pipeline::OutboundSummary{st.column_int(0), st.column_int(1), st.column_int(2),
                                   st.column_int(3)};
}

}  // namespace sdoh::store
