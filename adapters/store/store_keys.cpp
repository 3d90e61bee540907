// The SQLite store's unique keys, looked up in memory (key_index.hpp): filled at open, kept by
// the writer thread's inserts and retention, each match confirmed against its row.
#include <chrono>

#include "adapters/store/sql_store_impl.hpp"

namespace sdoh::store {

namespace {

/// The first id stored under `hash` whose row, read by `by_id` (bound ?1: the id), `matches`
/// (two keys may share a hash; a row retention removed is not there).
template <class Match>
Result<std::optional<std::int64_t>> confirmed(const KeyTable& table, std::uint64_t hash,
                                              Statement& by_id, Match&& matches) {
  std::vector<std::int64_t> candidates;
  table.for_each(hash, [&](std::int64_t id) { candidates.push_back(id); });
  for (const auto id : candidates) {
    ResetOnExit reset{by_id};
    by_id.integer(1, id);
    auto r = by_id.step();
    if (!r) return fail(r.error());
    if (*r == kRow && matches(by_id)) return std::optional<std::int64_t>(id);
  }
  return std::optional<std::int64_t>();
}

}  // namespace

Result<void> SqlStore::Impl::load_keys() {
  unique_keys = std::make_unique<UniqueKeys>();
  if (auto r = inbound_by_id.prepare(*conn,
                                     "SELECT protocol, sender, dedupe_key, answer_code, answer "
                                     "FROM inbound WHERE id = ?1");
      !r) {
    return r;
  }
  if (auto r = event_by_seq.prepare(*conn, "SELECT event_id FROM outbox WHERE seq = ?1"); !r)
    return r;
  const auto started = std::chrono::steady_clock::now();
  // Both scans read a narrow index kept in insertion order (new keys append to its last page),
  // not the tables' rows with their payloads and events.
  Statement st;
  if (auto r = st.prepare(*conn,
                          "SELECT id, protocol, sender, dedupe_key FROM inbound INDEXED BY "
                          "inbound_keys WHERE dedupe_key IS NOT NULL");
      !r) {
    return r;
  }
  auto read = st.each_row([&](Statement& row) {
    unique_keys->inbound.insert(
        UniqueKeys::inbound_hash(row.column_text(1), row.column_text(2), row.column_text(3)),
        row.column_int(0));
  });
  if (!read) return fail(read.error());
  Statement ev;
  if (auto r = ev.prepare(*conn, "SELECT seq, event_id FROM outbox INDEXED BY outbox_inbound");
      !r) {
    return r;
  }
  read = ev.each_row([&](Statement& row) {
    unique_keys->events.insert(UniqueKeys::event_hash(row.column_text(1)), row.column_int(0));
  });
  if (!read) return fail(read.error());
  keys_in_memory.store(
      static_cast<std::int64_t>(unique_keys->inbound.size() + unique_keys->events.size()));
  log::info("store.keys_loaded",
            {{"inbound_keys", static_cast<std::int64_t>(unique_keys->inbound.size())},
             {"event_ids", static_cast<std::int64_t>(unique_keys->events.size())},
             {"memory_bytes", static_cast<std::int64_t>(unique_keys->inbound.memory_bytes() +
                                                        unique_keys->events.memory_bytes())},
             {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count()}});
  return {};
}

Result<std::optional<SqlStore::Impl::SeenInbound>> SqlStore::Impl::find_inbound(
    std::string_view protocol, std::string_view sender, std::string_view dedupe_key) {
  SeenInbound seen;
  auto id = confirmed(unique_keys->inbound, UniqueKeys::inbound_hash(protocol, sender, dedupe_key),
                      inbound_by_id, [&](Statement& row) {
                        if (row.column_text(0) != protocol || row.column_text(1) != sender ||
                            row.column_text(2) != dedupe_key) {
                          return false;
                        }
                        seen.answer_code = row.column_text(3);
                        seen.answer = row.column_text(4);
                        return true;
                      });
  if (!id) return fail(id.error());
  if (!*id) return std::optional<SeenInbound>();
  seen.id = **id;
  return std::optional<SeenInbound>(std::move(seen));
}

void SqlStore::Impl::inbound_added(std::string_view protocol, std::string_view sender,
                                   std::string_view dedupe_key, std::int64_t id) {
  if (unique_keys && !dedupe_key.empty())
    unique_keys->add(unique_keys->inbound, UniqueKeys::inbound_hash(protocol, sender, dedupe_key),
                     id);
}

void SqlStore::Impl::inbound_removed(std::string_view protocol, std::string_view sender,
                                     std::string_view dedupe_key, std::int64_t id) {
  if (unique_keys && !dedupe_key.empty())
    unique_keys->remove(unique_keys->inbound,
                        UniqueKeys::inbound_hash(protocol, sender, dedupe_key), id);
}

void SqlStore::Impl::event_removed(std::string_view event_id, std::int64_t seq) {
  if (unique_keys) unique_keys->remove(unique_keys->events, UniqueKeys::event_hash(event_id), seq);
}

Result<std::optional<std::int64_t>> SqlStore::Impl::step_insert_event(std::string_view event_id) {
  if (unique_keys) {
    const auto hash = UniqueKeys::event_hash(event_id);
    auto stored = confirmed(unique_keys->events, hash, event_by_seq,
                            [&](Statement& row) { return row.column_text(0) == event_id; });
    if (!stored) return fail(stored.error());
    if (*stored) return std::optional<std::int64_t>();  // stored before: a resend
    auto r = insert_outbox.step();
    if (!r) return fail(r.error());
    if (*r != kRow) return fail(Error::internal("the outbox insert returned no sequence number"));
    const auto seq = insert_outbox.column_int(0);
    unique_keys->add(unique_keys->events, hash, seq);
    return std::optional<std::int64_t>(seq);
  }
  // PostgreSQL: the unique index answers (ON CONFLICT DO NOTHING returns no row).
  auto r = insert_outbox.step();
  if (!r) return fail(r.error());
  if (*r != kRow) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(insert_outbox.column_int(0));
}

}  // namespace sdoh::store
