// The store's schema on SQLite: versioned migrations, applied at open (PRAGMA user_version).
// PostgreSQL has its own (pg_schema.cpp); the tables, columns and keys are the same, so the
// store's statements run on both.
#include "adapters/store/sql_store_impl.hpp"

namespace sdoh::store {

namespace {

// SMART Backend Services (pipeline/auth_port.hpp): client assertions already used (kept until
// they expire, so a jti is refused again within its lifetime by every gateway on the database)
// and the gateway's token-signing keys (one current; retired_at makes room for rotation).
// Written as its own constant so that its place in kMigrations (its version) is one line.
constexpr const char* kSmartAuthMigration = R"sql(
      CREATE TABLE auth_assertions (
        client_id  TEXT NOT NULL,
        jti        TEXT NOT NULL,
        expires_at INTEGER NOT NULL,  -- unix ms: the assertion's exp plus the clock skew
        PRIMARY KEY (client_id, jti)
      ) STRICT;
      CREATE INDEX auth_assertions_expiry ON auth_assertions(expires_at);
      CREATE TABLE auth_signing_keys (
        kid         TEXT PRIMARY KEY,
        alg         TEXT NOT NULL,
        private_pem TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        retired_at  INTEGER           -- NULL: the current key
      ) STRICT;
    )sql";

// Each entry moves the schema from version i to i+1. Never edit a released entry: add one.
const std::vector<const char*> kMigrations = {
    // 1: the store's identity.
    R"sql(
      CREATE TABLE gateway_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;
      INSERT INTO gateway_meta(key, value) VALUES ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    )sql",
    // 2: inbound messages (dedupe + original answers), the transactional outbox, dead letters.
    R"sql(
      CREATE TABLE inbound (
        id           INTEGER PRIMARY KEY,
        protocol     TEXT NOT NULL,
        sender       TEXT NOT NULL,
        dedupe_key   TEXT,              -- NULL: nothing to dedupe on
        message_type TEXT NOT NULL,
        received_at  INTEGER NOT NULL,  -- unix ms
        answer_code  TEXT NOT NULL,
        answer       BLOB NOT NULL,     -- returned as is to a resend
        payload      BLOB,              -- the message as received; NULL once pruned
        UNIQUE (protocol, sender, dedupe_key)
      ) STRICT;
      CREATE TABLE outbox (
        seq          INTEGER PRIMARY KEY,  -- commit order
        event_id     TEXT NOT NULL UNIQUE,
        inbound_id   INTEGER REFERENCES inbound(id),
        type         TEXT NOT NULL,
        topic        TEXT NOT NULL,
        key          TEXT NOT NULL,
        value        BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        delivered_at INTEGER,              -- NULL until Kafka acknowledged it
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT
      ) STRICT;
      CREATE INDEX outbox_undelivered ON outbox(seq) WHERE delivered_at IS NULL;
      CREATE INDEX outbox_delivered_at ON outbox(delivered_at) WHERE delivered_at IS NOT NULL;
      CREATE TABLE dead_letters (
        id             INTEGER PRIMARY KEY,
        dead_letter_id TEXT NOT NULL UNIQUE,
        inbound_id     INTEGER REFERENCES inbound(id),
        created_at     INTEGER NOT NULL,
        stage          TEXT NOT NULL,
        error_code     TEXT NOT NULL,
        error_text     TEXT NOT NULL,
        location       TEXT NOT NULL,
        replayed_at    INTEGER
      ) STRICT;
    )sql",
    // 3: events Kafka refuses for good leave the queue as dead letters; where deliveries
    // landed (restart reconciliation); indexes for retention.
    R"sql(
      ALTER TABLE outbox ADD COLUMN dead_at INTEGER;  -- refused for good; see dead_letters
      DROP INDEX outbox_undelivered;
      CREATE INDEX outbox_undelivered ON outbox(seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
      CREATE INDEX outbox_inbound ON outbox(inbound_id);
      ALTER TABLE dead_letters ADD COLUMN outbox_seq INTEGER;  -- publish failures: the event
      ALTER TABLE dead_letters ADD COLUMN replay_outcome TEXT;
      CREATE INDEX dead_letters_inbound ON dead_letters(inbound_id);
      CREATE TABLE delivery_offsets (
        topic     TEXT NOT NULL,
        partition INTEGER NOT NULL,
        offset    INTEGER NOT NULL,  -- the highest offset Kafka acknowledged for our events
        PRIMARY KEY (topic, partition)
      ) STRICT;
    )sql",
    // 4: referral state for the closed loop: how an agency's answer finds its referral, the
    // current status and the sequence of its last status event.
    R"sql(
      CREATE TABLE referrals (
        referral_id          TEXT PRIMARY KEY,
        clinic_number_system TEXT NOT NULL,
        clinic_number_value  TEXT NOT NULL,
        source_control_id    TEXT NOT NULL,
        agency_id            TEXT NOT NULL,
        category             TEXT NOT NULL,
        status               TEXT NOT NULL,
        business_status      TEXT NOT NULL,
        sequence             INTEGER NOT NULL,
        updated_at           INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX referrals_clinic_number ON referrals(clinic_number_value);
      CREATE INDEX referrals_source ON referrals(source_control_id);
    )sql",
    // 5: FHIR resources: the current version of each, every kept version (history), and what
    // they are found by (identifiers, search parameters). Referrals remember when they began.
    R"sql(
      CREATE TABLE resources (
        type         TEXT NOT NULL,
        id           TEXT NOT NULL,
        version      INTEGER NOT NULL,
        last_updated TEXT NOT NULL,     -- RFC 3339, meta.lastUpdated
        updated_at   INTEGER NOT NULL,  -- unix ms, for retention
        source       TEXT NOT NULL,     -- the client that sent it
        PRIMARY KEY (type, id)
      ) STRICT;
      CREATE INDEX resources_updated ON resources(updated_at);
      CREATE TABLE resource_history (
        type         TEXT NOT NULL,
        id           TEXT NOT NULL,
        version      INTEGER NOT NULL,
        last_updated TEXT NOT NULL,
        updated_at   INTEGER NOT NULL,
        json         BLOB NOT NULL,
        PRIMARY KEY (type, id, version)
      ) STRICT;
      CREATE INDEX resource_history_updated ON resource_history(updated_at);
      CREATE TABLE resource_identifiers (
        type   TEXT NOT NULL,
        system TEXT NOT NULL,
        value  TEXT NOT NULL,
        id     TEXT NOT NULL,
        PRIMARY KEY (type, system, value, id)
      ) STRICT;
      CREATE INDEX resource_identifiers_id ON resource_identifiers(type, id);
      CREATE TABLE resource_search (
        type  TEXT NOT NULL,
        id    TEXT NOT NULL,
        name  TEXT NOT NULL,
        value TEXT NOT NULL
      ) STRICT;
      CREATE INDEX resource_search_lookup ON resource_search(type, name, value);
      CREATE INDEX resource_search_id ON resource_search(type, id);
      ALTER TABLE referrals ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
      UPDATE referrals SET created_at = updated_at;
      ALTER TABLE referrals ADD COLUMN overdue_at INTEGER;  -- its one overdue event was raised
      CREATE INDEX referrals_waiting ON referrals(created_at) WHERE status = 'requested' AND
        overdue_at IS NULL;
      ALTER TABLE referrals ADD COLUMN return_to TEXT NOT NULL DEFAULT '';   -- HL7 sender
      ALTER TABLE referrals ADD COLUMN return_pid TEXT NOT NULL DEFAULT '';  -- PID-3 as sent
      ALTER TABLE referrals ADD COLUMN race TEXT NOT NULL DEFAULT '';        -- equity codes
      ALTER TABLE referrals ADD COLUMN ethnicity TEXT NOT NULL DEFAULT '';
      ALTER TABLE referrals ADD COLUMN language TEXT NOT NULL DEFAULT '';
      CREATE TABLE outbound (
        id              INTEGER PRIMARY KEY,
        destination     TEXT NOT NULL,     -- host:port
        referral_id     TEXT NOT NULL,
        message         BLOB NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        done_at         INTEGER,           -- acknowledged (or refused for good)
        outcome         TEXT,              -- AA/CA, or why it was given up
        last_error      TEXT
      ) STRICT;
      CREATE INDEX outbound_due ON outbound(next_attempt_at) WHERE done_at IS NULL;
    )sql",
    // 6: indexes for FHIR searches (a type's resources newest first; parameter lookups that
    // never touch the table) and for the retention of closed referrals.
    R"sql(
      CREATE INDEX resources_recent ON resources(type, updated_at DESC, id);
      DROP INDEX resource_search_lookup;
      CREATE INDEX resource_search_lookup ON resource_search(type, name, value, id);
      CREATE INDEX referrals_closed ON referrals(updated_at) WHERE status IN ('rejected',
        'completed', 'failed', 'cancelled');
    )sql",
    // 7: the overdue clock runs from when a referral began waiting for its agency (its last
    // change: creation, or the release of a hold), not from its creation.
    R"sql(
      DROP INDEX referrals_waiting;
      CREATE INDEX referrals_waiting ON referrals(updated_at) WHERE status = 'requested' AND
        overdue_at IS NULL;
    )sql",
    // 8: the patient's pseudonym, so that a screening does not open a second referral for a need
    // the child already has an open one for.
    R"sql(
      ALTER TABLE referrals ADD COLUMN patient TEXT NOT NULL DEFAULT '';
      CREATE INDEX referrals_open_by_patient ON referrals(patient, category) WHERE patient <> ''
        AND status NOT IN ('rejected', 'completed', 'failed', 'cancelled');
    )sql",
    // 9: delivery is marked in a small table instead of by rewriting each event's row: an event
    // is in outbox_pending (with its size, for the backlog bound) from its commit until Kafka
    // acknowledges it or refuses it for good. Delivered events are kept for the retention
    // counted from their commit.
    R"sql(
      CREATE TABLE outbox_pending (
        seq   INTEGER PRIMARY KEY,  -- outbox.seq
        bytes INTEGER NOT NULL      -- length(outbox.value)
      ) STRICT;
      INSERT INTO outbox_pending(seq, bytes) SELECT seq, length(value) FROM outbox
        WHERE delivered_at IS NULL AND dead_at IS NULL;
      DROP INDEX outbox_undelivered;
      DROP INDEX outbox_delivered_at;
    )sql",
    // 10: agencies' FHIR Subscriptions (rest-hook) and the notifications queued for them in the
    // same transaction as the referral change that causes them, delivered in seq order.
    R"sql(
      CREATE TABLE subscriptions (
        id                 TEXT PRIMARY KEY,
        agency_id          TEXT NOT NULL,
        client_id          TEXT NOT NULL,
        status             TEXT NOT NULL,   -- requested | active | error | off
        endpoint           TEXT NOT NULL,
        content            TEXT NOT NULL,   -- id-only | full-resource
        secret             TEXT NOT NULL,
        heartbeat_seconds  INTEGER NOT NULL,
        end_time           TEXT NOT NULL,
        reason             TEXT NOT NULL,
        error              TEXT NOT NULL,
        events_since_start INTEGER NOT NULL,
        version            INTEGER NOT NULL,
        last_updated       TEXT NOT NULL,
        failures           INTEGER NOT NULL DEFAULT 0,
        first_failure_at   INTEGER NOT NULL DEFAULT 0,
        next_attempt_at    INTEGER NOT NULL DEFAULT 0,
        last_sent_at       INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      CREATE INDEX subscriptions_by_agency ON subscriptions(agency_id, id);
      CREATE TABLE subscription_notifications (
        seq             INTEGER PRIMARY KEY,
        subscription_id TEXT NOT NULL,
        event_number    INTEGER NOT NULL,
        referral_id     TEXT NOT NULL,
        sequence        INTEGER NOT NULL,
        status          TEXT NOT NULL,
        task_json       BLOB NOT NULL,
        created_at      INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX subscription_notifications_queue ON subscription_notifications(subscription_id,
        seq);
    )sql",
    // 11: each referral's timeline for the closed-loop measures (gateway/measures/timeline.hpp),
    // written with every referral state change and kept for measures.window after the referral
    // closed, whatever becomes of its Task and state. Filled from the referrals as far as their
    // state tells: a referral waiting for its agency was released at its last change, one further
    // on at its creation (its holds are not known), a held one not yet; the step it is at, and
    // its end, happened at its last change; earlier steps have no time (the funnel still counts
    // them: the steps are monotone). Clinic and ZIP area are unknown for these.
    R"sql(
      CREATE TABLE referral_timeline (
        referral_id     TEXT PRIMARY KEY,
        created_at      INTEGER NOT NULL,  -- unix ms
        released_at     INTEGER,           -- began waiting for its agency; NULL: never released
        received_at     INTEGER,
        accepted_at     INTEGER,
        closed_at       INTEGER,
        outcome         TEXT NOT NULL,     -- completed | rejected | failed | cancelled; '' open
        status          TEXT NOT NULL,
        business_status TEXT NOT NULL,
        sequence        INTEGER NOT NULL,
        agency_id       TEXT NOT NULL,
        category        TEXT NOT NULL,
        clinic          TEXT NOT NULL,
        race            TEXT NOT NULL,
        ethnicity       TEXT NOT NULL,
        language        TEXT NOT NULL,
        zip3            TEXT NOT NULL,     -- 3-digit ZIP area (Safe Harbor), never the ZIP
        started_at      INTEGER NOT NULL   -- coalesce(released_at, created_at): its window place
      ) STRICT;
      CREATE INDEX referral_timeline_started ON referral_timeline(started_at);
      CREATE INDEX referral_timeline_open ON referral_timeline(started_at) WHERE closed_at IS NULL;
      CREATE INDEX referral_timeline_closed ON referral_timeline(closed_at) WHERE closed_at IS NOT
        NULL;
      INSERT INTO referral_timeline(referral_id, created_at, released_at, received_at, accepted_at,
        closed_at, outcome, status, business_status, sequence, agency_id, category, clinic, race,
        ethnicity, language, zip3, started_at)
      SELECT referral_id, created_at,
        CASE WHEN agency_id = '' OR (status = 'requested' AND business_status IN ('no-route',
               'uncategorised', 'awaiting-consent')) THEN NULL
             WHEN status = 'requested' AND business_status = '' THEN updated_at
             ELSE created_at END,
        CASE WHEN status = 'received' THEN updated_at END,
        CASE WHEN status = 'accepted' THEN updated_at END,
        CASE WHEN status IN ('rejected', 'completed', 'failed', 'cancelled') THEN updated_at END,
        CASE WHEN status IN ('rejected', 'completed', 'failed', 'cancelled') THEN status ELSE ''
          END,
        status, business_status, sequence, agency_id, category, '', race, ethnicity, language, '',
        created_at
      FROM referrals;
      UPDATE referral_timeline SET started_at = coalesce(released_at, created_at);
    )sql",
    // 12: SMART Backend Services' used assertions and token-signing keys.
    kSmartAuthMigration,
    // 13: the audit trail (audit/chain.hpp): append-only, hash-chained AuditEvents, found by
    // entity,
    // agent and time; the prune points that keep the chain verifiable after retention. Only new
    // tables: this entry may take any place after 10.
    R"sql(
      CREATE TABLE audit_events (
        seq       INTEGER PRIMARY KEY,  -- the chain's order: 1, 2, 3, ... no gaps
        recorded  INTEGER NOT NULL,     -- unix ms
        action    TEXT NOT NULL,        -- C R U D E
        agent     TEXT NOT NULL,        -- the requestor's id
        entity    TEXT NOT NULL,        -- the first entity (all of them: audit_entities)
        prev_hash TEXT NOT NULL,        -- the previous record's hash
        hash      TEXT NOT NULL,        -- sha256(prev_hash || json), hex
        json      BLOB NOT NULL         -- the AuditEvent, canonical
      ) STRICT;
      CREATE INDEX audit_events_recorded ON audit_events(recorded);
      CREATE INDEX audit_events_agent ON audit_events(agent, seq);
      CREATE TABLE audit_entities (
        entity TEXT NOT NULL,
        seq    INTEGER NOT NULL,
        PRIMARY KEY (entity, seq)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX audit_entities_seq ON audit_entities(seq);
      CREATE TABLE audit_prunes (
        pruned_through INTEGER PRIMARY KEY,  -- the last record removed
        hash           TEXT NOT NULL,        -- its hash: the first kept record's prev_hash
        pruned_at      INTEGER NOT NULL
      ) STRICT;
      CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
      CREATE TRIGGER audit_events_pruned_only BEFORE DELETE ON audit_events
        WHEN OLD.seq > coalesce((SELECT max(pruned_through) FROM audit_prunes), 0)
        BEGIN SELECT RAISE(ABORT, 'audit records are removed only by a retention prune'); END;
      CREATE TRIGGER audit_entities_append_only BEFORE UPDATE ON audit_entities
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
      CREATE TRIGGER audit_prunes_append_only BEFORE UPDATE ON audit_prunes
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
      CREATE TRIGGER audit_prunes_kept BEFORE DELETE ON audit_prunes
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    )sql",
    // 14: the relay's share of the outbox when several gateways use one (PostgreSQL) database:
    // each event's bucket (a hash of its key, so a key's events stay in one bucket, in order),
    // and which gateway holds each bucket's lease. One SQLite gateway relays every bucket.
    R"sql(
      ALTER TABLE outbox ADD COLUMN bucket INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE relay_leases (
        bucket     INTEGER PRIMARY KEY,
        owner      TEXT NOT NULL,     -- the gateway process holding it (gateway id, host, pid)
        expires_at INTEGER NOT NULL   -- unix ms; a lease not renewed by then may be taken
      ) STRICT;
    )sql",
    // 15: no unique index on the inbound dedupe keys and the event ids. Each was a B-tree keyed
    // at random, so every message dirtied a leaf page of each (written to the WAL and again by
    // the checkpoint): the writer looks them up in memory instead (key_index.hpp), filled at
    // open from two narrow indexes in insertion order. SQLite cannot drop a table's UNIQUE
    // constraint: both tables are copied (migrate_sqlite turns foreign keys off around it, and
    // writes it with a rollback journal). Each index exists before its table is filled, in id
    // order (appends, no sort in memory). The old tables go last: a copy written into pages
    // freed within the transaction would have their old content journaled, on disk and in the
    // statement journal in memory.
    R"sql(
      CREATE TABLE inbound_v15 (
        id           INTEGER PRIMARY KEY,
        protocol     TEXT NOT NULL,
        sender       TEXT NOT NULL,
        dedupe_key   TEXT,              -- NULL: nothing to dedupe on
        message_type TEXT NOT NULL,
        received_at  INTEGER NOT NULL,  -- unix ms
        answer_code  TEXT NOT NULL,
        answer       BLOB NOT NULL,     -- returned as is to a resend
        payload      BLOB               -- the message as received; NULL once pruned
      ) STRICT;
      -- Led by the id, so that new keys land on the last page; read whole at open.
      CREATE INDEX inbound_keys ON inbound_v15(id, protocol, sender, dedupe_key)
        WHERE dedupe_key IS NOT NULL;
      INSERT INTO inbound_v15 SELECT id, protocol, sender, dedupe_key, message_type, received_at,
        answer_code, answer, payload FROM inbound ORDER BY id;
      CREATE TABLE outbox_v15 (
        seq          INTEGER PRIMARY KEY,  -- commit order
        event_id     TEXT NOT NULL,        -- unique: the writer checks (key_index.hpp)
        inbound_id   INTEGER REFERENCES inbound(id),
        type         TEXT NOT NULL,
        topic        TEXT NOT NULL,
        key          TEXT NOT NULL,
        value        BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        delivered_at INTEGER,
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT,
        dead_at      INTEGER,
        bucket       INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      DROP INDEX outbox_inbound;  -- its name, for the copy's
      CREATE INDEX outbox_inbound ON outbox_v15(inbound_id, event_id);
      INSERT INTO outbox_v15 SELECT seq, event_id, inbound_id, type, topic, key, value, created_at,
        delivered_at, attempts, last_error, dead_at, bucket FROM outbox ORDER BY seq;
      DROP TABLE outbox;
      DROP TABLE inbound;
      ALTER TABLE inbound_v15 RENAME TO inbound;
      ALTER TABLE outbox_v15 RENAME TO outbox;
    )sql",
};

}  // namespace

