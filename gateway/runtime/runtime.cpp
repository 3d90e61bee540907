#include "gateway/runtime/runtime.hpp"

#include <atomic>
#include <csignal>
#include <ctime>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "adapters/auth/smart.hpp"
#include "adapters/fhir/api.hpp"
#include "adapters/fhir/audit_api.hpp"
#include "adapters/fhir/subscription_api.hpp"
#include "adapters/fhir/subscription_delivery.hpp"
#include "adapters/hl7v2/clinic_return.hpp"
#include "adapters/hl7v2/mllp_server.hpp"
#include "adapters/hl7v2/pipeline.hpp"
#include "adapters/http/server.hpp"
#include "adapters/kafka/embedded_broker.hpp"
#include "adapters/kafka/producer.hpp"
#include "adapters/kafka/reconcile.hpp"
#include "adapters/kafka/relay.hpp"
#include "adapters/kafka/update_consumer.hpp"
#include "adapters/net/http_client.hpp"
#include "adapters/net/tls.hpp"
#include "adapters/store/sql_store.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/core/thread_name.hpp"
#include "gateway/events/event.hpp"
#include "gateway/events/schema_catalog.hpp"
#include "gateway/http/message.hpp"
#include "gateway/identity/admin_access.hpp"
#include "gateway/identity/parties.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/log/log.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/mapping/routing.hpp"
#include "gateway/mapping/tables.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/access.hpp"
#include "gateway/ops/health.hpp"
#include "gateway/ops/last_hour.hpp"
#include "gateway/ops/measures_routes.hpp"
#include "gateway/ops/ops_api.hpp"
#include "gateway/ops/ui.hpp"
#include "gateway/ops/ui_files.hpp"
#include "gateway/pipeline/audit_observer.hpp"
#include "gateway/pipeline/delivered_ack_port.hpp"
#include "gateway/pipeline/observed_commit_port.hpp"
#include "gateway/pipeline/subscription_notices.hpp"
#include "gateway/runtime/admin.hpp"
#include "gateway/runtime/data_dir_lock.hpp"
#include "gateway/runtime/descriptor_limit.hpp"
#include "gateway/runtime/kafka_provision.hpp"
#include "gateway/runtime/kafka_topics.hpp"
#include "gateway/runtime/overdue.hpp"
#include "gateway/runtime/periodic.hpp"
#include "gateway/runtime/referral_metrics.hpp"
#include "gateway/runtime/referral_updates.hpp"
#include "gateway/runtime/replayer.hpp"
#include "gateway/runtime/runtime_file.hpp"
#include "gateway/runtime/version.hpp"

