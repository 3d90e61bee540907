#pragma once
// The gateway's durable store, on one of two SQL engines (sql.hpp) with the same logic:
//   - SQLite (the default, embedded): one database file in WAL mode with synchronous=FULL, so a
//     committed transaction survives a crash or power loss;
//   - PostgreSQL (store.url): several gateways on one database; a commit is durable once
//     PostgreSQL flushed its WAL. Relay leases, advisory locks and the shared counts are in
//     store_leases.cpp and sql_store_impl.hpp.
// Schema migrations are versioned in code per engine (sqlite_schema.cpp, pg_schema.cpp) and
// applied at open.
//
// Writes go through one writer thread that owns the write connection and commits in groups:
// every commit that arrives while a transaction is being written joins the next one, so many
// concurrent senders share one fsync (group commit). Each sender's commit() completes, on its
// own executor, once its transaction is durable.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/audit/chain.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/health.hpp"
#include "gateway/pipeline/audit_port.hpp"
#include "gateway/pipeline/auth_port.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/dead_letter_port.hpp"
#include "gateway/pipeline/delivery_port.hpp"
#include "gateway/pipeline/ops_port.hpp"
#include "gateway/pipeline/outbound_port.hpp"
#include "gateway/pipeline/outbox_port.hpp"
#include "gateway/pipeline/referral_port.hpp"
#include "gateway/pipeline/resource_port.hpp"
#include "gateway/pipeline/subscription_port.hpp"
#include "gateway/pipeline/timeline_port.hpp"

