// The store's FHIR Subscriptions (on every engine): notifications queued with the referral change
// that causes them, only for the owning agency, numbered and kept in order; what the sender
// records; and the migration that brings them to an older store.
#include "tests/unit/adapters/store/store_fixture.hpp"

namespace sdoh::store {
namespace {

using namespace store_test_support;

pipeline::SubscriptionRow subscription(std::string id, std::string agency) {
  pipeline::SubscriptionRow s;
  s.id = std::move(id);
  s.agency_id = std::move(agency);
  s.client_id = s.agency_id;
  s.status = "active";
  s.endpoint = "https://agency.example.org/hook";
  s.content = "full-resource";
  s.secret = "0123456789abcdef0123";
  s.reason = "referrals";
  s.last_updated = "2026-11-25T10:00:00Z";
  return s;
}

pipeline::SubscriptionNotice notice(std::string agency, std::string referral, int sequence,
                                    std::string status) {
  return {std::move(agency), std::move(referral), sequence, std::move(status),
          R"({"resourceType":"Task","id":"x"})"};
}

class StoreSubscriptionsTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    auto opened = open_store(cfg_, nullptr, clock());
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }
  std::unique_ptr<SqlStore> store_;
};
SDOH_STORE_TEST_ON_EVERY_ENGINE(StoreSubscriptionsTest);

TEST_P(StoreSubscriptionsTest, ANoticeIsQueuedForEverySubscriptionOfTheOwningAgencyOnly) {
  ASSERT_TRUE(store_->put_subscription(subscription("s-ehv-1", "ehv-durham"), 0));
  ASSERT_TRUE(store_->put_subscription(subscription("s-ehv-2", "ehv-durham"), 0));
  ASSERT_TRUE(store_->put_subscription(subscription("s-wic", "wic-east"), 0));
  auto r = request("c1", 1);
  r.notices.push_back(notice("ehv-durham", "ref-1", 2, "accepted"));
  ASSERT_TRUE(commit_now(*store_, std::move(r)));

  for (const char* id : {"s-ehv-1", "s-ehv-2"}) {
    auto q = store_->queued_notifications(id, 10);
    ASSERT_TRUE(q);
    ASSERT_EQ(q->size(), 1u) << id;
    EXPECT_EQ((*q)[0].referral_id, "ref-1");
    EXPECT_EQ((*q)[0].sequence, 2);
    EXPECT_EQ((*q)[0].status, "accepted");
    EXPECT_EQ((*q)[0].event_number, 1);
    EXPECT_EQ((*q)[0].task_json, R"({"resourceType":"Task","id":"x"})");
  }
  auto other = store_->queued_notifications("s-wic", 10);
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->empty());
  EXPECT_EQ(*store_->queued_notification_count(), 2);
}

TEST_P(StoreSubscriptionsTest, NotificationsAreNumberedAndKeptInCommitOrder) {
  ASSERT_TRUE(store_->put_subscription(subscription("s1", "ehv-durham"), 0));
  for (int i = 0; i < 3; ++i) {
    auto r = request("c" + std::to_string(i), 1);
    r.notices.push_back(notice("ehv-durham", "ref-1", i + 1, i == 0 ? "requested" : "received"));
    ASSERT_TRUE(commit_now(*store_, std::move(r)));
  }
  auto q = store_->queued_notifications("s1", 10);
  ASSERT_TRUE(q);
  ASSERT_EQ(q->size(), 3u);
  EXPECT_EQ((*q)[0].event_number, 1);
  EXPECT_EQ((*q)[1].event_number, 2);
  EXPECT_EQ((*q)[2].event_number, 3);
  EXPECT_EQ((*q)[0].sequence, 1);
  EXPECT_EQ((*q)[2].sequence, 3);
  EXPECT_LT((*q)[0].seq, (*q)[1].seq);
  EXPECT_EQ((*store_->subscription("s1"))->events_since_start, 3);
}

TEST_P(StoreSubscriptionsTest, AResendQueuesNothingMore) {
  ASSERT_TRUE(store_->put_subscription(subscription("s1", "ehv-durham"), 0));
  auto r = request("same", 1);
  r.notices.push_back(notice("ehv-durham", "ref-1", 2, "accepted"));
  ASSERT_TRUE(commit_now(*store_, r));
  auto again = commit_now(*store_, r);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(store_->queued_notifications("s1", 10)->size(), 1u);
}

TEST_P(StoreSubscriptionsTest, ErrorAndOffSubscriptionsKeepTheirNotifications) {
  auto s = subscription("s1", "ehv-durham");
  s.status = "error";
  s.error = "10 deliveries failed in a row";
  ASSERT_TRUE(store_->put_subscription(s, 0));
  auto r = request("c1", 1);
  r.notices.push_back(notice("ehv-durham", "ref-1", 2, "accepted"));
  ASSERT_TRUE(commit_now(*store_, std::move(r)));
  EXPECT_EQ(store_->queued_notifications("s1", 10)->size(), 1u);
}

