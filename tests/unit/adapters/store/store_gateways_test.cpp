// Several gateways on one PostgreSQL database (issue: PostgreSQL as the shared store): each
// gateway is a store of its own on the same database, and what they write at the same moment is
// serialised by the database. Only PostgreSQL: SQLite's store serves one gateway.
#include <latch>

#include "adapters/store/sql_store.hpp"
#include "gateway/audit/audit_event.hpp"
#include "tests/unit/adapters/store/store_fixture.hpp"
#include "tests/unit/support/run.hpp"

namespace sdoh::store {
namespace {

using namespace store_test_support;

class SeveralGatewaysTest : public StoreTest {
 protected:
  static pipeline::SubscriptionRow subscription(std::string id, std::string agency) {
    pipeline::SubscriptionRow s;
    s.id = std::move(id);
    s.agency_id = std::move(agency);
    s.client_id = s.agency_id;
    s.status = "active";
    s.endpoint = "https://agency.example.org/hook";
    s.content = "id-only";
    s.secret = "0123456789abcdef0123";
    s.version = 1;
    s.last_updated = "2026-11-25T10:00:00Z";
    return s;
  }

  void SetUp() override {
    StoreTest::SetUp();
    for (auto* gateway : {&a_, &b_}) {
      auto opened = open_store(cfg_, nullptr, clock());
      ASSERT_TRUE(opened) << opened.error().message;
      *gateway = std::move(*opened);
    }
  }
  SqlStore& gateway(int i) { return i % 2 == 0 ? *a_ : *b_; }

  /// Runs f(0) ... f(n - 1) on n threads that start together.
  template <class F>
  static void at_once(int n, F f) {
    std::latch start(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        f(i);
      });
    }
    for (auto& t : threads)
      t.join();
  }

  /// `r` with event keys of its own: no event key lock serialises it with another commit, so
  /// the rows it writes must.
  static pipeline::CommitRequest own_keys(pipeline::CommitRequest r) {
    for (auto& e : r.events)
      e.key = e.event_id;
    return r;
  }

  std::unique_ptr<SqlStore> a_, b_;
};
INSTANTIATE_TEST_SUITE_P(Postgres, SeveralGatewaysTest, ::testing::Values(sql::Engine::kPostgres),
                         engine_name);

TEST_P(SeveralGatewaysTest, IdenticalResendsSpreadOverBothGiveOneEvent) {
  for (int round = 0; round < 10; ++round) {
    const auto id = "R" + std::to_string(round);
    std::vector<Result<pipeline::CommitOutcome>> results(8, fail(Error::internal("not run")));
    at_once(8, [&](int i) { results[i] = commit_now(gateway(i), own_keys(request(id, 2))); });
    int committed = 0, duplicates = 0;
    for (const auto& r : results) {
      ASSERT_TRUE(r) << r.error().message;
      if (r->status == pipeline::CommitStatus::kCommitted) ++committed;
      if (r->status == pipeline::CommitStatus::kDuplicate) ++duplicates;
      EXPECT_EQ(r->answer_code, "CA");
    }
    EXPECT_EQ(committed, 1) << id;
    EXPECT_EQ(duplicates, 7) << id;
  }
  auto pending = a_->pending_events(0, 100);
  ASSERT_TRUE(pending) << pending.error().message;
  EXPECT_EQ(pending->size(), 20u);  // two events per message, once each
}

// Two messages resent to both gateways at once, in one order on one and the other order on the
// other: each is committed once, and no commit fails.
TEST_P(SeveralGatewaysTest, ResendsOfTwoMessagesInEitherOrderAllGoThrough) {
  for (int round = 0; round < 20; ++round) {
    const auto one = "M" + std::to_string(round) + "-1", two = "M" + std::to_string(round) + "-2";
    std::vector<Result<pipeline::CommitOutcome>> results(8, fail(Error::internal("not run")));
    at_once(8, [&](int i) {
      const bool forward = (i / 2) % 2 == 0;
      const auto& id = (i % 2 == 0) == forward ? one : two;
      results[i] = commit_now(gateway(i), own_keys(request(id, 1)));
    });
    int committed = 0;
    for (const auto& r : results) {
      ASSERT_TRUE(r) << r.error().message;
      if (r->status == pipeline::CommitStatus::kCommitted) ++committed;
    }
    EXPECT_EQ(committed, 2) << round;
  }
  EXPECT_EQ(a_->pending_events(0, 100)->size(), 40u);
}