namespace sdoh::store {

using PendingEvent = pipeline::PendingEvent;
using DeliveredEvent = pipeline::DeliveredEvent;
using UndeliveredRef = pipeline::UndeliveredRef;
using EventOrigin = pipeline::EventOrigin;
using DeadLetterInfo = pipeline::DeadLetterInfo;
using ReplayResult = pipeline::ReplayResult;
using OutboundRow = pipeline::OutboundRow;
using StoreStats = pipeline::StoreStats;
using ReferralKeysRow = pipeline::ReferralKeys;

/// A referral's state for the closed loop (status as its lifecycle name, e.g. "accepted").
using ReferralRow = pipeline::ReferralState;

using ResourceRow = pipeline::ResourceRow;
using ResourceQuery = pipeline::ResourceQuery;
using ResourcePage = pipeline::ResourcePage;

/// How the audit trail is kept (config: gateway_id, kafka.topics.audit_anchors, audit.retention).
struct AuditSettings {
  std::string gateway_id = "sdoh-gateway";  ///< AuditEvent.source and the anchors' gateway
  std::string anchor_topic = "sdoh.audit-anchors.v1";
  /// Records older than this are pruned (the head always stays). Default 6 years (HIPAA
  /// §164.316(b)(2) documentation retention).
  std::chrono::milliseconds retention{std::chrono::hours(24 * (365 * 6 + 2))};
};

/// Verifies the audit chain of the store at `path`, read-only (tools/audit verify; safe while a
/// gateway runs on it): every record, then the head against `anchors` (anchors of another gateway
/// than `gateway` ignored when it is not empty).
Result<audit::ChainReport> verify_audit_chain(const std::filesystem::path& path,
                                              std::vector<audit::Anchor> anchors,
                                              std::string gateway = "");
/// The same for the PostgreSQL store at `url` (libpq URI; `password` apart, never logged), in one
/// read-only snapshot.
Result<audit::ChainReport> verify_postgres_audit_chain(const std::string& url,
                                                       const std::string& password,
                                                       std::vector<audit::Anchor> anchors,
                                                       std::string gateway = "");

/// Wall-clock milliseconds since the epoch: every time the store records (received, delivered,
/// updated) and every retention cut-off. The system clock by default; tests inject their own.
using StoreClock = std::function<std::int64_t()>;

class SqlStore final : public pipeline::CommitPort,
                       public pipeline::ResourceReader,
                       public pipeline::DeliveryTracker,
                       public pipeline::Outbox,
                       public pipeline::OutboundQueue,
                       public pipeline::DeadLetters,
                       public pipeline::ReferralRepository,
                       public pipeline::SubscriptionStore,
                       public pipeline::TimelineReader,
                       public pipeline::AuthStore,
                       public pipeline::AuditTrail,
                       public pipeline::OpsReads {
 public:
  /// Opens (creating if needed) the database at `path`, applies pending migrations and starts
  /// the writer thread. `registry` may be null (tools); `clock` empty: the system clock. The
  /// clock is called from the writer and reader threads.
  static Result<std::unique_ptr<SqlStore>> open(const std::filesystem::path& path,
                                                const config::StoreConfig& cfg,
                                                metrics::Registry* registry = nullptr,
                                                StoreClock clock = {});
  /// Opens the PostgreSQL database at `url` (libpq URI; `password` apart, never logged),
  /// applies pending migrations (one gateway at a time) and starts the writer thread. Several
  /// gateways may open one database.
  static Result<std::unique_ptr<SqlStore>> open_postgres(const std::string& url,
                                                         const std::string& password,
                                                         const config::StoreConfig& cfg,
                                                         metrics::Registry* registry = nullptr,
                                                         StoreClock clock = {});
  /// The store the config names: PostgreSQL when store.url is set (its password resolved from
  /// store.password), else the SQLite file at `sqlite_path`.
  static Result<std::unique_ptr<SqlStore>> open_configured(const std::filesystem::path& sqlite_path,
                                                           const config::StoreConfig& cfg,
                                                           metrics::Registry* registry);
  /// Finishes queued writes, then stops the writer thread and closes.
  ~SqlStore() override;
  SqlStore(const SqlStore&) = delete;
  SqlStore& operator=(const SqlStore&) = delete;

  boost::asio::awaitable<Result<pipeline::CommitOutcome>> commit(
      pipeline::CommitRequest request) override;

  /// The first `limit` undelivered events with seq > `after_seq`, in commit order.
  /// Reads on its own connection; never waits for the writer.
  Result<std::vector<PendingEvent>> pending_events(std::int64_t after_seq,
                                                   int limit) const override;
  /// Records Kafka's acknowledgement of these events and the highest offset seen per
  /// partition (queued to the writer thread).
  void mark_delivered(std::vector<DeliveredEvent> events) override;
  /// Completes when every one of `seqs` is delivered (kOk), refused for good (kUnavailable)
  /// or `timeout` passed (kUnavailable). For delivery.ack=delivered.
  boost::asio::awaitable<Result<void>> await_delivered(std::vector<std::int64_t> seqs,
                                                       std::chrono::milliseconds timeout) override;

  /// Kafka refused this event for good (topic missing, message too large): it leaves the
  /// outbox's queue, a dead letter records why, and `notice` (the org.sdoh.deadletter.v1
  /// event, if any) is queued for publishing. Blocks until committed.
  Result<void> dead_letter_event(std::int64_t seq, const pipeline::DeadLetterRecord& record,
                                 std::optional<pipeline::OutboxEvent> notice) override;
  Result<EventOrigin> event_origin(std::int64_t seq) const override;
  std::int64_t relay_epoch() const override;

  /// For restart reconciliation: every undelivered event, and the highest acknowledged
  /// offset per (topic, partition).
  Result<std::vector<UndeliveredRef>> undelivered_refs() const override;
  Result<pipeline::DeliveryOffsets> delivery_offsets() const override;

  /// Dead letters, newest first, `limit` at most, older than `before_id` when given.
  Result<std::vector<DeadLetterInfo>> dead_letters(int limit, bool include_replayed) const override;
  Result<DeadLetterInfo> dead_letter(const std::string& dead_letter_id,
                                     bool with_payload) const override;
  /// Replays a dead letter of an event Kafka refused: it is queued for publishing again.
  /// Exactly once: a second replay fails with kConflict.
  Result<ReplayResult> replay_event(const std::string& dead_letter_id) override;
  std::int64_t dead_letters_waiting() const override { return stats().dead_letters; }

  /// Records a referral's state (queued to the writer; a newer sequence never goes back).
  void record_referral(ReferralRow row);
  /// The referral the keys name: by id, else by a clinic number or REF control id that exactly
  /// one referral has.
  Result<std::optional<ReferralRow>> find_referral(const ReferralKeysRow& keys) const override;

  /// FHIR resources (written by commits' ResourceWrite), read on reader connections.
  Result<std::optional<ResourceRow>> read_resource(std::string_view type, std::string_view id,
                                                   std::int64_t version = 0) const override;
  Result<std::optional<std::string>> find_resource_id(std::string_view type,
                                                      std::string_view system,
                                                      std::string_view value) const override;
  Result<ResourcePage> search_resources(const ResourceQuery& query) const override;
  Result<std::vector<ResourceRow>> resource_history(std::string_view type,
                                                    std::string_view id) const override;

  /// Referrals still waiting for their agency (requested, not held, not yet overdue) since
  /// before `waiting_before_ms` (their last change: creation or the release of a hold), longest
  /// waiting first: the overdue check's candidates.
  using WaitingReferral = pipeline::WaitingReferral;
  Result<std::vector<WaitingReferral>> referrals_awaiting_agency(std::int64_t waiting_before_ms,
                                                                 int limit) const override;

  /// The first open (not final) referral of this patient (pseudonym) for this need, if any.
  Result<std::optional<std::string>> open_referral_for(std::string_view patient,
                                                       std::string_view category) const override;

  /// Referral timelines started at or after `since_ms`, and every open one (two index range
  /// scans, one read snapshot).
  Result<std::vector<measures::ReferralTimeline>> timelines(std::int64_t since_ms) const override;

  // OpsReads
  Result<std::vector<pipeline::HeldReferral>> held_referrals(const std::string& reason,
                                                             int limit) const override;
  Result<pipeline::OutboundSummary> outbound_summary() const override;

  /// Outbound messages due for a (re)send at `now_ms`, oldest first.
  Result<std::vector<OutboundRow>> due_outbound(std::int64_t now_ms, int limit) const override;
  /// Records a send attempt: `done` (acknowledged, or given up) with its outcome, or the error
  /// and when to try again (queued to the writer).
  void record_outbound_attempt(std::int64_t id, bool done, std::string outcome, std::string error,
                               std::int64_t next_attempt_ms) override;

  /// Agencies' FHIR Subscriptions and their notification queue (subscription_port.hpp):
  /// writes block until committed, reads use the read pool.
  Result<void> put_subscription(const pipeline::SubscriptionRow& row,
                                std::int64_t expected_version) override;
  Result<std::optional<pipeline::SubscriptionRow>> subscription(
      const std::string& id) const override;
  Result<std::vector<pipeline::SubscriptionRow>> subscriptions(
      const std::string& agency_id) const override;
  Result<bool> delete_subscription(const std::string& id) override;
  Result<std::vector<pipeline::NotificationRow>> queued_notifications(const std::string& id,
                                                                      int limit) const override;
  Result<std::int64_t> queued_notification_count() const override;
  Result<void> record_delivery(const pipeline::DeliveryRecord& record) override;

  /// SMART Backend Services (auth_port.hpp): used assertions and the token-signing key, written
  /// on the writer thread (blocks until committed).
  Result<bool> record_assertion(std::string_view client_id, std::string_view jti,
                                std::int64_t expires_at_ms) override;
  Result<pipeline::SigningKeyRow> signing_key(const pipeline::SigningKeyRow& candidate) override;
  /// The audit trail (audit/chain.hpp): records appended in the writer's group transactions.
  /// record() completes once durable; search and read use the read pool.
  boost::asio::awaitable<Result<void>> record(std::vector<audit::AuditRecord> records) override;
  Result<pipeline::AuditPage> search_audit(const pipeline::AuditQuery& query) const override;
  Result<std::optional<std::string>> audit_event(std::int64_t sequence) const override;
  /// The gateway id, anchor topic and retention of the audit trail (before or while running).
  void configure_audit(AuditSettings settings);
  /// Anchors the chain's head now: queues the org.sdoh.audit.anchor.v1 event (its id is
  /// deterministic from the head, so an unchanged head is not published twice) and writes the
  /// head to the log. Blocks until committed.
  Result<audit::Anchor> anchor_audit();

  /// Applies the retention policy once, now (tests; the writer thread does it every
  /// store.prune_interval). Returns the rows removed or cleared.
  Result<std::int64_t> prune_now();
  /// Blocks until every write queued before the call has been committed (or failed) and its
  /// completion handed on. The runtime calls it before destroying the io_context.
  void flush() override;

  StoreStats stats() const override;
  /// Writes waiting for the writer thread (not yet taken into a transaction).
  std::size_t queued_writes() const;
  /// The schema version after migrations.
  int schema_version() const;
  /// Open, and the last transaction succeeded (never blocks).
  ops::CheckState health() const override;
  /// Whether new commits are taken: not while the outbox backlog is past store.max_backlog_*
  /// or the writer's queue is full (commit() then fails at once with kUnavailable, without
  /// queueing anything). Never blocks.
  ops::CheckState capacity() const;

  /// The newest schema version this build knows.
  static int latest_schema_version();

  struct Impl;

 private:
  explicit SqlStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::store
