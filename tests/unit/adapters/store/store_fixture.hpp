#pragma once
// The SQLite store tests' fixture (a temporary directory, an injected clock) and helpers that
// build commits.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sqlite3.h>
#include <sstream>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "adapters/store/sqlite_store.hpp"

namespace sdoh::store::store_test_support {

namespace asio = boost::asio;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sdoh_store_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string pragma(const std::string& name) {
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "gateway.db").c_str(), &db);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, ("PRAGMA " + name).c_str(), -1, &stmt, nullptr);
    std::string value;
    if (sqlite3_step(stmt) == SQLITE_ROW)
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
  }

  /// The store's clock in tests: moves only when a test advances it.
  StoreClock clock() {
    return [this] { return now_ms_.load(); };
  }
  void advance(std::chrono::milliseconds by) { now_ms_ += by.count(); }

  std::filesystem::path dir_;
  config::StoreConfig cfg_;
  std::atomic<std::int64_t> now_ms_{1'795'000'000'000};  // 2026-11-18
};

inline pipeline::CommitRequest request(const std::string& control_id, int events = 2) {
  pipeline::CommitRequest r;
  r.inbound = {"hl7v2", "EHR^PEDS_A",           control_id,      "ORU^R01",
               "CA",    "MSA|CA|" + control_id, "MSH|...payload"};
  for (int i = 0; i < events; ++i) {
    r.events.push_back({control_id + "-ev" + std::to_string(i), "org.sdoh.screening.v1",
                        "sdoh.screening.v1", "patient-key", "{\"n\":" + std::to_string(i) + "}"});
  }
  return r;
}

// A referral state from its first nine fields (the rest default).
inline pipeline::ReferralState row(std::string id, std::string system, std::string value,
                                   std::string control_id, std::string agency, std::string category,
                                   std::string status, std::string business_status, int sequence) {
  pipeline::ReferralState r;
  r.referral_id = std::move(id);
  r.clinic_number_system = std::move(system);
  r.clinic_number_value = std::move(value);
  r.source_control_id = std::move(control_id);
  r.agency_id = std::move(agency);
  r.category = std::move(category);
  r.status = std::move(status);
  r.business_status = std::move(business_status);
  r.sequence = sequence;
  return r;
}

inline Result<pipeline::CommitOutcome> commit_now(SqliteStore& store, pipeline::CommitRequest r) {
  asio::io_context ioc;
  auto fut = asio::co_spawn(ioc, store.commit(std::move(r)), asio::use_future);
  ioc.run();
  return fut.get();
}

inline pipeline::ResourceWrite task_write(const std::string& id, std::int64_t version,
                                          const std::string& status, const std::string& owner) {
  pipeline::ResourceWrite w;
  w.type = "Task";
  w.id = id;
  w.version = version;
  w.expected_version = version - 1;
  w.last_updated = "2026-11-25T10:00:0" + std::to_string(version) + "Z";
  w.json = R"({"resourceType":"Task","id":")" + id + R"(","status":")" + status + "\"}";
  w.source = "clinic-a";
  w.identifiers = {{"urn:clinic", "REF-" + id}};
  w.search = {{"status", status}, {"owner", owner}, {"_id", id}};
  return w;
}

inline pipeline::CommitRequest with_resource(const std::string& key, pipeline::ResourceWrite w) {
  auto r = request(key, 1);
  r.inbound.protocol = "fhir";
  r.resources.push_back(std::move(w));
  return r;
}

}  // namespace sdoh::store::store_test_support