TEST_P(SeveralGatewaysTest, AResourceCreatedOnBothAtOnceHasOneWinner) {
  for (int round = 0; round < 10; ++round) {
    const auto id = "t" + std::to_string(round);
    std::vector<Result<pipeline::CommitOutcome>> results(2, fail(Error::internal("not run")));
    at_once(2, [&](int i) {
      results[i] =
          commit_now(gateway(i), own_keys(with_resource(id + "-k" + std::to_string(i),
                                                        task_write(id, 1, "requested", "ehv"))));
    });
    ASSERT_NE(static_cast<bool>(results[0]), static_cast<bool>(results[1])) << id;
    const auto& lost = results[0] ? results[1] : results[0];
    EXPECT_EQ(lost.error().kind, ErrorKind::kConflict);
    EXPECT_EQ(lost.error().message, "Task/" + id + " already exists");
    EXPECT_EQ(b_->resource_history("Task", id)->size(), 1u);
  }
  EXPECT_EQ(a_->pending_events(0, 100)->size(), 10u);  // the winners' events only
}

TEST_P(SeveralGatewaysTest, AResourceUpdatedOnBothFromOneVersionHasOneWinner) {
  ASSERT_TRUE(commit_now(*a_, with_resource("k0", task_write("t1", 1, "requested", "ehv"))));
  for (int version = 2; version < 12; ++version) {
    std::vector<Result<pipeline::CommitOutcome>> results(2, fail(Error::internal("not run")));
    at_once(2, [&](int i) {
      results[i] =
          commit_now(gateway(i),
                     own_keys(with_resource("k" + std::to_string(version) + "-" + std::to_string(i),
                                            task_write("t1", version, "accepted", "ehv"))));
    });
    ASSERT_NE(static_cast<bool>(results[0]), static_cast<bool>(results[1])) << version;
    const auto& lost = results[0] ? results[1] : results[0];
    EXPECT_EQ(lost.error().kind, ErrorKind::kConflict);
    EXPECT_EQ(lost.error().message, "Task/t1 is at version " + std::to_string(version) + ", not " +
                                        std::to_string(version - 1));
  }
  EXPECT_EQ((*a_->read_resource("Task", "t1"))->version, 11);
  EXPECT_EQ(b_->resource_history("Task", "t1")->size(), 11u);
}

TEST_P(SeveralGatewaysTest, AReferralOpenedOnBothAtOnceIsOpenedOnce) {
  for (int round = 0; round < 10; ++round) {
    const auto id = "r" + std::to_string(round);
    std::vector<Result<pipeline::CommitOutcome>> results(2, fail(Error::internal("not run")));
    at_once(2, [&](int i) {
      auto r = request(id + "-k" + std::to_string(i), 1);
      auto opened =
          row(id, "urn:clinic", "REF-" + id, "", "ehv", "food-insecurity", "requested", "", 1);
      opened.expected_sequence = 0;  // only if no referral has the id
      r.referrals.push_back(opened);
      results[i] = commit_now(gateway(i), own_keys(std::move(r)));
    });
    ASSERT_NE(static_cast<bool>(results[0]), static_cast<bool>(results[1])) << id;
    const auto& lost = results[0] ? results[1] : results[0];
    EXPECT_EQ(lost.error().kind, ErrorKind::kConflict);
  }
  EXPECT_EQ(a_->pending_events(0, 100)->size(), 10u);
}

