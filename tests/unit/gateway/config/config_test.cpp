#include "gateway/config/config.hpp"

#include <cstdlib>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::config {
namespace {

using ::testing::HasSubstr;

// A party with a SMART Backend Services client: what production needs for its FHIR API.
const std::string kSmartParty =
    "clinic-a: { kind: clinic, smart_clients: { ehr: { jwks_url: \"https://ehr.example.org/jwks\", "
    "scopes: system/Task.rus } } }";
const std::string kFhirClient =
    "fhir: { base_url: \"https://gw.example.org/fhir\" }\nparties: { " + kSmartParty + " }\n";

ConfigErrors errors_of(const std::string& yaml) {
  auto cfg = parse_config(yaml, "test.yaml");
  EXPECT_FALSE(cfg.has_value()) << "expected the config to be rejected:\n" << yaml;
  return cfg ? ConfigErrors{} : cfg.error();
}

// The single issue of a config with exactly one problem.
ConfigIssue only_issue(const std::string& yaml) {
  auto errors = errors_of(yaml);
  EXPECT_EQ(errors.issues.size(), 1u) << errors.to_string();
  return errors.issues.empty() ? ConfigIssue{} : errors.issues.front();
}

TEST(Config, EmptyDocumentGivesTheDocumentedDefaults) {
  auto cfg = parse_config("");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->mode, "dev");
  EXPECT_EQ(cfg->data_dir, "var");
  EXPECT_EQ(cfg->http.listen.to_string(), "127.0.0.1:8080");
  EXPECT_EQ(cfg->mllp.listen.to_string(), "127.0.0.1:2575");
  EXPECT_TRUE(cfg->embedded_kafka());
  EXPECT_EQ(cfg->kafka.topics.screening, "sdoh.screening.v1");
  EXPECT_EQ(cfg->kafka.topics.referral_status, "sdoh.referral-status.v1");
  EXPECT_EQ(cfg->runtime.drain_timeout, std::chrono::seconds(10));
  EXPECT_EQ(cfg->store_path(), std::filesystem::path("var/gateway.db"));
}

TEST(Config, ContractKeysAreRead) {
  auto cfg = parse_config(R"(
data_dir: /srv/sdoh
http:  { listen: "0.0.0.0:0" }
mllp:  { listen: "[::1]:2576" }
kafka: { brokers: "k1:9092,k2:9092" }
)");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->data_dir, "/srv/sdoh");
  EXPECT_EQ(cfg->http.listen.host, "0.0.0.0");
  EXPECT_EQ(cfg->http.listen.port, 0);
  EXPECT_EQ(cfg->mllp.listen.host, "::1");
  EXPECT_EQ(cfg->mllp.listen.to_string(), "[::1]:2576");
  EXPECT_EQ(cfg->kafka.brokers, "k1:9092,k2:9092");
  EXPECT_FALSE(cfg->embedded_kafka());
}

TEST(Config, KafkaProvisioningKeysHaveTheirDefaults) {
  auto cfg = parse_config("");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->kafka.principal, "User:sdoh-gateway");
  EXPECT_FALSE(cfg->kafka.provision_topics);
  EXPECT_EQ(cfg->kafka.topic_defaults.partitions, 3);
  EXPECT_EQ(cfg->kafka.topic_defaults.replication_factor, 3);
  EXPECT_EQ(cfg->kafka.topic_defaults.min_insync_replicas, 2);
  EXPECT_EQ(cfg->kafka.topic_defaults.retention, std::chrono::hours(24 * 7));
  EXPECT_EQ(cfg->routing_file(), std::filesystem::path("schemas/routing/routing.json"));
}

TEST(Config, KafkaProvisioningKeysAreRead) {
  auto cfg = parse_config(R"(
kafka:
  brokers: "k1:9092"
  principal: "User:gw-prod"
  provision_topics: true
  topic_defaults: { partitions: 12, replication_factor: 5, min_insync_replicas: 3, retention: 30d }
referrals: { routing_file: /etc/sdoh-gateway/routing.json }
parties: { ei-durham: { kafka_principal: "User:CN=ei-durham,O=Durham" } }
)");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->kafka.principal, "User:gw-prod");
  EXPECT_TRUE(cfg->kafka.provision_topics);
  EXPECT_EQ(cfg->kafka.topic_defaults.partitions, 12);
  EXPECT_EQ(cfg->kafka.topic_defaults.replication_factor, 5);
  EXPECT_EQ(cfg->kafka.topic_defaults.min_insync_replicas, 3);
  EXPECT_EQ(cfg->kafka.topic_defaults.retention, std::chrono::hours(24 * 30));
  EXPECT_EQ(cfg->routing_file(), std::filesystem::path("/etc/sdoh-gateway/routing.json"));
  ASSERT_EQ(cfg->parties.size(), 1u);
  EXPECT_EQ(cfg->parties[0].kafka_principal, "User:CN=ei-durham,O=Durham");
}

TEST(Config, MinInsyncReplicasAboveTheReplicationFactorIsRefused) {
  auto issue =
      only_issue("kafka: { topic_defaults: { replication_factor: 1, min_insync_replicas: 2 } }\n");
  EXPECT_EQ(issue.path, "kafka.topic_defaults.min_insync_replicas");
  EXPECT_THAT(issue.message, HasSubstr("2 is above replication_factor 1"));
}

