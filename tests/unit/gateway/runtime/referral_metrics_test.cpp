// The referral measures on /metrics (gateway/runtime/referral_metrics.cpp) over a real SQLite
// store: current after each commit, the same after a restart, small groups omitted.
#include "gateway/runtime/referral_metrics.hpp"

#include <atomic>
#include <filesystem>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "adapters/store/sql_store.hpp"
#include "tests/unit/support/run.hpp"

namespace sdoh::runtime {
namespace {

using namespace std::chrono_literals;

class ReferralMetricsTest : public ::testing::Test {
 protected:
  ReferralMetricsTest() {
    dir_ = std::filesystem::temp_directory_path() /
           ("sdoh-referral-metrics-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    open();
  }
  ~ReferralMetricsTest() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open() {
    store_.reset();
    store_ = std::move(*store::SqlStore::open(dir_ / "gateway.db", config::StoreConfig{}, nullptr,
                                              [this] { return now_.load(); }));
  }
  ReferralMetrics::Settings settings() {
    return {std::chrono::hours(24 * 395), 11, [this] { return now_.load(); }};
  }

  // One referral state change, committed as the referral service commits it.
  void change(const std::string& id, const std::string& status, int sequence,
              const std::string& race = "2106-3") {
    pipeline::CommitRequest r;
    r.inbound = {"fhir", "clinic-a", "k-" + id + "-" + std::to_string(sequence), "Task", "200",
                 "{}",   ""};
    pipeline::ReferralState s;
    s.referral_id = id;
    s.agency_id = "ehv-durham";
    s.category = "food-insecurity";
    s.status = status;
    s.sequence = sequence;
    s.race = race;
    r.referrals.push_back(s);
    ASSERT_TRUE(test::run(store_->commit(std::move(r))));
  }
  // What an observed commit tells the measures.
  void committed(ReferralMetrics& m) {
    mapping::StatusEvent e;
    m.committed({}, {e}, false);
  }
  static std::string series(const std::string& text, const std::string& prefix) {
    std::string out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      if (line.rfind(prefix, 0) == 0) out += line + "\n";
    return out;
  }

  std::filesystem::path dir_;
  std::atomic<std::int64_t> now_{1'795'000'000'000};
  std::unique_ptr<store::SqlStore> store_;
};

TEST_F(ReferralMetricsTest, AReferralCountsFromTheFirstReadAfterItsCommit) {
  metrics::Registry registry;
  ReferralMetrics m(*store_, registry, settings());
  m.update();
  EXPECT_EQ(series(registry.render(), "sdoh_referrals{"), "");
  change("r1", "requested", 1);
  committed(m);
  m.update();
  EXPECT_EQ(
      series(registry.render(), "sdoh_referrals{"),
      "sdoh_referrals{status=\"requested\",agency=\"ehv-durham\",category=\"food-insecurity\"}"
      " 1\n");
}

TEST_F(ReferralMetricsTest, HelpStatesTheWindow) {
  metrics::Registry registry;
  ReferralMetrics m(*store_, registry, settings());
  m.update();
  const auto text = registry.render();
  for (const char* name : {"sdoh_referrals ", "sdoh_referrals_held ", "sdoh_referrals_by_group ",
                           "sdoh_referrals_closed ", "sdoh_referral_time_to_accept_seconds ",
                           "sdoh_referral_time_to_complete_seconds "}) {
    const auto help = series(text, std::string("# HELP ") + name);
    EXPECT_NE(help.find("the last 395 days (measures.window)"), std::string::npos) << help;
  }
}

TEST_F(ReferralMetricsTest, HistogramsAreTimedFromReleaseAndSurviveARestart) {
  std::string before;
  {
    metrics::Registry registry;
    ReferralMetrics m(*store_, registry, settings());
    for (int i = 0; i < 3; ++i) {
      const auto id = "r" + std::to_string(i);
      change(id, "requested", 1);
      now_ += 3'600'000 * (i + 1);  // accepted 1, 2 and 3 hours after release
      change(id, "accepted", 2);
      now_ += 86'400'000;
      change(id, "completed", 3);
    }
    committed(m);
    m.update();
    before = series(registry.render(), "sdoh_referral_time_to_");
  }
  EXPECT_NE(before.find("sdoh_referral_time_to_accept_seconds_count{agency=\"ehv-durham\"} 3\n"),
            std::string::npos)
      << before;
  EXPECT_NE(before.find("sdoh_referral_time_to_accept_seconds_sum{agency=\"ehv-durham\"} 21600\n"),
            std::string::npos)
      << before;
  EXPECT_NE(
      before.find(
          "sdoh_referral_time_to_accept_seconds_bucket{agency=\"ehv-durham\",le=\"3600\"} 1\n"),
      std::string::npos)
      << before;
  open();  // the gateway restarts
  metrics::Registry registry;
  ReferralMetrics m(*store_, registry, settings());
  m.update();
  EXPECT_EQ(series(registry.render(), "sdoh_referral_time_to_"), before);
}

TEST_F(ReferralMetricsTest, GroupsUnderMinCellAreOmitted) {
  metrics::Registry registry;
  ReferralMetrics m(*store_, registry, settings());
  for (int i = 0; i < 11; ++i)
    change("b" + std::to_string(i), "requested", 1, "2054-5");
  for (int i = 0; i < 10; ++i)
    change("a" + std::to_string(i), "requested", 1, "2028-9");
  change("b0", "completed", 2, "2054-5");
  change("a0", "completed", 2, "2028-9");
  committed(m);
  m.update();
  const auto text = registry.render();
  EXPECT_NE(text.find("sdoh_referrals_by_group{dimension=\"race\",group=\"2054-5\"} 11\n"),
            std::string::npos);
  EXPECT_NE(text.find("sdoh_referrals_closed{outcome=\"completed\",dimension=\"race\",group="
                      "\"2054-5\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(text.find("2028-9"), std::string::npos) << text;
  // 21 referrals of unknown ethnicity: a group big enough to show.
  EXPECT_NE(text.find("sdoh_referrals_by_group{dimension=\"ethnicity\",group=\"unknown\"} 21\n"),
            std::string::npos);
}

TEST_F(ReferralMetricsTest, CachedFiguresWaitForACommitThatChangesAReferral) {
  metrics::Registry registry;
  ReferralMetrics m(*store_, registry, settings());
  m.update();
  change("r1", "requested", 1);  // written, but no commit was observed yet
  m.update();
  EXPECT_EQ(series(registry.render(), "sdoh_referrals{"), "");
  committed(m);
  m.update();
  EXPECT_NE(series(registry.render(), "sdoh_referrals{"), "");
}

}  // namespace
}  // namespace sdoh::runtime