TEST_P(StoreSubscriptionsTest, ADeliveryRemovesWhatTheEndpointTookAndRecordsTheState) {
  ASSERT_TRUE(store_->put_subscription(subscription("s1", "ehv-durham"), 0));
  for (int i = 0; i < 2; ++i) {
    auto r = request("c" + std::to_string(i), 1);
    r.notices.push_back(notice("ehv-durham", "ref-1", i + 2, "accepted"));
    ASSERT_TRUE(commit_now(*store_, std::move(r)));
  }
  auto q = store_->queued_notifications("s1", 10);
  ASSERT_EQ(q->size(), 2u);
  pipeline::DeliveryRecord rec;
  rec.subscription_id = "s1";
  rec.version = 1;
  rec.delivered = {(*q)[0].seq};
  rec.status = "active";
  rec.last_sent_ms = 42;
  ASSERT_TRUE(store_->record_delivery(rec));
  auto left = store_->queued_notifications("s1", 10);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].seq, (*q)[1].seq);
  EXPECT_EQ((*store_->subscription("s1"))->last_sent_ms, 42);

  // A failure recorded against a version the agency has since replaced changes nothing.
  auto updated = subscription("s1", "ehv-durham");
  updated.version = 2;
  updated.status = "requested";
  ASSERT_TRUE(store_->put_subscription(updated, 1));
  pipeline::DeliveryRecord stale;
  stale.subscription_id = "s1";
  stale.version = 1;
  stale.status = "error";
  stale.error = "late";
  ASSERT_TRUE(store_->record_delivery(stale));
  EXPECT_EQ((*store_->subscription("s1"))->status, "requested");
  EXPECT_EQ((*store_->subscription("s1"))->error, "");
}

TEST_P(StoreSubscriptionsTest, AStaleVersionIsAConflictAndDeleteTakesTheQueue) {
  ASSERT_TRUE(store_->put_subscription(subscription("s1", "ehv-durham"), 0));
  auto again = store_->put_subscription(subscription("s1", "ehv-durham"), 0);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, ErrorKind::kConflict);
  auto r = request("c1", 1);
  r.notices.push_back(notice("ehv-durham", "ref-1", 2, "accepted"));
  ASSERT_TRUE(commit_now(*store_, std::move(r)));
  EXPECT_TRUE(*store_->delete_subscription("s1"));
  EXPECT_FALSE(*store_->delete_subscription("s1"));
  EXPECT_EQ(*store_->queued_notification_count(), 0);
  EXPECT_FALSE(*store_->subscription("s1"));
}

TEST_P(StoreSubscriptionsTest, AnAgencysSubscriptionsAreListedById) {
  ASSERT_TRUE(store_->put_subscription(subscription("s-2", "ehv-durham"), 0));
  ASSERT_TRUE(store_->put_subscription(subscription("s-3", "wic-east"), 0));
  ASSERT_TRUE(store_->put_subscription(subscription("s-1", "ehv-durham"), 0));
  auto ehv = store_->subscriptions("ehv-durham");
  ASSERT_TRUE(ehv) << ehv.error().message;
  ASSERT_EQ(ehv->size(), 2u);
  EXPECT_EQ((*ehv)[0].id, "s-1");
  EXPECT_EQ((*ehv)[1].id, "s-2");
  EXPECT_EQ((*ehv)[0].endpoint, "https://agency.example.org/hook");
  EXPECT_EQ((*ehv)[0].secret, "0123456789abcdef0123");
  EXPECT_EQ(store_->subscriptions("")->size(), 3u);
  EXPECT_TRUE(store_->subscriptions("nobody")->empty());
}

TEST_F(SqliteStoreTest, AVersion8StoreMigratesToSubscriptions) {
  std::ifstream in(std::string(SDOH_SOURCE_DIR) + "/tests/data/store-v8.sql");
  std::stringstream sql;
  sql << in.rdbuf();
  std::filesystem::create_directories(dir_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "gateway.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql.str().c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  ASSERT_EQ(pragma("user_version"), "8");

  auto opened = SqlStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  EXPECT_EQ(store.schema_version(), SqlStore::latest_schema_version());
  auto none = store.subscriptions("");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(store.put_subscription(subscription("s1", "ehv-durham"), 0));
  auto r = request("after-upgrade", 1);
  r.notices.push_back(notice("ehv-durham", "30f3bd00d5ce9c0145130f6f25b893e1", 3, "in-progress"));
  ASSERT_TRUE(commit_now(store, std::move(r)));
  EXPECT_EQ(store.queued_notifications("s1", 10)->size(), 1u);
  // The referrals the old store kept are still there.
  auto hl7 = store.find_referral({"30f3bd00d5ce9c0145130f6f25b893e1", "", "", ""});
  ASSERT_TRUE(hl7 && *hl7);
  EXPECT_EQ((*hl7)->status, "accepted");
}

}  // namespace
}  // namespace sdoh::store