TEST(Config, APrincipalWithoutItsTypeIsRefused) {
  EXPECT_EQ(only_issue("kafka: { principal: sdoh-gateway }\n").path, "kafka.principal");
  EXPECT_EQ(only_issue("parties: { ei: { kafka_principal: ei } }\n").path,
            "parties.ei.kafka_principal");
}

TEST(Config, ProvisioningTopicsNeedsARealCluster) {
  auto issue = only_issue("kafka: { provision_topics: true }\n");
  EXPECT_EQ(issue.path, "kafka.provision_topics");
  EXPECT_THAT(issue.message, HasSubstr("the embedded broker creates its own"));
}

TEST(Config, PartiesAreReadWithTheirSendersCertificateAndNetworks) {
  auto cfg = parse_config(R"(
parties:
  ehv-durham: { kind: agency, mllp_senders: ["AGENCY^EHV-DURHAM"], certificate_subject: ehv-durham }
  wic-durham: { mllp_senders: WIC-DURHAM, source_addresses: ["10.2.0.0/24", "2001:db8::/32"] }
  peds_clinic_a: { kind: clinic, mllp_senders: ["EHR^PEDS_CLINIC_A"] }
)");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  ASSERT_EQ(cfg->parties.size(), 3u);
  const auto& ehv = cfg->parties[0];
  EXPECT_EQ(ehv.id, "ehv-durham");
  EXPECT_EQ(ehv.kind, "agency");
  EXPECT_EQ(ehv.mllp_senders, std::vector<std::string>{"AGENCY^EHV-DURHAM"});
  EXPECT_EQ(ehv.certificate_subject, "ehv-durham");
  const auto& wic = cfg->parties[1];
  EXPECT_EQ(wic.kind, "agency");  // the default
  EXPECT_EQ(wic.mllp_senders, std::vector<std::string>{"WIC-DURHAM"});
  ASSERT_EQ(wic.source_addresses.size(), 2u);
  EXPECT_EQ(wic.source_addresses[0].prefix, 24u);
  EXPECT_TRUE(wic.source_addresses[1].v6);
  EXPECT_EQ(cfg->parties[2].kind, "clinic");
}

TEST(Config, PartiesRefuseAnUnknownKindASharedSenderAndABadNetwork) {
  EXPECT_EQ(only_issue("parties: { a: { kind: hospital } }\n").path, "parties.a.kind");
  auto shared = only_issue("parties: { a: { mllp_senders: [X^Y] }, b: { mllp_senders: [X^Y] } }\n");
  EXPECT_EQ(shared.path, "parties.b.mllp_senders");
  EXPECT_THAT(shared.message, HasSubstr("names another party too"));
  EXPECT_EQ(only_issue("parties: { a: { source_addresses: [10.0.0.0/99] } }\n").path,
            "parties.a.source_addresses[0]");
}

TEST(Config, SubscriptionDeliveryIsReadWithDefaultsAndCheckedRanges) {
  auto defaults = parse_config("");
  ASSERT_TRUE(defaults) << defaults.error().to_string();
  EXPECT_EQ(defaults->fhir.subscriptions.max_attempts, 10);
  EXPECT_EQ(defaults->fhir.subscriptions.give_up_after, std::chrono::hours(24));
  EXPECT_EQ(defaults->fhir.subscriptions.initial_backoff, std::chrono::seconds(1));
  auto cfg = parse_config(
      "fhir: { subscriptions: { initial_backoff: 100ms, max_backoff: 2s, max_attempts: 3, "
      "give_up_after: 1h, timeout: 5s } }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->fhir.subscriptions.initial_backoff, std::chrono::milliseconds(100));
  EXPECT_EQ(cfg->fhir.subscriptions.max_backoff, std::chrono::seconds(2));
  EXPECT_EQ(cfg->fhir.subscriptions.max_attempts, 3);
  EXPECT_EQ(cfg->fhir.subscriptions.give_up_after, std::chrono::hours(1));
  EXPECT_EQ(only_issue("fhir: { subscriptions: { max_attempts: 0 } }\n").path,
            "fhir.subscriptions.max_attempts");
  EXPECT_EQ(only_issue("fhir: { subscriptions: { initial_backoff: 10s, max_backoff: 1s } }\n").path,
            "fhir.subscriptions.max_backoff");
  EXPECT_EQ(only_issue("fhir: { subscriptions: { retries: 3 } }\n").path,
            "fhir.subscriptions.retries");
}

TEST(Config, AssistancePolicyIsOffByDefaultAndReadPerSender) {
  auto defaults = parse_config("");
  ASSERT_TRUE(defaults) << defaults.error().to_string();
  EXPECT_EQ(defaults->mapping.assistance_policy, "none");
  EXPECT_TRUE(defaults->mapping.assistance_policy_by_sender.empty());
  auto cfg = parse_config(R"(
mapping:
  assistance_policy: none
  assistance_policy_by_sender: { "EHR^PEDS_A": positive-domain }
)");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->mapping.assistance_policy_by_sender.at("EHR^PEDS_A"), "positive-domain");
}

TEST(Config, AssistancePolicyRefusesAnUnknownRuleNamingTheKey) {
  auto issue = only_issue("mapping: { assistance_policy: always }\n");
  EXPECT_EQ(issue.path, "mapping.assistance_policy");
  EXPECT_THAT(issue.message, HasSubstr("none, positive-domain"));
  auto per_sender = only_issue("mapping: { assistance_policy_by_sender: { \"EHR^A\": yes } }\n");
  EXPECT_EQ(per_sender.path, "mapping.assistance_policy_by_sender.EHR^A");
  EXPECT_THAT(per_sender.message, HasSubstr("expected none or positive-domain"));
}

TEST(Config, MeasuresKeepThirteenMonthsAndSuppressGroupsUnderEleven) {
  auto cfg = parse_config("");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->measures.window, std::chrono::hours(24 * 395));
  EXPECT_EQ(cfg->measures.min_cell, 11);
  EXPECT_EQ(cfg->store.timeline_retention, std::chrono::hours(24 * 395));
}