namespace sdoh::runtime {

namespace asio = boost::asio;

namespace {

// What the mapping engine needs, read and checked at start-up.
struct MappingSetup {
  std::shared_ptr<const mapping::MappingTables> tables;
  std::shared_ptr<const mapping::RoutingTable> routing;
  std::shared_ptr<const mapping::ZipCountyCrosswalk> zip_counties;  ///< for routing by county
  mapping::ZipPolicy zips;
  std::string pseudonym_key;
  bool development_key = false;
};

// The routing file (referrals.routing_file, else the shipped example), checked against the
// shipped schema; errors name the file, the JSON path and the reason. Production refuses the
// example: its agencies are invented.
Result<std::shared_ptr<const mapping::RoutingTable>> load_routing(
    const config::GatewayConfig& cfg, const mapping::MappingTables& tables) {
  const char* key = cfg.referrals.routing_file.empty() ? "schemas_dir" : "referrals.routing_file";
  auto routing = mapping::RoutingTable::load_file(
      cfg.routing_file(), cfg.schemas_dir / "routing" / "routing.schema.json", tables);
  if (!routing) return fail(Error::config(key, routing.error().message));
  if (!cfg.dev_mode() && (*routing)->example()) {
    return fail(Error::config(
        "referrals.routing_file",
        cfg.routing_file().string() +
            " is an EXAMPLE routing (\"example\": true, invented agencies); production mode "
            "needs your own: set referrals.routing_file to your routing file"));
  }
  return *routing;
}

Result<MappingSetup> load_mapping(const config::GatewayConfig& cfg) {
  MappingSetup setup;
  auto tables = mapping::MappingTables::load(cfg.schemas_dir / "mappings");
  if (!tables) return fail(Error::config("schemas_dir", tables.error().message));
  setup.tables = *tables;
  auto routing = load_routing(cfg, **tables);
  if (!routing) return fail(routing.error());
  setup.routing = *routing;
  auto zip_counties = mapping::ZipCountyCrosswalk::load(cfg.zip_county_file());
  if (!zip_counties) {
    return fail(Error::config(
        cfg.referrals.zip_county_file.empty() ? "schemas_dir" : "referrals.zip_county_file",
        zip_counties.error().message));
  }
  setup.zip_counties = *zip_counties;
  auto zips = mapping::load_zip_policy(cfg.schemas_dir / "privacy" / "restricted-zip3.json");
  if (!zips) return fail(Error::config("schemas_dir", zips.error().message));
  setup.zips = std::move(*zips);
  if (cfg.pseudonym.key.configured()) {
    auto key = cfg.pseudonym.key.resolve();
    if (!key) return fail(Error::config("pseudonym.key", key.error().message));
    if (key->size() < 32) {
      return fail(Error::config("pseudonym.key", "the key must be at least 32 bytes (" +
                                                     cfg.pseudonym.key.describe() + " has " +
                                                     std::to_string(key->size()) + ")"));
    }
    setup.pseudonym_key = std::move(*key);
  } else {
    setup.pseudonym_key = std::string(identity::Pseudonymizer::kDevelopmentKey);
    setup.development_key = true;
  }
  return setup;
}

}  // namespace

// The shortest SLA of any agency: referrals younger than it cannot be overdue yet.
static std::chrono::milliseconds shortest_sla(const mapping::RoutingTable& routing,
                                              std::chrono::milliseconds default_sla) {
  auto shortest = default_sla;
  for (const auto& a : routing.agencies())
    shortest = std::min(shortest, a.sla_or(default_sla));
  return shortest;
}

Result<std::string> kafka_provision(const config::GatewayConfig& cfg, const std::string& source,
                                    bool topics_only) {
  json::set_default_max_depth(cfg.json.max_depth);
  auto tables = mapping::MappingTables::load(cfg.schemas_dir / "mappings");
  if (!tables) return fail(Error::config("schemas_dir", tables.error().message));
  auto routing = load_routing(cfg, **tables);
  if (!routing) return fail(routing.error());
  return provision_script(cfg, kafka_topics(cfg.kafka.topics, **routing), source, topics_only);
}

ops::BuildInfo build_info() {
  return {kVersion, kCommit};
}

Result<void> check_config(const config::GatewayConfig& cfg) {
  json::set_default_max_depth(cfg.json.max_depth);  // the data files below are JSON too
  if (auto r = kafka::Producer::validate(cfg.kafka); !r) return r;
  if (auto r = load_mapping(cfg); !r) return fail(r.error());
  if (auto r = fhir::api_options(cfg); !r) return fail(r.error());
  if (auto r = auth::SmartAuthority::check(cfg); !r) return fail(r.error());
  if (auto r = ops::OpsAccess::from_config(cfg); !r) return fail(r.error());
  for (const auto& [tls, key] :
       {std::pair{&cfg.http.tls, "http.tls"}, {&cfg.mllp.tls, "mllp.tls"}}) {
    if (!tls->enabled()) continue;
    if (auto ctx = net::make_server_tls_context(*tls, key); !ctx) return fail(ctx.error());
  }
  return {};
}

int run(const config::GatewayConfig& cfg) {
  log::init(log::parse_level(cfg.log.level));
  const auto build = build_info();
  const auto started_wall = std::chrono::system_clock::now();
  const auto started = std::chrono::steady_clock::now();
  log::info("gateway.starting", {{"version", build.version},
                                 {"commit", build.commit},
                                 {"mode", cfg.mode},
                                 {"gateway_id", cfg.gateway_id},
                                 {"data_dir", cfg.data_dir.string()}});
  std::signal(SIGPIPE, SIG_IGN);  // a peer that hangs up is an error code, not a crash
  std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit is a failed write (negative ACK), not a crash
  raise_and_log_descriptor_limit(cfg);  // before any thread starts: every connection is one

  auto startup_failed = [](std::string_view component, const Error& e) {
    log::error("gateway.startup_failed",
               {{"component", component}, {"key", e.where.expression}, {"reason", e.message}});
    log::flush();
    return 1;
  };

  if (auto r = check_config(cfg); !r) return startup_failed("config", r.error());
  std::error_code fs_ec;
  std::filesystem::create_directories(cfg.data_dir, fs_ec);
  if (fs_ec) {
    return startup_failed(
        "data_dir", Error::config("data_dir", "cannot create " + cfg.data_dir.string() + ": " +
                                                  fs_ec.message()));
  }
  // Before anything in data_dir is touched: a second process on it is refused here.
  auto data_dir_lock = DataDirLock::acquire(cfg.data_dir);
  if (!data_dir_lock) return startup_failed("data_dir", data_dir_lock.error());
  const auto runtime_file = cfg.data_dir / "runtime.json";
  std::filesystem::remove(runtime_file, fs_ec);

  metrics::Registry registry;
  ops::Health health;
  http::Router router;
  ops::register_process_metrics(registry, build, started_wall);

  auto mapping_setup = load_mapping(cfg);
  if (!mapping_setup) return startup_failed("mapping", mapping_setup.error());
  if (mapping_setup->development_key) {
    log::warn("pseudonym.development_key",
              {{"detail",
                "no pseudonym.key configured: patient pseudonyms use the public "
                "development key; set pseudonym.key before real data arrives"}});
  }
  mapping::ScreeningMapper screening_mapper(
      mapping_setup->tables,
      identity::Pseudonymizer(mapping_setup->pseudonym_key, cfg.pseudonym.authority_aliases),
      mapping_setup->zips, registry);
  {
    // Values were checked when the config was read.
    mapping::AssistancePolicy policy;
    const auto rule = [](const std::string& text) {
      return mapping::AssistancePolicy::parse(text).value_or(
          mapping::AssistancePolicy::Rule::kNone);
    };
    policy.default_rule = rule(cfg.mapping.assistance_policy);
    for (const auto& [sender, text] : cfg.mapping.assistance_policy_by_sender)
      policy.by_sender[sender] = rule(text);
    screening_mapper.set_assistance_policy(std::move(policy));
  }
  log::info("mapping.loaded", {{"instruments", mapping_setup->tables->instruments().size()},
                               {"schemas_dir", cfg.schemas_dir.string()},
                               {"zip_county_file", cfg.zip_county_file().string()},
                               {"zip_county_zips", mapping_setup->zip_counties->size()}});

  auto store = store::SqlStore::open_configured(cfg.store_path(), cfg.store, &registry);
  if (!store) return startup_failed("store", store.error());
  // The audit trail's source id, anchor topic and retention (audit/chain.hpp).
  (*store)->configure_audit({cfg.gateway_id, cfg.kafka.topics.audit_anchors, cfg.audit.retention});
  health.add_check("store", [s = store->get()] { return s->health(); });
  health.add_check("backlog", [s = store->get()] { return s->capacity(); });
  // Message decisions and store reads run here, off the I/O threads (pipeline/store_executor.hpp).
  pipeline::StoreExecutor store_threads(static_cast<std::size_t>(cfg.runtime.store_threads));
  // Referrals made before ids were keyed keep the ids they have.
  screening_mapper.recognise_existing_referrals([s = store->get()](const std::string& id) {
    auto found = s->find_referral({id, "", "", ""});
    return found && *found;
  });

  std::unique_ptr<kafka::EmbeddedBroker> broker;
  std::string bootstrap = cfg.kafka.brokers;
  // The core topics and every agency's own, created on the embedded broker.
  const auto needed = kafka_topics(cfg.kafka.topics, *mapping_setup->routing);
  const auto topics = topic_names(needed);
  if (cfg.embedded_kafka()) {
    auto started_broker =
        kafka::EmbeddedBroker::start(cfg.kafka.embedded_brokers, topics, cfg.kafka.partitions);
    if (!started_broker) return startup_failed("kafka", started_broker.error());
    broker = std::move(*started_broker);
    bootstrap = broker->bootstrap_servers();
    log::warn("kafka.embedded_broker",
              {{"bootstrap_servers", bootstrap},
               {"detail",
                "no kafka.brokers configured: using the in-memory development broker; every "
                "message is lost when the gateway stops. Set kafka.brokers for a real cluster."}});
  }
  if (cfg.kafka.provision_topics && !cfg.embedded_kafka()) {
    // Real clusters only (config.cpp refuses it without kafka.brokers): the mock broker has no
    // CreateTopics.
    auto created = kafka::create_topics(cfg.kafka, bootstrap, new_topics(cfg.kafka, needed),
                                        std::chrono::seconds(30));
    if (!created) return startup_failed("kafka", created.error());
    log::info("kafka.topics_provisioned", {{"created", static_cast<std::int64_t>(created->size())},
                                           {"topics", static_cast<std::int64_t>(needed.size())}});
  }
  // Readiness names each of these that is missing: the core topics and every agency's own.
  auto producer = kafka::Producer::create(cfg.kafka, bootstrap, topics, registry);
  if (!producer) return startup_failed("kafka", producer.error());
  health.add_check("kafka", [p = producer->get()] { return p->health(); });

  // The ops API's last hour: answers by sender, and how long events took to reach Kafka.
  ops::Throughput throughput;
  ops::DeliveryLag delivery_lag;
  kafka::RelayOptions relay_options;
  relay_options.delivery_lag = &delivery_lag;
  relay_options.gateway_id = cfg.gateway_id;
  relay_options.deadletter_topic = cfg.kafka.topics.deadletter;
  relay_options.reconcile = [&cfg, &store, bootstrap]() -> Result<void> {
    auto r = kafka::reconcile_outbox(**store, cfg.kafka, bootstrap, std::chrono::seconds(30));
    if (!r) return fail(r.error());
    return {};
  };
  kafka::Relay relay(**store, **producer, relay_options, registry);
  relay.start();
  health.add_check("relay", [&relay] { return relay.health(); });

  // RRI^I12 answers to HL7 clinics: queued by every commit that changes one of their referrals,
  // sent until acknowledged.
  hl7v2::ClinicReturnSender clinic_returns(**store, cfg.mllp.hl7, registry);
  clinic_returns.start();
  // The closed-loop measures, from the stored timelines, current on every scrape.
  ReferralMetrics referral_metrics(**store, registry,
                                   {cfg.measures.window, cfg.measures.min_cell, {}});
  hl7v2::ClinicReturns returns_observer(
      cfg.mllp.hl7, cfg.gateway_id,
      [&store](const std::string& id) -> std::optional<pipeline::ReferralState> {
        auto r = (*store)->find_referral({id, "", "", ""});
        if (!r || !*r) return std::nullopt;
        return **r;
      },
      [&clinic_returns] { clinic_returns.wake(); });
  // Agencies' FHIR Subscriptions: notifications queued by every commit that changes one of their
  // referrals, POSTed to their rest-hook endpoints until taken (started once HTTP is bound).
  fhir::DeliveryOptions subscription_delivery;
  subscription_delivery.base = cfg.fhir.base_url;
  subscription_delivery.retry = {
      cfg.fhir.subscriptions.initial_backoff, cfg.fhir.subscriptions.max_backoff,
      cfg.fhir.subscriptions.max_attempts, cfg.fhir.subscriptions.give_up_after};
  subscription_delivery.timeout = cfg.fhir.subscriptions.timeout;
  subscription_delivery.ca_file = cfg.fhir.subscriptions.ca_file;
  fhir::SubscriptionSender subscription_sender(**store, **store, subscription_delivery, registry);
  pipeline::SubscriptionNotices subscription_notices(
      [&subscription_sender] { subscription_sender.wake(); });
  // The one commit path: every commit, whatever makes it, queues the RRI^I12 answers it owes HL7
  // clinics and the notifications it owes agencies' Subscriptions, then (once durable) wakes the
  // relay and feeds the referral measures.
  // Every change and every disclosure it commits is recorded in the audit trail, in the same
  // transaction (pipeline/audit_observer.hpp).
  pipeline::AuditObserver audit_observer;
  pipeline::ObservedCommitPort returns_port(**store, {&returns_observer, &subscription_notices,
                                                      &audit_observer, &relay, &referral_metrics});

  // /metrics renders on the store threads: the referral measures (and the outbox's age) read it.
  // The ops and admin roles (ops.token, admin.token, ops/admin parties' certificates): /ops/api,
  // the dashboard and, in production, /metrics, whose equity series are the families' groups.
  auto ops_access = ops::OpsAccess::from_config(cfg);
  if (!ops_access) return startup_failed("ops", ops_access.error());
  if (!cfg.dev_mode() && !ops_access->configured()) {
    log::warn("ops.not_configured",
              {{"detail",
                "no ops.token, admin.token or ops/admin party with a certificate: "
                "/metrics, /ops/api and the dashboard answer 403"}});
  }
  ops::MetricsUpdate metrics_update{
      [&referral_metrics] { referral_metrics.update(); }, &store_threads, {}};
  if (!cfg.dev_mode()) {
    metrics_update.access = [&gate = *ops_access](const http::Request& req) {
      return gate.refuse(req, ops::OpsRole::kOps);
    };
  }
  ops::add_ops_routes(router, health, registry, build, started, std::move(metrics_update));

  // Agencies' updates on Kafka: applied to their referrals, offsets committed after the store.
  auto event_schemas = events::SchemaCatalog::load(cfg.schemas_dir / "events");
  if (!event_schemas) return startup_failed("schemas", event_schemas.error());
  // Each agency writes its updates to its own topic, whose owner is who wrote them; the shared
  // topic, where the payload names the agency, is read in dev mode only.
  std::map<std::string, std::string> update_topic_owners;
  std::vector<std::string> update_topics;
  if (cfg.dev_mode()) update_topics.push_back(cfg.kafka.topics.referral_updates);
  for (const auto& a : mapping_setup->routing->agencies()) {
    update_topic_owners[a.update_topic] = a.id;
    update_topics.push_back(a.update_topic);
  }
  ReferralUpdates referral_updates(**store, **store, returns_port, store_threads, **event_schemas,
                                   cfg.gateway_id, cfg.kafka.topics, update_topic_owners);
  auto update_consumer = kafka::UpdateConsumer::create(
      cfg.kafka, bootstrap, cfg.kafka.consumer_group, update_topics,
      [&referral_updates](const kafka::UpdateRecord& r) { return referral_updates.handle(r); },
      registry);
  if (!update_consumer) return startup_failed("kafka", update_consumer.error());
  (*update_consumer)->start();
  health.add_check("referral_updates", [c = update_consumer->get()] { return c->health(); });

  asio::io_context ioc(cfg.runtime.io_threads);
  // What ingest commits through: the store, or (delivery.ack=delivered) the store and then
  // Kafka's acknowledgement.
  std::unique_ptr<pipeline::DeliveredAckPort> delivered_port;
  pipeline::CommitPort* commit_port = &returns_port;
  if (cfg.delivery.ack == "delivered") {
    delivered_port = std::make_unique<pipeline::DeliveredAckPort>(returns_port, **store,
                                                                  cfg.delivery.delivered_timeout);
    commit_port = delivered_port.get();
  }
  log::info("delivery.ack_policy",
            {{"ack", cfg.delivery.ack},
             {"detail", cfg.delivery.ack == "delivered"
                            ? "positive answers wait for Kafka's acknowledgement"
                            : "positive answers follow the durable local commit"}});
  // Routing for referrals that name no agency, and every agency's topic: the same for HL7 and FHIR.
  const auto routing = mapping_setup->routing;
  const auto agency_topic = [routing, &cfg](std::string_view agency) -> std::string {
    const auto* a = routing->agency(agency);
    return a != nullptr ? std::string(a->topic_or(cfg.kafka.topics.referral))
                        : cfg.kafka.topics.referral;
  };
  const mapping::RouteLookup route = [routing, crosswalk = mapping_setup->zip_counties](
                                         std::string_view category,
                                         const mapping::RoutingKeys& keys) {
    return routing->choose(category, keys, crosswalk.get());
  };

  // Who each party is: a clinic's messages and an agency's answers count as the party their
  // connection proves to be.
  const identity::Parties parties(cfg.parties, cfg.dev_mode());
  if (cfg.parties.empty()) {
    log::warn("parties.none",
              {{"detail", cfg.dev_mode()
                              ? "no parties configured: an HL7 message's MSH-3^MSH-4 names its "
                                "clinic or agency (dev mode only); configure parties before "
                                "clinics and agencies connect"
                              : "no parties configured: every HL7 screening, referral and "
                                "RRI^I12 over MLLP is refused"}});
  }
  identity::RateLimits rate_limits(cfg.rate_limits);
  hl7v2::Hl7PipelineOptions hl7_options;
  hl7_options.parties = &parties;
  hl7_options.rate_limits = &rate_limits;
  hl7_options.throughput = &throughput;
  hl7_options.gateway_id = cfg.gateway_id;
  hl7_options.topics = cfg.kafka.topics;
  hl7_options.hl7 = cfg.mllp.hl7;
  hl7_options.referrals = store->get();
  hl7_options.store_executor = &store_threads;
  hl7_options.resources = store->get();
  hl7_options.route = route;
  hl7_options.agency_topic = agency_topic;
  hl7_options.refer_from_screening = cfg.referrals.from_screening;
  // One open referral per child and need: a screening asking again opens no second one.
  const auto open_referral_for = [&store](std::string_view patient,
                                          std::string_view category) -> std::optional<std::string> {
    auto found = (*store)->open_referral_for(patient, category);
    return found ? *found : std::nullopt;
  };
  hl7_options.open_referral_for = open_referral_for;
  hl7v2::Hl7Pipeline hl7_handler(screening_mapper, *commit_port, hl7_options, registry);

  auto fhir_options = fhir::api_options(cfg);
  if (!fhir_options) return startup_failed("fhir", fhir_options.error());
  fhir_options->software_version = build.version;
  fhir_options->agency_topic = agency_topic;
  fhir_options->route = route;
  fhir_options->open_referral_for = open_referral_for;
  fhir_options->store_executor = &store_threads;
  fhir_options->rate_limits = &rate_limits;
  fhir_options->subscriptions = true;
  fhir_options->audit = store->get();
  fhir_options->audit_events =
      cfg.admin.token.configured() ||
      std::any_of(cfg.parties.begin(), cfg.parties.end(), [](const config::PartyConfig& p) {
        return p.kind == "admin" && !p.certificate_subject.empty();
      });
  fhir_options->throughput = &throughput;
  fhir_options->find_referral =
      [&store](const std::string& referral_id) -> std::optional<pipeline::ReferralState> {
    auto row = (*store)->find_referral({referral_id, "", "", ""});
    if (!row || !*row) return std::nullopt;
    return **row;
  };
  // SMART Backend Services: the token endpoint, and the access tokens the FHIR API takes.
  net::ClientTlsOptions jwks_tls_options;
  jwks_tls_options.ca_file = cfg.smart.jwks_ca_file;
  auto jwks_tls = net::make_client_tls_context(jwks_tls_options, "smart.jwks_ca_file");
  if (!jwks_tls) return startup_failed("smart", jwks_tls.error());
  auth::SmartOptions smart_options;
  smart_options.smart = cfg.smart;
  smart_options.fhir_base_url = cfg.fhir.base_url;
  smart_options.parties = cfg.parties;
  // Called on a store thread (a token request, a FHIR request): the fetch runs on the I/O
  // threads and this thread waits for it, bounded by smart.jwks_timeout.
  smart_options.fetch = [&ioc, tls = *jwks_tls, timeout = cfg.smart.jwks_timeout](
                            const std::string& url) -> Result<std::string> {
    auto parsed = net::HttpUrl::parse(url, "jwks_url");
    if (!parsed) return fail(parsed.error());
    auto done = asio::co_spawn(
        ioc,
        net::http_get(ioc.get_executor(), *parsed, {{"Accept", "application/json"}}, timeout, tls),
        asio::use_future);
    if (done.wait_for(timeout + std::chrono::seconds(1)) != std::future_status::ready)
      return fail(Error::unavailable("no answer in time"));
    auto got = done.get();
    if (!got.status) return fail(Error::unavailable(got.error));
    if (*got.status != 200)
      return fail(Error::unavailable("answered HTTP " + std::to_string(*got.status)));
    return std::move(got.body);
  };
  auto smart = auth::SmartAuthority::create(std::move(smart_options), **store, &registry);
  if (!smart) return startup_failed("smart", smart.error());
  (*smart)->add_routes(router, &store_threads);
  if ((*smart)->active()) {
    fhir_options->tokens = smart->get();
    fhir_options->token_endpoint = [a = smart->get()](std::string_view base) {
      return a->token_endpoint(base);
    };
  }
  if (cfg.fhir.clients.empty() && !(*smart)->active()) {
    log::warn("fhir.development_client",
              {{"detail",
                "no fhir.clients configured: every FHIR request is accepted as the development "
                "client \"dev\" (clinic and agency); configure clients before real data arrives"}});
  }
  fhir::Api fhir_api(screening_mapper, *commit_port, **store, std::move(*fhir_options), registry);
  fhir_api.add_routes(router);
  fhir::SubscriptionApiOptions subscription_options;
  subscription_options.authenticate = [&fhir_api](const http::Request& req) {
    return fhir_api.authenticate(req);
  };
  subscription_options.base_url = [&fhir_api](const http::Request& req) {
    return fhir_api.base_url(req);
  };
  subscription_options.dev_mode = cfg.dev_mode();
  subscription_options.store_executor = &store_threads;
  subscription_options.wake_sender = [&subscription_sender] { subscription_sender.wake(); };
  fhir::SubscriptionApi subscription_api(**store, std::move(subscription_options), registry);
  subscription_api.add_routes(router);

  // Dead letters are replayed through the live pipelines, from /admin and /ops/api alike.
  const auto replayer = message_replayer(fhir_api, screening_mapper, hl7_options, returns_port);
  auto admin_token = ops::resolve_token(cfg.admin.token, "admin.token");
  if (!admin_token) return startup_failed("admin", admin_token.error());
  const auto admin_access = identity::AdminAccess::from_config(cfg, *admin_token);
  if (admin_access.configured()) {
    add_admin_routes(router, **store, admin_access, replayer, store->get(), &store_threads);
    fhir::add_audit_routes(
        router, **store,
        {&admin_access, [&fhir_api](const http::Request& req) { return fhir_api.base_url(req); },
         &store_threads});
    log::info("admin.enabled", {{"routes", "/admin/dead-letters, /fhir/AuditEvent"}});
  }
  // The audit chain's head, anchored outside the store (Kafka and the log) every
  // audit.anchor_interval; retention prunes anchor themselves.
  Periodic anchor_schedule(ioc, store_threads, cfg.audit.anchor_interval,
                           [&store]() -> asio::awaitable<void> {
                             if (auto a = (*store)->anchor_audit(); !a) {
                               log::warn("audit.anchor_failed", {{"reason", a.error().message}});
                             }
                             co_return;
                           });
  anchor_schedule.start();
  // The ops API and the dashboard, behind the same gate.
  {
    ops::OpsApiSources sources;
    sources.access = &*ops_access;
    sources.health = &health;
    sources.build = build;
    sources.mode = cfg.mode;
    sources.started = started;
    sources.throughput = &throughput;
    sources.delivery_lag = &delivery_lag;
    sources.outbox = store->get();
    sources.kafka = [p = producer->get(), bootstrap, embedded = cfg.embedded_kafka()] {
      const auto h = p->health();
      return ops::KafkaState{h.ok, bootstrap, embedded, h.ok ? std::string() : h.detail};
    };
    sources.reads = store->get();
    sources.dead_letters = store->get();
    sources.audit = store->get();
    sources.replay_message = replayer;
    sources.store_threads = &store_threads;
    ops::add_ops_api_routes(router, std::move(sources));
  }
  // Each agency's SLA: routing's, else referrals.default_sla.
  const measures::SlaLookup sla_of = [&cfg,
                                      routing = mapping_setup->routing](std::string_view agency) {
    const auto* a = routing->agency(agency);
    return a != nullptr ? a->sla_or(cfg.referrals.default_sla) : cfg.referrals.default_sla;
  };
  // The measures' JSON for the dashboard and tools/report, behind the same gate (ops reads).
  ops::MeasuresRouteOptions measures_routes;
  measures_routes.store = store->get();
  measures_routes.store_threads = &store_threads;
  measures_routes.window = cfg.measures.window;
  measures_routes.min_cell = cfg.measures.min_cell;
  measures_routes.sla = sla_of;
  measures_routes.access = [&gate = *ops_access](const http::Request& req) {
    return gate.refuse(req, ops::OpsRole::kOps);
  };
  ops::add_measures_routes(router, std::move(measures_routes));
  ops::add_ui_routes(router, ops::ui_files());
  if (ops_access->open()) {
    log::warn("ops.open", {{"detail",
                            "no ops.token or admin.token configured: /ops/api and /ui are open to "
                            "anyone who reaches the HTTP listener (dev mode only)"}});
  }

  // Referrals their agency leaves unanswered past its SLA: one overdue event each.
  OverdueCheck overdue(**store, **store, returns_port, cfg.gateway_id, cfg.kafka.topics, sla_of,
                       shortest_sla(*mapping_setup->routing, cfg.referrals.default_sla), registry);
  // It reads the store: on the store threads, every overdue_check_interval.
  Periodic overdue_schedule(ioc, store_threads, cfg.referrals.overdue_check_interval,
                            [&]() -> asio::awaitable<void> { co_await overdue.run_once(); });
  overdue_schedule.start();

  http::Server http_server(ioc, cfg.http, router, registry);
  hl7v2::MllpServer mllp_server(ioc, cfg.mllp, hl7_handler, registry);
  auto http_address = http_server.bind();
  if (!http_address) return startup_failed("http", http_address.error());
  auto mllp_address = mllp_server.bind();
  if (!mllp_address) return startup_failed("mllp", mllp_address.error());
  health.add_check("http", [a = *http_address] {
    return ops::CheckState{true, "listening on " + a};
  });
  health.add_check("mllp", [a = *mllp_address] {
    return ops::CheckState{true, "listening on " + a};
  });
  http_server.start();
  mllp_server.start();
  // Notifications name the gateway's FHIR base: fhir.base_url, else this listener.
  if (cfg.fhir.base_url.empty() && !cfg.dev_mode()) {
    log::warn(
        "fhir.subscription_base_url",
        {{"detail",
          "fhir.base_url is not set: Subscription notifications name this listener's address, "
          "which agencies may not reach; set the URL they use"}});
  }
  subscription_sender.start(cfg.fhir.base_url.empty()
                                ? std::string(cfg.http.tls.enabled() ? "https://" : "http://") +
                                      *http_address + "/fhir"
                                : cfg.fhir.base_url);

  // SIGHUP: the listeners load their TLS certificates and keys again (a renewed certificate
  // takes effect without a restart); open connections keep theirs, and a file that fails to
  // load leaves the one in use.
  asio::signal_set reload_signal(ioc, SIGHUP);
  auto& tls_reloads = registry.counter(
      "sdoh_tls_reloads_total",
      "TLS certificate reloads on SIGHUP, by listener and outcome (ok, failed: the previous "
      "certificate stays in use).",
      {"listener", "outcome"});
  std::function<void(const boost::system::error_code&, int)> on_reload =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        for (auto [name, reload] :
             {std::pair{"http", std::function([&] { return http_server.reload_tls(); })},
              std::pair{"mllp", std::function([&] { return mllp_server.reload_tls(); })}}) {
          auto done = reload();
          tls_reloads.with({name, done ? "ok" : "failed"}).inc();
          // An admin action: recorded in the audit trail, with its outcome.
          asio::co_spawn(
              ioc,
              [&store, listener = std::string(name), ok = bool(done),
               detail = done ? std::string() : done.error().message]() -> asio::awaitable<void> {
                if (auto r = co_await record_certificate_reload(**store, listener, ok, detail); !r)
                  log::warn("audit.record_failed", {{"reason", r.error().message}});
              },
              asio::detached);
          if (done) {
            log::info("tls.reloaded", {{"listener", name}});
          } else {
            log::error("tls.reload_failed", {{"listener", name},
                                             {"key", done.error().where.expression},
                                             {"reason", done.error().message}});
          }
        }
        reload_signal.async_wait(on_reload);
      };
  reload_signal.async_wait(on_reload);

