#include "gateway/runtime/descriptor_limit.hpp"

#include <sys/resource.h>

#include <gtest/gtest.h>

namespace sdoh::runtime {
namespace {

rlimit current() {
  rlimit limit{};
  EXPECT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  return limit;
}

// The process starts with a soft limit below its hard one (a shell's ulimit -n 1024): the
// gateway raises the soft limit to the hard one and reports where it started.
TEST(DescriptorLimit, TheSoftLimitIsRaisedToTheHardLimit) {
  const auto original = current();
  if (original.rlim_max < 512) GTEST_FAIL() << "hard RLIMIT_NOFILE below 512 on this machine";
  rlimit lowered = original;
  lowered.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);

  const auto limit = raise_descriptor_limit();
  const auto after = current();
  setrlimit(RLIMIT_NOFILE, &original);  // other tests in this binary see what they started with

  ASSERT_TRUE(limit) << limit.error().message;
  EXPECT_EQ(limit->before, 256u);
  EXPECT_EQ(limit->soft, original.rlim_max);
  EXPECT_EQ(limit->hard, original.rlim_max);
  EXPECT_EQ(after.rlim_cur, original.rlim_max);
}

TEST(DescriptorLimit, EveryConfiguredConnectionPlusAReserveIsWanted) {
  config::GatewayConfig cfg;
  cfg.http.max_connections = 1000;
  cfg.mllp.max_connections = 10000;
  EXPECT_EQ(descriptors_wanted(cfg), 11256u);
}

}  // namespace
}  // namespace sdoh::runtime