TEST(Config, TheMeasureWindowIsHowLongTimelinesAreKept) {
  auto cfg = parse_config("measures: { window: 400d, min_cell: 5 }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->measures.window, std::chrono::hours(24 * 400));
  EXPECT_EQ(cfg->store.timeline_retention, std::chrono::hours(24 * 400));
  EXPECT_EQ(cfg->measures.min_cell, 5);
}

TEST(Config, MeasuresKeysAreRangeChecked) {
  EXPECT_EQ(only_issue("measures: { min_cell: 0 }\n").path, "measures.min_cell");
  EXPECT_EQ(only_issue("measures: { window: 1h }\n").path, "measures.window");
  EXPECT_EQ(only_issue("measures: { windw: 30d }\n").path, "measures.windw");
}

TEST(Config, UnitsForDurationsAndSizes) {
  auto cfg = parse_config(R"(
runtime: { drain_timeout: 1500ms }
http: { idle_timeout: 2m, max_body_bytes: 8MiB, max_header_bytes: 32768 }
mllp: { max_frame_bytes: 64KiB, idle_timeout: 1h }
)");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->runtime.drain_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(cfg->http.idle_timeout, std::chrono::minutes(2));
  EXPECT_EQ(cfg->http.max_body_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(cfg->http.max_header_bytes, 32768u);
  EXPECT_EQ(cfg->mllp.max_frame_bytes, 64u * 1024);
  EXPECT_EQ(cfg->mllp.idle_timeout, std::chrono::hours(1));
}

TEST(Config, ConnectionSharesAndFrameTimeoutHaveDocumentedDefaults) {
  auto cfg = parse_config("");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->http.max_connections_per_peer, 128u);
  EXPECT_EQ(cfg->mllp.max_connections_per_peer, 32u);
  EXPECT_EQ(cfg->mllp.frame_timeout, std::chrono::seconds(30));
  EXPECT_TRUE(cfg->http.trusted_proxies.empty());
  EXPECT_TRUE(cfg->mllp.trusted_proxies.empty());
}

TEST(Config, ConnectionSharesAndFrameTimeoutAreRead) {
  auto cfg = parse_config(R"(
http: { max_connections_per_peer: 8 }
mllp: { max_connections_per_peer: 2, frame_timeout: 2s }
)");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->http.max_connections_per_peer, 8u);
  EXPECT_EQ(cfg->mllp.max_connections_per_peer, 2u);
  EXPECT_EQ(cfg->mllp.frame_timeout, std::chrono::seconds(2));
}

TEST(Config, ConnectionShareOfZeroIsOutOfRange) {
  auto issue = only_issue("http: { max_connections_per_peer: 0 }");
  EXPECT_EQ(issue.path, "http.max_connections_per_peer");
  EXPECT_THAT(issue.message, HasSubstr("out of range 1..100000"));
}

TEST(Config, FrameTimeoutIsRangeChecked) {
  auto issue = only_issue("mllp: { frame_timeout: 10ms }");
  EXPECT_EQ(issue.path, "mllp.frame_timeout");
  EXPECT_THAT(issue.message, HasSubstr("out of range"));
}

TEST(Config, TrustedProxiesAreAddressesOrNetworksOfEitherFamily) {
  auto cfg = parse_config(R"(
http: { trusted_proxies: ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"] }
mllp: { trusted_proxies: "172.16.0.0/12" }
)");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  const auto& http = cfg->http.trusted_proxies;
  ASSERT_EQ(http.size(), 4u);
  EXPECT_FALSE(http[0].v6);
  EXPECT_EQ(http[0].prefix, 8u);
  EXPECT_EQ(http[0].bytes[0], 10);
  EXPECT_EQ(http[1].prefix, 32u);
  EXPECT_EQ(http[1].bytes[3], 7);
  EXPECT_TRUE(http[2].v6);
  EXPECT_EQ(http[2].prefix, 32u);
  EXPECT_EQ(http[2].bytes[0], 0x20);
  EXPECT_EQ(http[2].bytes[1], 0x01);
  EXPECT_EQ(http[3].prefix, 128u);
  ASSERT_EQ(cfg->mllp.trusted_proxies.size(), 1u);
  EXPECT_EQ(cfg->mllp.trusted_proxies[0].text, "172.16.0.0/12");
}

TEST(Config, ATrustedProxyThatIsNoNetworkIsNamedByIndex) {
  auto issue = only_issue(R"(http: { trusted_proxies: ["10.0.0.1", "10.0.0.0/33"] })");
  EXPECT_EQ(issue.path, "http.trusted_proxies[1]");
  EXPECT_THAT(issue.message, HasSubstr("not an IP address or network"));
  EXPECT_EQ(only_issue(R"(mllp: { trusted_proxies: ["lb.example.org"] })").path,
            "mllp.trusted_proxies[0]");
}

TEST(Config, TrustedProxiesMustBeAList) {
  auto issue = only_issue("http: { trusted_proxies: { a: 1 } }");
  EXPECT_EQ(issue.path, "http.trusted_proxies");
  EXPECT_THAT(issue.message, HasSubstr("expected a list"));
}

TEST(Config, ResourceRetentionDefaultsTo90DaysAndIsAtLeastAnHour) {
  EXPECT_EQ(parse_config("")->store.resource_retention, std::chrono::hours(24 * 90));
  auto cfg = parse_config("store: { resource_retention: 400d }");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->store.resource_retention, std::chrono::hours(24 * 400));
  auto issue = only_issue("store: { resource_retention: 30m }");
  EXPECT_EQ(issue.path, "store.resource_retention");
  EXPECT_THAT(issue.message, HasSubstr("out of range"));
}

TEST(Config, UnknownTopLevelKeyIsNamedWithSuggestion) {
  auto issue = only_issue("data_dri: var\n");
  EXPECT_EQ(issue.path, "data_dri");
  EXPECT_THAT(issue.message, HasSubstr("unknown key"));
  EXPECT_THAT(issue.message, HasSubstr("did you mean \"data_dir\""));
  EXPECT_EQ(issue.line, 1);
}

TEST(Config, UnknownNestedKeyIsNamedByPath) {
  auto issue = only_issue("http:\n  listen: \"127.0.0.1:1\"\n  lisen: x\n");
  EXPECT_EQ(issue.path, "http.lisen");
  EXPECT_THAT(issue.message, HasSubstr("did you mean \"listen\""));
  EXPECT_EQ(issue.line, 3);
}

TEST(Config, UnknownKeyInTlsIsNamed) {
  EXPECT_EQ(only_issue("mllp: { tls: { certfile: a.pem } }").path, "mllp.tls.certfile");
}

TEST(Config, WrongTypeNamesKeyAndWhatWasExpected) {
  auto issue = only_issue("runtime: { io_threads: many }");
  EXPECT_EQ(issue.path, "runtime.io_threads");
  EXPECT_THAT(issue.message, HasSubstr("expected a whole number"));
}

TEST(Config, MappingWhereValueExpected) {
  auto issue = only_issue("data_dir: { a: 1 }");
  EXPECT_EQ(issue.path, "data_dir");
  EXPECT_THAT(issue.message, HasSubstr("expected a single value"));
}

TEST(Config, ValueWhereMappingExpected) {
  auto issue = only_issue("kafka: localhost:9092");
  EXPECT_EQ(issue.path, "kafka");
  EXPECT_THAT(issue.message, HasSubstr("expected a mapping"));
}

TEST(Config, OutOfRangeNamesKeyAndRange) {
  auto issue = only_issue("runtime: { io_threads: 0 }");
  EXPECT_EQ(issue.path, "runtime.io_threads");
  EXPECT_THAT(issue.message, HasSubstr("out of range 1..64"));
}

TEST(Config, PortOutOfRange) {
  auto issue = only_issue("http: { listen: \"127.0.0.1:70000\" }");
  EXPECT_EQ(issue.path, "http.listen");
  EXPECT_THAT(issue.message, HasSubstr("65535"));
}

TEST(Config, ListenWithoutHostIsRefused) {
  auto issue = only_issue("mllp: { listen: \"2575\" }");
  EXPECT_EQ(issue.path, "mllp.listen");
  EXPECT_THAT(issue.message, HasSubstr("host:port"));
}

TEST(Config, DurationWithoutUnitIsRefused) {
  auto issue = only_issue("runtime: { drain_timeout: 10 }");
  EXPECT_EQ(issue.path, "runtime.drain_timeout");
  EXPECT_THAT(issue.message, HasSubstr("unit"));
}

TEST(Config, SizeWithUnknownUnitIsRefused) {
  auto issue = only_issue("http: { max_body_bytes: 4MB }");
  EXPECT_EQ(issue.path, "http.max_body_bytes");
  EXPECT_THAT(issue.message, HasSubstr("MiB"));
}

TEST(Config, ChoiceListsTheAllowedValues) {
  auto issue = only_issue("log: { level: verbose }");
  EXPECT_EQ(issue.path, "log.level");
  EXPECT_THAT(issue.message, HasSubstr("trace, debug, info, warn, error"));
}

TEST(Config, BooleanMustBeTrueOrFalse) {
  auto issue = only_issue("http: { tls: { require_client_cert: maybe } }");
  EXPECT_EQ(issue.path, "http.tls.require_client_cert");
  EXPECT_THAT(issue.message, HasSubstr("true or false"));
}

TEST(Config, EveryProblemIsReportedAtOnce) {
  auto errors =
      errors_of("mode: prod\nruntime: { io_threads: 999 }\nhttp: { listen: x }\nextra: 1\n");
  ASSERT_EQ(errors.issues.size(), 4u) << errors.to_string();
  const auto text = errors.to_string();
  EXPECT_THAT(text, HasSubstr("test.yaml:1: mode:"));
  EXPECT_THAT(text, HasSubstr("test.yaml:2: runtime.io_threads:"));
  EXPECT_THAT(text, HasSubstr("test.yaml:3: http.listen:"));
  EXPECT_THAT(text, HasSubstr("test.yaml:4: extra: unknown key"));
}

TEST(Config, InvalidYamlGivesLine) {
  auto errors = errors_of("http:\n  listen: [unclosed\n");
  ASSERT_EQ(errors.issues.size(), 1u);
  EXPECT_THAT(errors.issues[0].message, HasSubstr("not valid YAML"));
  EXPECT_GT(errors.issues[0].line, 0);
}

TEST(Config, LiteralSecretIsRefused) {
  auto issue = only_issue("http: { tls: { key_password: hunter2 } }");
  EXPECT_EQ(issue.path, "http.tls.key_password");
  EXPECT_THAT(issue.message, HasSubstr("{ env: VARIABLE }"));
}

TEST(Config, SecretFromEnvironmentOrFile) {
  auto cfg = parse_config(R"(
kafka:
  properties:
    sasl.username: gateway
    sasl.password: { env: SDOH_TEST_KAFKA_PASSWORD }
    ssl.key.password: { file: /run/secrets/key-pass }
)");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->kafka.properties.at("sasl.username").value, "gateway");
  const auto& pw = cfg->kafka.properties.at("sasl.password").secret;
  EXPECT_EQ(pw.source, SecretRef::Source::kEnv);
  EXPECT_EQ(pw.name, "SDOH_TEST_KAFKA_PASSWORD");
  EXPECT_EQ(cfg->kafka.properties.at("ssl.key.password").secret.describe(),
            "file:/run/secrets/key-pass");
}

TEST(Config, LiteralKafkaPasswordIsRefused) {
  auto issue = only_issue("kafka: { properties: { sasl.password: hunter2 } }");
  EXPECT_EQ(issue.path, "kafka.properties.sasl.password");
  EXPECT_THAT(issue.message, HasSubstr("is a secret"));
}

TEST(Config, SecretNeedsExactlyOneSource) {
  auto issue = only_issue("http: { tls: { key_password: { env: A, file: /b } } }");
  EXPECT_EQ(issue.path, "http.tls.key_password");
  EXPECT_THAT(issue.message, HasSubstr("exactly one"));
}

TEST(Config, UpdateConsumerGroupDefaultsToTheGatewayAndCanBeNamed) {
  auto defaults = parse_config("");
  ASSERT_TRUE(defaults) << defaults.error().to_string();
  EXPECT_EQ(defaults->kafka.consumer_group, "sdoh-gateway");
  auto cfg = parse_config("kafka: { consumer_group: sdoh-gateway-durham }");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->kafka.consumer_group, "sdoh-gateway-durham");
  auto issue = only_issue("kafka: { consumer_group: \"\" }");
  EXPECT_EQ(issue.path, "kafka.consumer_group");
  EXPECT_THAT(issue.message, HasSubstr("must not be empty"));
}