  // SIGTERM/SIGINT: stop accepting, let in-flight messages finish (bounded), then stop.
  // A second signal stops at once.
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  std::atomic<bool> forced{false};  // set on any I/O thread, read after they have stopped
  auto drain = [&](int signo) -> asio::awaitable<void> {
    health.set_draining();
    (*update_consumer)->stop();
    overdue_schedule.stop();
    anchor_schedule.stop();
    clinic_returns.stop();
    subscription_sender.stop();
    log::info("gateway.draining",
              {{"signal", signo},
               {"timeout_ms", static_cast<std::int64_t>(cfg.runtime.drain_timeout.count())}});
    http_server.stop();
    mllp_server.stop();
    boost::system::error_code ignored;
    reload_signal.cancel(ignored);
    const auto deadline = std::chrono::steady_clock::now() + cfg.runtime.drain_timeout;
    asio::steady_timer timer(ioc);
    while ((http_server.open_connections() > 0 || mllp_server.open_connections() > 0) &&
           std::chrono::steady_clock::now() < deadline) {
      timer.expires_after(std::chrono::milliseconds(20));
      co_await timer.async_wait(asio::use_awaitable);
    }
    if (http_server.open_connections() > 0 || mllp_server.open_connections() > 0) {
      forced = true;
      log::warn("gateway.drain_timeout", {{"http_open", http_server.open_connections()},
                                          {"mllp_open", mllp_server.open_connections()}});
    }
    ioc.stop();
  };
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    asio::co_spawn(ioc, drain(signo), asio::detached);
    signals.async_wait([&](const boost::system::error_code& ec2, int) {
      if (ec2) return;
      log::warn("gateway.forced_stop", {});
      forced = true;
      ioc.stop();
    });
  });

  RuntimeInfo info;
  info.pid = static_cast<long>(getpid());
  info.version = build.version;
  info.gateway_id = cfg.gateway_id;
  info.mode = cfg.mode;
  info.started_at = events::now_rfc3339();
  info.http_address = *http_address;
  info.http_tls = cfg.http.tls.enabled();
  info.mllp_address = *mllp_address;
  info.mllp_tls = cfg.mllp.tls.enabled();
  info.kafka_bootstrap = bootstrap;
  info.kafka_embedded = cfg.embedded_kafka();
  if (auto r = write_runtime_file(runtime_file, info); !r)
    return startup_failed("data_dir", r.error());
  log::info("gateway.ready", {{"http", *http_address},
                              {"mllp", *mllp_address},
                              {"kafka", bootstrap},
                              {"runtime_file", runtime_file.string()}});

  std::vector<std::thread> threads;
  for (int i = 1; i < cfg.runtime.io_threads; ++i)
    threads.emplace_back([&ioc] {
      name_this_thread("io");
      ioc.run();
    });
  ioc.run();
  for (auto& t : threads)
    t.join();
  // Work still on the store threads finishes before the io_context it resumes on is gone.
  store_threads.join();
  // Let completions that are already due (the closed acceptors' aborted accepts, sessions
  // woken by the drain) run to their end instead of being destroyed half-way with the
  // io_context.
  ioc.restart();
  ioc.poll();
  // Commits still queued (a drain that timed out) complete into the stopped io_context, which
  // must still exist when they do.
  (*store)->flush();
  // The final head, anchored before the relay's last flush publishes it.
  if (auto a = (*store)->anchor_audit(); !a)
    log::warn("audit.anchor_failed", {{"reason", a.error().message}});

  // Publish what was committed before exiting (bounded): undelivered events stay in the
  // outbox and are published after the next start, so nothing is lost either way.
  if (!relay.drain(cfg.kafka.flush_timeout)) {
    log::warn("relay.undelivered_at_exit",
              {{"events", (*store)->stats().undelivered},
               {"detail", "kept in the outbox; published after the next start"}});
  }
  std::filesystem::remove(runtime_file, fs_ec);
  log::info("gateway.stopped", {{"forced", forced}});
  log::flush();
  return 0;
}

}  // namespace sdoh::runtime
