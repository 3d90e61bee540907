#pragma once
// /ops/api/v1: the JSON the dashboard (/ui) reads, and anyone else on call — health and
// readiness detail, throughput and ACK codes by sender over the last hour, the outbox and
// delivery lag, Kafka's state, the RRI^I12 queue, dead letters (list, show, replay) and held
// referrals. Versioned: a change that breaks a reader becomes /ops/api/v2. (The referral
// measures, /ops/api/v1/referrals and /ops/api/v1/equity, are measures_routes.)
//
// Every route passes OpsAccess (access.hpp): reads need the ops role, dead-letter payloads and
// replays the admin role. Whatever reads the store runs on the store executor; the rest (health,
// the last hour's counts) is memory and answers on the I/O thread.
#include <chrono>
#include <functional>
#include <string>

#include "gateway/http/message.hpp"
#include "gateway/ops/access.hpp"
#include "gateway/ops/dead_letters.hpp"
#include "gateway/ops/health.hpp"
#include "gateway/ops/last_hour.hpp"
#include "gateway/ops/ops_routes.hpp"
#include "gateway/pipeline/audit_port.hpp"
#include "gateway/pipeline/dead_letter_port.hpp"
#include "gateway/pipeline/ops_port.hpp"
#include "gateway/pipeline/outbox_port.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::ops {

/// Kafka as the producer last saw it (never blocks: its cached state).
struct KafkaState {
  bool connected = false;
  std::string brokers;  ///< bootstrap servers
  bool embedded = false;
  std::string last_error;  ///< empty: none
};

/// What the routes read. Everything must outlive the router; `store_threads` may be null in
/// unit tests (everything then runs on the caller's executor).
struct OpsApiSources {
  const OpsAccess* access = nullptr;
  const Health* health = nullptr;
  BuildInfo build;
  std::string mode;  ///< dev | production
  std::chrono::steady_clock::time_point started;
  const Throughput* throughput = nullptr;
  const DeliveryLag* delivery_lag = nullptr;
  const pipeline::Outbox* outbox = nullptr;
  std::function<KafkaState()> kafka;
  const pipeline::OpsReads* reads = nullptr;
  pipeline::DeadLetters* dead_letters = nullptr;
  /// Where a payload view and a replay are recorded (may be null: nothing recorded).
  pipeline::AuditTrail* audit = nullptr;
  MessageReplayer replay_message;
  pipeline::StoreExecutor* store_threads = nullptr;
};

void add_ops_api_routes(http::Router& router, OpsApiSources sources);

}  // namespace sdoh::ops