TEST(Config, DeliveryPromisePropertiesCannotBeOverridden) {
  auto issue = only_issue("kafka: { properties: { enable.idempotence: \"false\" } }");
  EXPECT_EQ(issue.path, "kafka.properties.enable.idempotence");
  EXPECT_THAT(issue.message, HasSubstr("cannot be overridden"));
}

TEST(Config, ProductionRefusesAnMllpAgencyWithNothingToProveItsConnection) {
  const std::string production =
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n"
      "fhir: { base_url: \"https://gw.example.org/fhir\" }\n";
  auto issue = only_issue(production + "parties: { " + kSmartParty +
                          ", ehv: { mllp_senders: [AGENCY^EHV] } }\n");
  EXPECT_EQ(issue.path, "parties.ehv");
  EXPECT_THAT(issue.message, HasSubstr("needs certificate_subject (mTLS) or source_addresses"));
  EXPECT_TRUE(parse_config(production + "parties: { " + kSmartParty +
                           ", ehv: { mllp_senders: [AGENCY^EHV], certificate_subject: ehv } }\n"));
}

TEST(Config, ProductionRefusesPlainListenersNamingTheKey) {
  const auto errors = errors_of(
      "mode: production\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n" +
      kFhirClient);
  std::vector<std::string> paths;
  for (const auto& issue : errors.issues)
    paths.push_back(issue.path);
  EXPECT_THAT(paths, ::testing::UnorderedElementsAre("http.tls.cert_file", "mllp.tls.cert_file"));
  EXPECT_THAT(errors.issues[0].message, HasSubstr("production mode needs TLS on every listener"));
  // TLS on both listeners is enough (any readable files stand in for the PEM files here).
  const std::string tls =
      std::string("{ tls: { cert_file: ") + __FILE__ + ", key_file: " + __FILE__ + " } }\n";
  EXPECT_TRUE(parse_config(
      "mode: production\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n"
      "http: " +
      tls + "mllp: " + tls + kFhirClient));
}