TEST_P(SeveralGatewaysTest, AReferralChangedOnBothFromOneSequenceHasOneWinner) {
  auto opened = request("k0", 1);
  opened.referrals.push_back(
      row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "requested", "", 1));
  ASSERT_TRUE(commit_now(*a_, opened));
  for (int sequence = 2; sequence < 12; ++sequence) {
    std::vector<Result<pipeline::CommitOutcome>> results(2, fail(Error::internal("not run")));
    at_once(2, [&](int i) {
      auto r = request("k" + std::to_string(sequence) + "-" + std::to_string(i), 1);
      auto change = row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity",
                        i == 0 ? "accepted" : "cancelled", "", sequence);
      change.expected_sequence = sequence - 1;
      r.referrals.push_back(change);
      results[i] = commit_now(gateway(i), own_keys(std::move(r)));
    });
    ASSERT_NE(static_cast<bool>(results[0]), static_cast<bool>(results[1])) << sequence;
    const auto& lost = results[0] ? results[1] : results[0];
    EXPECT_EQ(lost.error().kind, ErrorKind::kConflict);
    const auto now = b_->find_referral({"r1", "", "", ""});
    ASSERT_TRUE(now && *now);
    EXPECT_EQ((*now)->sequence, sequence);
    EXPECT_EQ((*now)->status, results[0] ? "accepted" : "cancelled");
  }
}

TEST_P(SeveralGatewaysTest, ADeadLetterReplayedOnBothAtOnceIsReplayedOnce) {
  for (int round = 0; round < 5; ++round) {
    const auto id = "E" + std::to_string(round), dl = "dl-" + id;
    auto committed = commit_now(*a_, own_keys(request(id, 1)));
    ASSERT_TRUE(committed) << committed.error().message;
    ASSERT_TRUE(a_->dead_letter_event(committed->undelivered.at(0),
                                      {dl, "publish", "too-long", "Kafka refused it", "t"}, {}));
    std::vector<Result<ReplayResult>> results(2, fail(Error::internal("not run")));
    at_once(2, [&](int i) { results[i] = gateway(i).replay_event(dl); });
    ASSERT_NE(static_cast<bool>(results[0]), static_cast<bool>(results[1])) << dl;
    const auto& lost = results[0] ? results[1] : results[0];
    EXPECT_EQ(lost.error().kind, ErrorKind::kConflict);
  }
  // Each event back in the queue once: listed by the one gateway whose relay lease covers it.
  EXPECT_EQ(a_->pending_events(0, 100)->size() + b_->pending_events(0, 100)->size(), 5u);
}

TEST_P(SeveralGatewaysTest, AuditRecordsFromBothFormOneVerifiableChain) {
  for (auto* g : {a_.get(), b_.get()})
    g->configure_audit({"gw-test", "sdoh.audit-anchors.v1", std::chrono::hours(24 * 365)});
  at_once(4, [&](int i) {
    for (int n = 0; n < 10; ++n) {
      std::vector<audit::AuditRecord> records{audit::AuditRecord(
          audit::AuditKind::kRead, {"agency-" + std::to_string(i), "agency", "127.0.0.1:5000"},
          {audit::AuditEntity::resource("Task/t" + std::to_string(n))})};
      auto done = test::run(gateway(i).record(std::move(records)));
      EXPECT_TRUE(done) << done.error().message;
    }
  });
  auto report = verify_postgres_audit_chain(*database_url(), "", {}, "gw-test");
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->records, 40);
  EXPECT_EQ(report->head_sequence, 40);
}

TEST_P(SeveralGatewaysTest, AnAssertionIsAcceptedOnceWhicheverGatewaySeesIt) {
  const auto expires = now_ms_.load() + 300'000;
  for (int round = 0; round < 10; ++round) {
    std::vector<Result<bool>> results(4, fail(Error::internal("not run")));
    at_once(4, [&](int i) {
      results[i] = gateway(i).record_assertion("ehr", "jti-" + std::to_string(round), expires);
    });
    int accepted = 0;
    for (const auto& r : results) {
      ASSERT_TRUE(r) << r.error().message;
      if (*r) ++accepted;
    }
    EXPECT_EQ(accepted, 1) << round;
  }
}

