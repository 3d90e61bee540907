#include "gateway/runtime/kafka_provision.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::runtime {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Use = KafkaTopic::Use;

const std::vector<KafkaTopic> kTopics = {
    {"sdoh.screening.v1", Use::kPublished, ""},
    {"sdoh.referral.v1", Use::kPublished, ""},
    {"sdoh.referral-updates.v1", Use::kSharedUpdates, ""},
    {"sdoh.referral.ei-durham", Use::kPublished, "ei-durham"},
    {"sdoh.referral-updates.ei-durham", Use::kAgencyUpdates, "ei-durham"},
    {"sdoh.referral-updates.wic-durham", Use::kAgencyUpdates, "wic-durham"},
};

config::GatewayConfig production_like() {
  config::GatewayConfig cfg;
  cfg.gateway_id = "gw-test";
  cfg.kafka.brokers = "kafka-1:9092,kafka-2:9092";
  cfg.kafka.topic_defaults = {6, 3, 2, std::chrono::hours(72)};
  return cfg;
}

TEST(KafkaProvision, NewTopicsCarryTheTopicDefaults) {
  const auto specs = new_topics(production_like().kafka, kTopics);
  ASSERT_EQ(specs.size(), 6u);
  const kafka::NewTopic expected{"sdoh.referral-updates.ei-durham",
                                 6,
                                 3,
                                 {{"min.insync.replicas", "2"}, {"retention.ms", "259200000"}}};
  EXPECT_EQ(specs[4], expected);
  EXPECT_EQ(specs[0].name, "sdoh.screening.v1");
  EXPECT_EQ(specs[5].name, "sdoh.referral-updates.wic-durham");
}

TEST(KafkaProvision, ARetentionOfZeroKeepsForever) {
  auto cfg = production_like();
  cfg.kafka.topic_defaults.retention = std::chrono::milliseconds(0);
  const auto specs = new_topics(cfg.kafka, kTopics);
  EXPECT_EQ(specs[0].configs[1], (std::pair<std::string, std::string>{"retention.ms", "-1"}));
}

TEST(KafkaProvision, ScriptCreatesEveryTopicWithItsSettings) {
  const auto script = provision_script(production_like(), kTopics, "gw.yaml", false);
  EXPECT_THAT(script, HasSubstr("bootstrap=\"${KAFKA_BOOTSTRAP:-kafka-1:9092,kafka-2:9092}\"\n"));
  EXPECT_THAT(script,
              HasSubstr("\"$bin/kafka-topics.sh\" \"$@\" --create --if-not-exists --topic "
                        "sdoh.referral.ei-durham --partitions 6 --replication-factor 3 --config "
                        "min.insync.replicas=2 --config retention.ms=259200000\n"));
  EXPECT_THAT(script, HasSubstr("# sdoh.referral-updates.wic-durham: wic-durham writes its "
                                "referral updates to it\n"));
}

TEST(KafkaProvision, TheGatewayWritesAndReadsWhatItPublishesAndReadsTheAgenciesUpdates) {
  auto cfg = production_like();
  cfg.kafka.principal = "User:gw";
  const auto script = provision_script(cfg, kTopics, "gw.yaml", false);
  EXPECT_THAT(script,
              HasSubstr("--add --allow-principal User:gw --operation Write --operation Read "
                        "--operation Describe --topic sdoh.referral.ei-durham\n"));
  EXPECT_THAT(script, HasSubstr("--add --allow-principal User:gw --operation Read --operation "
                                "Describe --topic sdoh.referral-updates.wic-durham\n"));
  EXPECT_THAT(script, HasSubstr("--add --allow-principal User:gw --operation Read --operation "
                                "Describe --group sdoh-gateway\n"));
}

TEST(KafkaProvision, EachAgencyWritesOnlyItsUpdateTopicAndReadsItsReferralTopic) {
  auto cfg = production_like();
  config::PartyConfig ei;
  ei.id = "ei-durham";
  ei.kafka_principal = "User:CN=ei-durham";
  cfg.parties.push_back(ei);
  const auto script = provision_script(cfg, kTopics, "gw.yaml", false);
  EXPECT_THAT(script, HasSubstr("--allow-principal User:CN=ei-durham --operation Write --operation "
                                "Describe --topic sdoh.referral-updates.ei-durham\n"));
  EXPECT_THAT(script, HasSubstr("--allow-principal User:CN=ei-durham --operation Read --operation "
                                "Describe --topic sdoh.referral.ei-durham\n"));
  EXPECT_THAT(script, Not(HasSubstr("User:CN=ei-durham --operation Read --operation Describe "
                                    "--topic sdoh.referral.v1")));
  // Without a principal in parties: User:<id>; without a topic of its own: the shared one.
  EXPECT_THAT(script, HasSubstr("--allow-principal User:wic-durham --operation Write --operation "
                                "Describe --topic sdoh.referral-updates.wic-durham\n"));
  EXPECT_THAT(script, HasSubstr("--allow-principal User:wic-durham --operation Read --operation "
                                "Describe --topic sdoh.referral.v1\n"));
  EXPECT_THAT(script, HasSubstr("--allow-principal User:wic-durham --operation Read "
                                "--resource-pattern-type prefixed --group wic-durham\n"));
  EXPECT_THAT(script, Not(HasSubstr("--operation Write --operation Describe --topic "
                                    "sdoh.referral-updates.v1")));
}

TEST(KafkaProvision, TopicsOnlyPrintsNoAcls) {
  const auto script = provision_script(production_like(), kTopics, "gw.yaml", true);
  EXPECT_THAT(script, HasSubstr("kafka-topics.sh"));
  EXPECT_THAT(script, Not(HasSubstr("kafka-acls.sh\" \"$@\"")));
}

}  // namespace
}  // namespace sdoh::runtime