int sqlite_schema_version() {
  return static_cast<int>(kMigrations.size());
}

Result<int> migrate_sqlite(sql::Connection& db) {
  int version = 0;
  {
    Statement current;
    if (auto r = current.prepare(db, "PRAGMA user_version"); !r) return fail(r.error());
    auto r = current.step();
    if (!r) return fail(r.error());
    if (*r == kRow) version = static_cast<int>(current.column_int(0));
  }
  if (version > sqlite_schema_version()) {
    return fail(Error::unavailable(
        "it has schema version " + std::to_string(version) + ", newer than this build (" +
        std::to_string(sqlite_schema_version()) + "); upgrade the gateway"));
  }
  // A migration may copy a table that others refer to (15): foreign keys are off meanwhile
  // (the pragma is ignored inside a transaction); the copies keep every row as it was. An
  // existing store is migrated with a rollback journal (this is its only connection, and no
  // other process has it: the flock): a copy then goes to the file once, where the WAL would
  // hold it whole before the checkpoint wrote it again, doubling the disk space it needs.
  const bool existing = version > 0 && version < sqlite_schema_version();
  auto restore = [&db, existing] {
    (void)db.exec("PRAGMA foreign_keys=ON");
    if (existing) (void)db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  };
  if (version < sqlite_schema_version()) {
    if (auto r = db.exec("PRAGMA foreign_keys=OFF"); !r) return fail(r.error());
  }
  if (existing) {
    if (auto r = db.exec("PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;"); !r) {
      restore();
      return fail(r.error());
    }
  }
  for (int v = version; v < sqlite_schema_version(); ++v) {
    const std::string sql = std::string("BEGIN IMMEDIATE;") +
                            kMigrations[static_cast<std::size_t>(v)] +
                            "PRAGMA user_version=" + std::to_string(v + 1) + "; COMMIT;";
    if (auto r = db.exec(sql); !r) {
      (void)db.exec("ROLLBACK;");
      restore();
      return fail(Error::unavailable("store migration to version " + std::to_string(v + 1) +
                                     " failed: " + r.error().message));
    }
  }
  if (auto r = db.exec("PRAGMA foreign_keys=ON"); !r) return fail(r.error());
  if (existing) {
    if (auto r = db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); !r)
      return fail(r.error());
  }
  return sqlite_schema_version();
}

}  // namespace sdoh::store