TEST(Config, PlainOnLoopbackOnlyIsForLoopbackAddresses) {
  auto issue = only_issue("http: { listen: \"0.0.0.0:8080\", insecure_loopback_only: true }\n");
  EXPECT_EQ(issue.path, "http.insecure_loopback_only");
  EXPECT_THAT(issue.message, HasSubstr("only on a loopback address"));
  issue = only_issue(std::string("mllp: { listen: \"127.0.0.1:2575\", insecure_loopback_only: "
                                 "true, tls: { cert_file: ") +
                     __FILE__ + ", key_file: " + __FILE__ + " } }\n");
  EXPECT_EQ(issue.path, "mllp.insecure_loopback_only");
  EXPECT_TRUE(parse_config("mllp: { listen: \"[::1]:2575\", insecure_loopback_only: true }\n"));
}

TEST(Config, ProductionRefusesTheEmbeddedBroker) {
  auto issue = only_issue(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\npseudonym: { key: { env: K } }\n" +
      kFhirClient);
  EXPECT_EQ(issue.path, "kafka.brokers");
  EXPECT_THAT(issue.message, HasSubstr("development only"));
}

TEST(Config, ProductionNeedsAPseudonymKey) {
  auto issue = only_issue(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\n" +
      kFhirClient);
  EXPECT_EQ(issue.path, "pseudonym.key");
  EXPECT_THAT(issue.message, HasSubstr("pseudonym key"));
}

