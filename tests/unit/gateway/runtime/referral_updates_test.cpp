// gateway/runtime/referral_updates.cpp: an agency's update record from Kafka, over a real SQLite
// store. Hostile records are dead-lettered (so their offsets are committed), never a crash.
#include "gateway/runtime/referral_updates.hpp"

#include <filesystem>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "adapters/store/sql_store.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::runtime {
namespace {

class ReferralUpdatesTest : public ::testing::Test {
 protected:
  ReferralUpdatesTest() {
    dir_ = std::filesystem::temp_directory_path() /
           ("sdoh-updates-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = store::SqlStore::open(dir_ / "gateway.db", config::StoreConfig{});
    EXPECT_TRUE(store);
    store_ = std::move(*store);
    catalog_ = test::shipped_catalog();
    updates_ = std::make_unique<ReferralUpdates>(
        *store_, *store_, *store_, store_threads_, *catalog_, "gw-test", config::KafkaTopics{},
        std::map<std::string, std::string>{{"sdoh.referral-updates.wic-durham", "wic-durham"}});
  }
  ~ReferralUpdatesTest() override {
    updates_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  kafka::UpdateDisposition handle(std::string value, std::int64_t offset,
                                  std::string topic = "sdoh.referral-updates.v1") {
    kafka::UpdateRecord r;
    r.topic = std::move(topic);
    r.partition = 0;
    r.offset = offset;
    r.value = std::move(value);
    return updates_->handle(r);
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::SqlStore> store_;
  std::unique_ptr<events::SchemaCatalog> catalog_;
  pipeline::StoreExecutor store_threads_{1};
  std::unique_ptr<ReferralUpdates> updates_;
};

TEST_F(ReferralUpdatesTest, HostileRecordsAreDeadLetteredAtStageParse) {
  const std::vector<std::string> records = {
      std::string(110'000, '['),
      [] {
        std::string s;
        for (int i = 0; i < 150'000; ++i)
          s += "{\"a\":";
        return s;
      }(),
      "{\"specversion\":\"1.0\",\"id\":\"x\",\"id\":\"y\"}",
      "{\"specversion\":\"1.0\",\"id\":\"\xed\xa0\x80\"}",
      std::string("{}\0garbage", 10),
  };
  std::int64_t offset = 0;
  for (const auto& value : records)
    EXPECT_EQ(handle(value, offset++), kafka::UpdateDisposition::kDeadLettered);
  auto dead = store_->dead_letters(10, true);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), records.size());
  for (const auto& d : *dead) {
    EXPECT_EQ(d.stage, "parse");
    EXPECT_NE(d.error_text.find("not valid JSON"), std::string::npos) << d.error_text;
  }
}

TEST_F(ReferralUpdatesTest, ABinaryModeUpdateIsReadAsItsStructuredEvent) {
  // CloudEvents binary mode, as SDKs send it: attributes in ce_* headers, data the value. It is
  // read (and stored, for a replay) as the same event in structured mode: here it is well formed
  // and refused only because the referral is unknown.
  kafka::UpdateRecord r;
  r.topic = "sdoh.referral-updates.v1";
  r.offset = 7;
  r.headers = {{"ce_specversion", "1.0"},
               {"ce_id", "u-binary-1"},
               {"ce_source", "urn:sdoh-agency:ehv-durham"},
               {"ce_type", "org.sdoh.referral.update.v1"},
               {"content-type", "application/json"}};
  r.value = R"({"referralId":"0123456789abcdef0123456789abcdef","status":"accepted",)"
            R"("businessStatus":null,"reason":null,"agency":{"id":"ehv-durham"}})";
  EXPECT_EQ(updates_->handle(r), kafka::UpdateDisposition::kDeadLettered);
  auto dead = store_->dead_letters(10, true);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].stage, "lifecycle");
  // Without reason, the refusal names the property and the rule.
  r.offset = 8;
  r.headers[1].second = "u-binary-2";
  r.value = R"({"referralId":"0123456789abcdef0123456789abcdef","status":"accepted",)"
            R"("businessStatus":null,"agency":{"id":"ehv-durham"}})";
  EXPECT_EQ(updates_->handle(r), kafka::UpdateDisposition::kDeadLettered);
  dead = store_->dead_letters(10, true);
  ASSERT_EQ(dead->size(), 2u);
  bool named = false;
  for (const auto& d : *dead)
    named = named || (d.stage == "validate" &&
                      d.error_text.find("data.reason: required") != std::string::npos);
  EXPECT_TRUE(named);
  // A value that is not JSON in binary mode: stage parse, naming data.
  r.offset = 9;
  r.headers[1].second = "u-binary-3";
  r.value = "accepted";
  EXPECT_EQ(updates_->handle(r), kafka::UpdateDisposition::kDeadLettered);
  dead = store_->dead_letters(10, true);
  ASSERT_EQ(dead->size(), 3u);
}

TEST_F(ReferralUpdatesTest, AWellFormedUpdateForAnUnknownReferralIsALifecycleDeadLetter) {
  const std::string update =
      R"({"specversion":"1.0","id":"u1","source":"urn:agency:wic-east","type":"org.sdoh.referral.update.v1",)"
      R"("datacontenttype":"application/json","dataschema":"urn:sdoh:schema:referral-update:v1",)"
      R"("time":"2026-11-20T10:00:00Z","subject":"nope",)"
      R"("data":{"referralId":"nope","status":"received","agency":{"id":"wic-east"}}})";
  EXPECT_EQ(handle(update, 7), kafka::UpdateDisposition::kDeadLettered);
  auto dead = store_->dead_letters(10, true);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_NE((*dead)[0].stage, "parse");
}

TEST_F(ReferralUpdatesTest, AnAgencysTopicSpeaksForItWhateverThePayloadSays) {
  const std::string update =
      R"({"specversion":"1.0","id":"u2","source":"urn:agency:x","type":"org.sdoh.referral.update.v1",)"
      R"("datacontenttype":"application/json","dataschema":"urn:sdoh:schema:referral-update:v1",)"
      R"("time":"2026-11-20T10:00:00Z","subject":"r1",)"
      R"("data":{"referralId":"r1","status":"received","agency":{"id":"ehv-durham"}}})";
  EXPECT_EQ(handle(update, 3, "sdoh.referral-updates.wic-durham"),
            kafka::UpdateDisposition::kDeadLettered);
  auto dead = store_->dead_letters(10, true);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].stage, "validate");
  EXPECT_EQ((*dead)[0].sender, "agency:wic-durham");
  EXPECT_NE(
      (*dead)[0].error_text.find("came on agency wic-durham's topic but names agency ehv-durham"),
      std::string::npos)
      << (*dead)[0].error_text;
}

}  // namespace
}  // namespace sdoh::runtime
