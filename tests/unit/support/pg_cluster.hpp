#pragma once
// A throwaway PostgreSQL cluster for the tests of one test binary: initdb in a temporary
// directory, started once (at first use) on a free port of 127.0.0.1 with trust authentication,
// fsync on and max_connections=200; stopped and removed when the binary exits. As root (CI) the
// server tools run as `nobody`, which owns the directory (initdb refuses root); otherwise as the
// current user. The PostgreSQL server binaries come from /usr/lib/postgresql/<version>/bin (Debian
// `postgresql`, installed by tools/setup); without them every test that needs the cluster fails
// and says so.
//
// Tests use PgDatabaseTest: each test gets a database of its own on the shared cluster.
#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "gateway/core/result.hpp"

namespace sdoh::test {

class PgCluster {
 public:
  /// The binary's cluster, started at the first call (it blocks until the server accepts
  /// connections). A failure is returned by this and every later call.
  static Result<PgCluster*> shared();

  /// `postgresql://postgres@127.0.0.1:<port>/<database>`
  std::string url(std::string_view database = "postgres") const;
  int port() const { return port_; }
  /// A new, empty database (an existing one of that name is dropped first); its url. The name
  /// is made a valid identifier: lower case, other characters as '_', at most 63 bytes.
  Result<std::string> create_database(std::string_view name);
  /// pg_ctl restart -m fast: every open connection is closed by the server.
  Result<void> restart();

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;
  ~PgCluster();

 private:
  PgCluster() = default;
  Result<void> start();
  Result<void> pg_ctl(std::initializer_list<std::string> args);

  std::string bindir_;
  std::string dir_;  // the cluster's temporary directory: data/, server.log, the socket
  int port_ = 0;
  bool running_ = false;
};

/// A test with a database of its own (named after the test) on the shared cluster: url_.
class PgDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = PgCluster::shared();
    ASSERT_TRUE(cluster) << cluster.error().message;
    cluster_ = *cluster;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    auto url = cluster_->create_database(std::string(info->test_suite_name()) + "_" + info->name());
    ASSERT_TRUE(url) << url.error().message;
    url_ = *url;
  }

  PgCluster* cluster_ = nullptr;
  std::string url_;
};

}  // namespace sdoh::test