TEST_P(SeveralGatewaysTest, TheFirstSigningKeyIsEveryGatewaysKey) {
  std::vector<Result<pipeline::SigningKeyRow>> keys(4, fail(Error::internal("not run")));
  at_once(4, [&](int i) {
    const auto kid = "kid-" + std::to_string(i);
    keys[i] = gateway(i).signing_key({kid, "ES256", "PEM " + kid});
  });
  for (const auto& k : keys) {
    ASSERT_TRUE(k) << k.error().message;
    EXPECT_EQ(k->kid, keys[0]->kid);
    EXPECT_EQ(k->private_pem, keys[0]->private_pem);
  }
}

TEST_P(SeveralGatewaysTest, ASubscriptionCreatedOnBothAtOnceHasOneWinner) {
  for (int round = 0; round < 10; ++round) {
    std::vector<Result<void>> results(2, fail(Error::internal("not run")));
    at_once(2, [&](int i) {
      auto s = subscription("s" + std::to_string(round), "ehv-durham");
      s.endpoint = "https://gateway-" + std::to_string(i) + ".example.org/hook";
      results[i] = gateway(i).put_subscription(s, 0);
    });
    ASSERT_NE(static_cast<bool>(results[0]), static_cast<bool>(results[1])) << round;
    const auto& lost = results[0] ? results[1] : results[0];
    EXPECT_EQ(lost.error().kind, ErrorKind::kConflict);
    EXPECT_EQ(lost.error().message,
              "Subscription/s" + std::to_string(round) + " is at version 1, not 0");
    // The winner's, as it was written.
    EXPECT_EQ((*a_->subscription("s" + std::to_string(round)))->endpoint,
              "https://gateway-" + std::string(results[0] ? "0" : "1") + ".example.org/hook");
  }
}

TEST_P(SeveralGatewaysTest, NotificationsFromBothAreNumberedOnceEach) {
  pipeline::SubscriptionRow s;
  s.id = "s1";
  s.agency_id = "ehv-durham";
  s.client_id = "ehv-durham";
  s.status = "active";
  s.endpoint = "https://agency.example.org/hook";
  s.content = "id-only";
  s.secret = "0123456789abcdef0123";
  s.last_updated = "2026-11-25T10:00:00Z";
  ASSERT_TRUE(a_->put_subscription(s, 0));
  at_once(4, [&](int i) {
    for (int n = 0; n < 5; ++n) {
      auto r = request("c" + std::to_string(i) + "-" + std::to_string(n), 1);
      r.notices.push_back({"ehv-durham", "ref-" + std::to_string(i), n + 1, "accepted", "{}"});
      auto done = commit_now(gateway(i), own_keys(std::move(r)));
      EXPECT_TRUE(done) << done.error().message;
    }
  });
  auto queued = b_->queued_notifications("s1", 100);
  ASSERT_TRUE(queued) << queued.error().message;
  ASSERT_EQ(queued->size(), 20u);
  std::vector<std::int64_t> numbers;
  for (const auto& n : *queued)
    numbers.push_back(n.event_number);
  std::sort(numbers.begin(), numbers.end());
  for (std::size_t i = 0; i < numbers.size(); ++i)
    EXPECT_EQ(numbers[i], static_cast<std::int64_t>(i + 1));
  EXPECT_EQ((*a_->subscription("s1"))->events_since_start, 20);
}

// Notices for two agencies, named in one order on one gateway and the other order on the other:
// both gateways' commits all go through.
TEST_P(SeveralGatewaysTest, NotificationsForTwoAgenciesInEitherOrderAllCommit) {
  for (const auto* agency : {"ehv-durham", "wic-east"}) {
    pipeline::SubscriptionRow s;
    s.id = std::string("s-") + agency;
    s.agency_id = agency;
    s.client_id = agency;
    s.status = "active";
    s.endpoint = "https://agency.example.org/hook";
    s.content = "id-only";
    s.secret = "0123456789abcdef0123";
    s.last_updated = "2026-11-25T10:00:00Z";
    ASSERT_TRUE(a_->put_subscription(s, 0));
  }
  std::atomic<int> failed{0};
  at_once(8, [&](int i) {
    for (int n = 0; n < 10; ++n) {
      auto r = own_keys(request("c" + std::to_string(i) + "-" + std::to_string(n), 1));
      const char* first = i % 2 == 0 ? "ehv-durham" : "wic-east";
      const char* second = i % 2 == 0 ? "wic-east" : "ehv-durham";
      r.notices.push_back({first, "ref-" + std::to_string(i), n + 1, "accepted", "{}"});
      r.notices.push_back({second, "ref-" + std::to_string(i), n + 1, "accepted", "{}"});
      auto done = commit_now(gateway(i), std::move(r));
      if (!done) {
        ++failed;
        ADD_FAILURE() << done.error().message;
      }
    }
  });
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(*b_->queued_notification_count(), 160);
}

