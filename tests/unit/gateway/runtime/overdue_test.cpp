// gateway/runtime/overdue.cpp over a real SQLite store: the lifecycle's rule decides, the alert is
// raised once, a referral within its SLA or held by the gateway is left alone.
#include "gateway/runtime/overdue.hpp"

#include <filesystem>
#include <string>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "adapters/store/sql_store.hpp"
#include "tests/unit/support/run.hpp"
namespace sdoh::runtime {
namespace {

using test::run;

namespace asio = boost::asio;
using namespace std::chrono_literals;

class OverdueCheckTest : public ::testing::Test {
 protected:
  OverdueCheckTest() {
    dir_ = std::filesystem::temp_directory_path() /
           ("sdoh-overdue-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    // The store records every change a minute before the check's clock reads, so that a
    // referral made now has waited a minute when the check runs, however fast the test is.
    store_ =
        std::move(*store::SqlStore::open(dir_ / "gateway.db", config::StoreConfig{}, nullptr, [] {
          return std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count() -
                 60'000;
        }));
  }
  ~OverdueCheckTest() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A referral as the ingest commits it: its Task (version 1) and its state.
  void refer(const std::string& id, const std::string& agency, const std::string& business) {
    pipeline::CommitRequest r;
    r.inbound = {"fhir", "clinic-a", "k-" + id, "Bundle", "200", "{}", ""};
    pipeline::ResourceWrite task;
    task.type = "Task";
    task.id = id;
    task.json = R"({"resourceType":"Task","id":")" + id +
                R"(","status":"requested","intent":"order","owner":{"reference":"Organization/)" +
                agency + R"("}})";
    task.source = "clinic-a";
    r.resources.push_back(task);
    pipeline::ReferralState state;
    state.referral_id = id;
    state.agency_id = agency;
    state.category = "food-insecurity";
    state.status = "requested";
    state.business_status = business;
    r.referrals.push_back(state);
    ASSERT_TRUE(run(store_->commit(std::move(r))));
  }

  OverdueCheck check(std::chrono::milliseconds sla) {
    return OverdueCheck(
        *store_, *store_, *store_, "gw-test", config::KafkaTopics{},
        [sla](std::string_view agency) { return agency == "slow-agency" ? 1000h : sla; }, sla,
        registry_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::SqlStore> store_;
  metrics::Registry registry_;
};

TEST_F(OverdueCheckTest, APastDueReferralGetsOneAlertAndItsTaskShowsIt) {
  refer("r1", "ehv-durham", "");
  auto overdue = check(0ms);
  EXPECT_EQ(run(overdue.run_once()), 1);
  auto state = store_->find_referral({"r1", "", "", ""});
  ASSERT_TRUE(state && *state);
  EXPECT_EQ((*state)->status, "requested");
  EXPECT_EQ((*state)->business_status, "overdue");
  auto task = store_->read_resource("Task", "r1");
  ASSERT_TRUE(task && *task);
  EXPECT_EQ((*task)->version, 2);
  EXPECT_NE((*task)->json.find("overdue"), std::string::npos);
  // Raised once: later passes find nothing more to do.
  EXPECT_EQ(run(overdue.run_once()), 0);
  EXPECT_EQ(run(overdue.run_once()), 0);
  EXPECT_NE(registry_.render().find("sdoh_referrals_overdue_checks_total 3"), std::string::npos);
  EXPECT_NE(registry_.render().find("sdoh_referrals_overdue_total{agency=\"ehv-durham\"} 1"),
            std::string::npos);
}

TEST_F(OverdueCheckTest, WithinItsAgencysSlaOrHeldByTheGatewayNothingIsRaised) {
  refer("within", "slow-agency", "");
  refer("held", "ehv-durham", "no-route");
  refer("consent", "ehv-durham", "awaiting-consent");
  auto overdue = check(0ms);
  EXPECT_EQ(run(overdue.run_once()), 0);
  for (const auto* id : {"within", "held", "consent"})
    EXPECT_EQ((*store_->read_resource("Task", id))->version, 1) << id;
}

}  // namespace
}  // namespace sdoh::runtime