TEST(Config, PseudonymKeyAndAliases) {
  auto cfg = parse_config(
      "pseudonym:\n  key: { file: /run/secrets/pseudonym }\n  authority_aliases: { PEDS_A: "
      "\"urn:oid:1.2.3\" }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->pseudonym.key.describe(), "file:/run/secrets/pseudonym");
  EXPECT_EQ(cfg->pseudonym.authority_aliases.at("PEDS_A"), "urn:oid:1.2.3");
}

TEST(Config, LiteralPseudonymKeyIsRefused) {
  EXPECT_EQ(only_issue("pseudonym: { key: abc }").path, "pseudonym.key");
}

TEST(Config, ProductionWithBrokersAndKeyIsAccepted) {
  auto cfg = parse_config(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n" +
      kFhirClient);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_FALSE(cfg->dev_mode());
}

TEST(Config, ProductionNeedsFhirClients) {
  auto issue = only_issue(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n");
  EXPECT_EQ(issue.path, "parties");
  EXPECT_THAT(issue.message, HasSubstr("SMART Backend Services clients"));
}

TEST(Config, ProductionRefusesStaticBearerTokens) {
  auto issue = only_issue(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n"
      "fhir: { clients: { ehr: { token: { env: T }, certificate_cn: ehr, party: a } } }\n"
      "parties: { a: { kind: clinic } }\n");
  EXPECT_EQ(issue.path, "fhir.clients.ehr.token");
  EXPECT_THAT(issue.message, HasSubstr("static bearer tokens are for mode: dev"));
}

TEST(Config, ProductionTakesClientCertificatesAsFhirClients) {
  EXPECT_TRUE(parse_config(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n"
      "fhir: { clients: { ehr: { certificate_cn: ehr.clinic-a.org, party: a } } }\n"
      "parties: { a: { kind: clinic } }\n"));
}

TEST(Config, ProductionPinsTheTokenEndpoint) {
  auto issue = only_issue(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n"
      "parties: { " +
      kSmartParty + " }\n");
  EXPECT_EQ(issue.path, "smart.token_endpoint");
  EXPECT_TRUE(parse_config(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n"
      "smart: { token_endpoint: \"https://gw.example.org/auth/token\" }\nparties: { " +
      kSmartParty + " }\n"));
}

TEST(Config, ProductionFetchesKeysOverHttpsOnly) {
  auto issue = only_issue(
      "mode: production\nhttp: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: "
      "true }\nkafka: { brokers: \"kafka:9092\" }\npseudonym: { key: { env: K } }\n"
      "fhir: { base_url: \"https://gw.example.org/fhir\" }\n"
      "parties: { a: { kind: clinic, smart_clients: { ehr: { jwks_url: \"http://ehr/jwks\", "
      "scopes: system/Task.r } } } }\n");
  EXPECT_EQ(issue.path, "parties.a.smart_clients.ehr.jwks_url");
}

TEST(Config, FhirClientsNameTheirParty) {
  auto cfg = parse_config(
      "fhir:\n  base_url: https://gw.example.org/fhir/\n  clients:\n"
      "    clinic-a: { token: { env: A }, party: peds-a }\n"
      "    wic: { certificate_cn: wic.example.org, party: wic }\n"
      "parties:\n  peds-a: { kind: clinic, organization: PEDS_A, name: Peds }\n"
      "  wic: { kind: agency }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->fhir.base_url, "https://gw.example.org/fhir");
  ASSERT_EQ(cfg->fhir.clients.size(), 2u);
  EXPECT_EQ(cfg->fhir.clients[0].id, "clinic-a");
  EXPECT_EQ(cfg->fhir.clients[0].party, "peds-a");
  EXPECT_EQ(cfg->party("peds-a")->organization, "PEDS_A");
  EXPECT_EQ(cfg->party("wic")->organization, "wic");  // defaults to the party id
  EXPECT_EQ(cfg->party("wic")->name, "wic");
}

TEST(Config, FhirClientNeedsACredentialAndAParty) {
  EXPECT_EQ(
      only_issue("fhir: { clients: { a: { party: p } } }\nparties: { p: { kind: clinic } }").path,
      "fhir.clients.a");
  EXPECT_EQ(only_issue("fhir: { clients: { a: { token: { env: A } } } }").path,
            "fhir.clients.a.party");
  EXPECT_EQ(only_issue("fhir: { clients: { a: { token: { env: A }, party: nobody } } }").path,
            "fhir.clients.a.party");
  EXPECT_EQ(only_issue("fhir: { base_url: gw.example.org }").path, "fhir.base_url");
}

TEST(Config, FhirClientRoleMovedToItsParty) {
  auto issue = only_issue(
      "fhir: { clients: { a: { token: { env: A }, party: p, role: clinic } } }\n"
      "parties: { p: { kind: clinic } }");
  EXPECT_EQ(issue.path, "fhir.clients.a.role");
  EXPECT_THAT(issue.message, HasSubstr("moved to the party"));
}

TEST(Config, SmartClientsWithInlineJwksAndScopes) {
  auto cfg = parse_config(
      "parties:\n  ehv:\n    kind: agency\n    smart_clients:\n      ehv-system:\n"
      "        jwks: { keys: [ { kty: EC, crv: P-384, x: abc, y: def, kid: k1 } ] }\n"
      "        scopes: \"system/Task.rus system/Subscription.cruds\"\n"
      "smart: { access_token_lifetime: 2m, clock_skew: 30s, jwks_refetch_interval: 10s }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  const auto& c = cfg->parties[0].smart_clients.at(0);
  EXPECT_EQ(c.client_id, "ehv-system");
  EXPECT_EQ(c.jwks_json, R"({"keys":[{"kty":"EC","crv":"P-384","x":"abc","y":"def","kid":"k1"}]})");
  EXPECT_EQ(c.scopes, (std::vector<std::string>{"system/Task.rus", "system/Subscription.cruds"}));
  EXPECT_EQ(cfg->smart.access_token_lifetime, std::chrono::seconds(120));
  EXPECT_EQ(cfg->smart.clock_skew, std::chrono::seconds(30));
  EXPECT_EQ(cfg->smart.jwks_refetch_interval, std::chrono::seconds(10));
}

TEST(Config, SmartClientNeedsOneKeySourceAndSystemScopes) {
  EXPECT_EQ(only_issue("parties: { a: { smart_clients: { c: { scopes: system/Task.r } } } }").path,
            "parties.a.smart_clients.c");
  EXPECT_EQ(only_issue("parties: { a: { smart_clients: { c: { jwks_url: \"https://x/j\", "
                       "scopes: patient/Task.r } } } }")
                .path,
            "parties.a.smart_clients.c.scopes");
  EXPECT_EQ(only_issue("parties: { a: { smart_clients: { c: { jwks_url: \"https://x/j\", scopes: "
                       "system/Task.r } } }, b: { smart_clients: { c: { jwks_url: \"https://x/k\", "
                       "scopes: system/Task.r } } } }")
                .path,
            "parties.b.smart_clients.c");
}

TEST(Config, ExternalIssuerNeedsIssuerKeysAndAudience) {
  auto cfg = parse_config(
      "parties: { a: { kind: clinic, external_issuer: { issuer: \"https://login.a.org\", "
      "jwks_url: \"https://login.a.org/jwks\", audience: \"https://gw/fhir\", scopes: "
      "system/*.rs } } }");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->parties[0].external_issuer.issuer, "https://login.a.org");
  EXPECT_EQ(
      only_issue("parties: { a: { external_issuer: { issuer: \"https://login.a.org\" } } }").path,
      "parties.a.external_issuer");
}

TEST(Config, TlsCertWithoutKeyIsRefused) {
  auto issue = only_issue("http: { tls: { cert_file: " SDOH_SOURCE_DIR "/CMakeLists.txt } }");
  EXPECT_EQ(issue.path, "http.tls");
  EXPECT_THAT(issue.message, HasSubstr("cert_file and key_file go together"));
}

TEST(Config, TlsUnreadableFileIsNamed) {
  auto errors =
      errors_of("mllp: { tls: { cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem } }");
  ASSERT_EQ(errors.issues.size(), 2u) << errors.to_string();
  EXPECT_EQ(errors.issues[0].path, "mllp.tls.cert_file");
  EXPECT_THAT(errors.issues[0].message, HasSubstr("cannot read /nonexistent/c.pem"));
  EXPECT_EQ(errors.issues[1].path, "mllp.tls.key_file");
}

TEST(Config, RequireClientCertNeedsCa) {
  auto errors = errors_of("mllp: { tls: { require_client_cert: true } }");
  ASSERT_FALSE(errors.issues.empty());
  EXPECT_EQ(errors.issues[0].path, "mllp.tls.client_ca_file");
}

TEST(Config, SamePortForHttpAndMllpIsRefused) {
  auto issue =
      only_issue("http: { listen: \"127.0.0.1:9000\" }\nmllp: { listen: \"127.0.0.1:9000\" }\n");
  EXPECT_EQ(issue.path, "mllp.listen");
}

TEST(Config, Hl7TimeZonesAndConsentPolicyPerSender) {
  auto cfg = parse_config(
      "mllp:\n"
      "  hl7:\n"
      "    default_timezone: America/New_York\n"
      "    senders:\n"
      "      \"EHR^PEDS_CLINIC_A\": { timezone: America/Chicago, contact_consent: clinic-policy }\n"
      "      PEDS_CLINIC_B: { timezone: America/Denver }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->mllp.hl7.default_timezone, "America/New_York");
  ASSERT_EQ(cfg->mllp.hl7.senders.size(), 2u);
  EXPECT_EQ(cfg->mllp.hl7.senders.at("EHR^PEDS_CLINIC_A").timezone, "America/Chicago");
  EXPECT_EQ(cfg->mllp.hl7.senders.at("EHR^PEDS_CLINIC_A").contact_consent, "clinic-policy");
  EXPECT_EQ(cfg->mllp.hl7.senders.at("PEDS_CLINIC_B").contact_consent, "con-segment");
}

TEST(Config, Hl7DefaultsHaveNoZoneAndNeedACon) {
  auto cfg = parse_config("");
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->mllp.hl7.default_timezone, "");
  EXPECT_TRUE(cfg->mllp.hl7.senders.empty());
}

TEST(Config, UnknownTimeZoneIsNamed) {
  auto issue = only_issue("mllp: { hl7: { default_timezone: America/Gotham } }");
  EXPECT_EQ(issue.path, "mllp.hl7.default_timezone");
  EXPECT_THAT(issue.message, HasSubstr("America/Gotham"));
  EXPECT_EQ(only_issue("mllp: { hl7: { senders: { X: { timezone: ../../etc/passwd } } } }").path,
            "mllp.hl7.senders.X.timezone");
}

TEST(Config, TheZipCountyCrosswalkIsTheShippedOneUnlessNamed) {
  auto shipped = parse_config("schemas_dir: /opt/schemas\n");
  ASSERT_TRUE(shipped) << shipped.error().to_string();
  EXPECT_EQ(shipped->zip_county_file(), "/opt/schemas/geo/zcta-county.csv");
  auto own = parse_config("referrals: { zip_county_file: /etc/sdoh/hud-zip-county.csv }\n");
  ASSERT_TRUE(own) << own.error().to_string();
  EXPECT_EQ(own->zip_county_file(), "/etc/sdoh/hud-zip-county.csv");
}

TEST(Config, UnknownConsentPolicyListsTheChoices) {
  auto issue = only_issue("mllp: { hl7: { senders: { X: { contact_consent: always } } } }");
  EXPECT_EQ(issue.path, "mllp.hl7.senders.X.contact_consent");
  EXPECT_THAT(issue.message, HasSubstr("con-segment, clinic-policy"));
}

TEST(Config, GatewayIdCharacters) {
  EXPECT_EQ(only_issue("gateway_id: \"a b\"").path, "gateway_id");
}

TEST(Config, ShippedConfigsAreValid) {
  for (const char* file : {"/deploy/config/dev.yaml", "/deploy/config/reference.yaml"}) {
    auto cfg = load_config(std::string(SDOH_SOURCE_DIR) + file);
    EXPECT_TRUE(cfg) << (cfg ? "" : cfg.error().to_string());
  }
}

TEST(Config, MissingFileIsReported) {
  auto cfg = load_config("/nonexistent/gateway.yaml");
  ASSERT_FALSE(cfg);
  EXPECT_THAT(cfg.error().to_string(),
              HasSubstr("/nonexistent/gateway.yaml: cannot read the file"));
}

TEST(Config, RateLimitsPerPartyOverTheDefault) {
  auto cfg = parse_config(
      "rate_limits: { per_second: 50, burst: 100, parties: { wic: { per_second: 5 }, "
      "loader: { per_second: 0 } } }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->rate_limits.default_limit.per_second, 50);
  EXPECT_EQ(cfg->rate_limits.parties.at("wic").per_second, 5);
  EXPECT_EQ(cfg->rate_limits.parties.at("wic").burst, 100);  // the default's, unless its own
  EXPECT_EQ(cfg->rate_limits.parties.at("loader").per_second, 0);
  auto defaults = parse_config("");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->rate_limits.default_limit.per_second, 1000);
  EXPECT_EQ(defaults->rate_limits.default_limit.burst, 2000);
  EXPECT_EQ(only_issue("rate_limits: { burst: 0 }\n").path, "rate_limits.burst");
  EXPECT_EQ(only_issue("rate_limits: { parties: { wic: { per_sec: 5 } } }\n").path,
            "rate_limits.parties.wic.per_sec");
}

}  // namespace
}  // namespace sdoh::config

namespace sdoh::config {
namespace {

TEST(Config, AuditKeysHaveTheirDefaults) {
  auto cfg = parse_config("");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->audit.retention, std::chrono::hours(24 * 2192));
  EXPECT_EQ(cfg->audit.anchor_interval, std::chrono::hours(1));
  EXPECT_EQ(cfg->kafka.topics.audit_anchors, "sdoh.audit-anchors.v1");
}

TEST(Config, AuditKeysAreRead) {
  auto cfg = parse_config(
      "audit: { retention: 3650d, anchor_interval: 10m }\n"
      "kafka: { topics: { audit_anchors: gw1.audit-anchors } }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->audit.retention, std::chrono::hours(24 * 3650));
  EXPECT_EQ(cfg->audit.anchor_interval, std::chrono::minutes(10));
  EXPECT_EQ(cfg->kafka.topics.audit_anchors, "gw1.audit-anchors");
}

TEST(Config, AnAuditRetentionUnderAYearIsRefused) {
  EXPECT_EQ(only_issue("audit: { retention: 30d }\n").path, "audit.retention");
  EXPECT_EQ(only_issue("audit: { anchor: 1h }\n").path, "audit.anchor");
}

TEST(Config, OpsTokenIsASecretReference) {
  auto cfg = parse_config("ops: { token: { env: SDOH_OPS_TOKEN } }\n");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->ops.token.describe(), "env:SDOH_OPS_TOKEN");
  EXPECT_EQ(only_issue("ops: { token: plain-text-token-here }\n").path, "ops.token");
  EXPECT_EQ(only_issue("ops: { tokens: { env: X } }\n").path, "ops.tokens");
}

}  // namespace
}  // namespace sdoh::config