TEST_P(SeveralGatewaysTest, RetentionOnBothAtOncePrunesOnce) {
  for (auto* g : {a_.get(), b_.get()})
    g->configure_audit({"gw-test", "sdoh.audit-anchors.v1", std::chrono::hours(24)});
  for (int i = 0; i < 6; ++i) {
    std::vector<audit::AuditRecord> records{
        audit::AuditRecord(audit::AuditKind::kRead, {"agency", "agency", "127.0.0.1:5000"},
                           {audit::AuditEntity::resource("Task/t" + std::to_string(i))})};
    ASSERT_TRUE(test::run(gateway(i).record(std::move(records))));
  }
  advance(std::chrono::hours(25));
  std::vector<std::atomic<bool>> ok(2);
  at_once(2, [&](int i) { ok[i] = static_cast<bool>(gateway(i).prune_now()); });
  EXPECT_TRUE(ok[0] && ok[1]);
  // The head stays; the records before it went once, with one prune anchor.
  auto report = verify_postgres_audit_chain(*database_url(), "", {}, "gw-test");
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->records, 1);
  auto db = raw_database();
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_EQ(db->text("SELECT count(*) FROM audit_prunes"), "1");
  EXPECT_EQ(db->text("SELECT count(*) FROM outbox WHERE topic = 'sdoh.audit-anchors.v1'"), "1");
}

}  // namespace
}  // namespace sdoh::store

// The database restarted under a running gateway: what was committed is still there, writes and
// reads fail while it is away (never wait forever) and work again once it is back, without a
// restart of the gateway.
namespace sdoh::store {
namespace {

using namespace store_test_support;

class PostgresRestartTest : public StoreTest {};
INSTANTIATE_TEST_SUITE_P(Postgres, PostgresRestartTest, ::testing::Values(sql::Engine::kPostgres),
                         engine_name);

TEST_P(PostgresRestartTest, TheStoreRecoversFromADatabaseRestart) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  auto cluster = test::PgCluster::shared();
  ASSERT_TRUE(cluster) << cluster.error().message;
  ASSERT_TRUE((*cluster)->restart());
  // Every connection the store had is gone: a write or read may fail once, as unavailable, and
  // then the next one works on a new session.
  auto commit_soon = [&](const std::string& key) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto r = commit_now(*store, request(key, 1));
      if (r) return r;
      EXPECT_EQ(r.error().kind, ErrorKind::kUnavailable) << r.error().message;
    }
    return commit_now(*store, request(key, 1));
  };
  auto after = commit_soon("k2");
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->status, pipeline::CommitStatus::kCommitted);
  EXPECT_TRUE(store->health().ok) << store->health().detail;
  bool read = false;
  for (int attempt = 0; attempt < 10 && !read; ++attempt) {
    auto t = store->read_resource("Task", "t1");
    auto pending = store->pending_events(0, 10);
    if (!t) {
      EXPECT_EQ(t.error().kind, ErrorKind::kUnavailable) << t.error().message;
    } else if (!pending) {
      EXPECT_EQ(pending.error().kind, ErrorKind::kUnavailable) << pending.error().message;
    } else {
      read = true;
      EXPECT_TRUE(t->has_value());
      EXPECT_EQ(pending->size(), 2u);
    }
  }
  EXPECT_TRUE(read) << "the readers did not come back";
  // Nothing committed before the restart was lost; a resend is still recognised.
  EXPECT_EQ(
      commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv")))->status,
      pipeline::CommitStatus::kDuplicate);
}

}  // namespace
}  // namespace sdoh::store
