#include "adapters/kafka/admin.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapters/kafka/embedded_broker.hpp"

namespace sdoh::kafka {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

TEST(CreateTopics, NothingToCreateIsNoRequest) {
  auto created = create_topics({}, "127.0.0.1:1", {}, 1s);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_TRUE(created->empty());
}

TEST(CreateTopics, ASpecLibrdkafkaRefusesIsNamedBeforeConnecting) {
  auto created = create_topics({}, "127.0.0.1:1", {{"sdoh.screening.v1", -5, 3, {}}}, 1s);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(created.error().where.expression, "kafka.provision_topics");
  EXPECT_THAT(created.error().message, HasSubstr("topic sdoh.screening.v1: "));
}

// librdkafka's mock broker has no CreateTopics: the request fails, and the failure names the
// setting, the cluster and librdkafka's reason, instead of the gateway starting with topics
// missing.
TEST(CreateTopics, AnAdminApiErrorIsReportedNamingTheRequest) {
  auto broker = EmbeddedBroker::start(1, {}, 1);
  ASSERT_TRUE(broker) << broker.error().message;
  config::KafkaConfig cfg;
  auto created =
      create_topics(cfg, (*broker)->bootstrap_servers(),
                    {{"sdoh.referral-updates.ei-durham", 3, 1, {{"retention.ms", "-1"}}}}, 1s);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(created.error().where.expression, "kafka.provision_topics");
  // The mock names no controller, so the request cannot be sent and times out.
  EXPECT_THAT(created.error().message,
              HasSubstr("CreateTopics through " + (*broker)->bootstrap_servers() +
                        " failed: _TIMED_OUT: Failed while waiting for controller"));
}

}  // namespace
}  // namespace sdoh::kafka
