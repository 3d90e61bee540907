#pragma once
// The FHIR R4 REST API under /fhir: the routes, and what a FHIR client expects of them.
//
//   POST /fhir                      transaction or batch Bundle
//   POST /fhir/{type}               QuestionnaireResponse, Observation, ServiceRequest, Task,
//                                   Consent, Patient (If-None-Exist: conditional create)
//   GET  /fhir/Task/{id}, /fhir/ServiceRequest/{id}           read (If-None-Match → 304)
//   GET  /fhir/Task/{id}/_history[/{vid}]                     history, vread
//   GET  /fhir/Task?focus=&owner=&status=&patient=&_id=&_count=   searchset Bundle
//   PUT  /fhir/Task/{id}, PATCH /fhir/Task/{id} (JSON Patch)  status updates (If-Match)
//   GET  /fhir/AuditEvent[/{id}]    the audit trail, for an admin (audit_api.hpp)
//   GET  /fhir/metadata             the CapabilityStatement: exactly the above, and the
//                                   Subscription routes (subscription_api.hpp)
//
// HTTP behaviour: application/fhir+json or application/json bodies (XML → 415), `_format`
// and Accept (JSON only; asking for XML alone → 406), 201 with Location (…/_history/{vid}),
// ETag W/"vid" and Last-Modified, Prefer return=minimal|representation|OperationOutcome and
// handling=strict|lenient (searches), 412 on a stale If-Match, 413 over http.max_body_bytes.
// Every error is an OperationOutcome with severity, code and (where it applies) expression.
//
// Every request is committed through pipeline::CommitPort before it is answered (DESIGN.md,
// delivery promise): the inbound record, the resources, the events and, for a refusal, the
// dead letter, in one transaction. A resend gets the original answer and adds nothing.
//
// Clients authenticate with a SMART Backend Services access token (the gateway's own, or a
// party's external issuer's: ApiOptions::tokens), whose scopes are checked per interaction
// (access.hpp), or with a static credential of fhir.clients (a bearer token in dev mode, a TLS
// client certificate's CN). Their party says who they are: clinics post and may cancel their
// referrals; agencies read and move forward the referrals they own (Task.owner). With no
// clients at all (dev mode) every request is the client "dev" with both roles.
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapters/fhir/ingest.hpp"
#include "adapters/fhir/task_change.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/http/message.hpp"
#include "gateway/identity/caller.hpp"
#include "gateway/identity/rate_limits.hpp"
#include "gateway/ops/last_hour.hpp"
#include "gateway/pipeline/audit_port.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/resource_port.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::metrics {
class Registry;
}
namespace sdoh::mapping {
class ScreeningMapper;
}

namespace sdoh::fhir {

struct ApiOptions {
  std::string gateway_id = "sdoh-gateway";
  std::string software_version;
  config::KafkaTopics topics;
  std::string base_url;  ///< absolute; empty: from the request's Host header
  /// (token, client) and (certificate CN, client); both empty and no token verifier active: the
  /// development client.
  std::vector<std::pair<std::string, Client>> token_clients;
  std::vector<std::pair<std::string, Client>> certificate_clients;
  /// Every clinic and agency party as a client (its id, kind, organization, name): who an
  /// operator's replay of a request made with an access token is from.
  std::vector<Client> party_clients;
  /// Access tokens (SMART Backend Services); null: none are accepted. Must outlive the Api.
  const identity::AccessTokenVerifier* tokens = nullptr;
  /// The SMART token endpoint for a FHIR base (the CapabilityStatement's security extension);
  /// empty: the CapabilityStatement names none.
  std::function<std::string(std::string_view fhir_base)> token_endpoint;
  UnknownPatientPolicy unknown_patient = UnknownPatientPolicy::kLinkByReference;
  bool refer_from_screening = true;  ///< IngestContext::refer_from_screening
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  /// The topic for an agency's referrals; empty result: topics.referral.
  std::function<std::string(std::string_view agency_id)> agency_topic;
  /// Routing for referrals that name no agency (IngestContext::route).
  decltype(IngestContext::route) route;
  /// The referral's closed-loop state, for status updates of its Task.
  std::function<std::optional<pipeline::ReferralState>(const std::string& referral_id)>
      find_referral;
  /// IngestContext::open_referral_for.
  decltype(IngestContext::open_referral_for) open_referral_for;
  /// The Subscription routes are served too (SubscriptionApi): the CapabilityStatement lists
  /// them with the topic's canonical.
  bool subscriptions = false;
  /// The AuditEvent routes are served too (audit_api.hpp): the CapabilityStatement lists them.
  bool audit_events = false;
  /// Where interactions are answered (their store reads block): the store executor. Null: on
  /// the listener's executor (unit tests). Must outlive the Api.
  pipeline::StoreExecutor* store_executor = nullptr;
  /// Requests per client (rate_limits); null: none. Must outlive the Api.
  identity::RateLimits* rate_limits = nullptr;
  /// The audit trail: every read, history and search that answers with resources is recorded
  /// (durably) before the answer goes out, and answered 503 when it cannot be. Null: nothing is
  /// recorded (unit tests). Must outlive the Api.
  pipeline::AuditTrail* audit = nullptr;
  /// What senders post (creates, Bundles, Task updates), by client and HTTP status, for the ops
  /// API's last hour; null: not counted. Must outlive the Api.
  ops::Throughput* throughput = nullptr;
};

/// ApiOptions from the configuration: clients with their tokens resolved.
Result<ApiOptions> api_options(const config::GatewayConfig& cfg);

class Api {
 public:
  /// Everything passed must outlive the Api.
  Api(const mapping::ScreeningMapper& mapper, pipeline::CommitPort& commits,
      const pipeline::ResourceReader& resources, ApiOptions options, metrics::Registry& registry);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  /// Adds the /fhir routes and the OperationOutcome error body for server-made errors.
  void add_routes(http::Router& router);

  /// An operator's replay of a refused create or Bundle (a dead letter's sender, message type
  /// and payload), committed through `port`. `earlier_answer`, the answer the request got then,
  /// names the resources it stored: they keep their ids (IngestRequest::earlier_answer). Refused
  /// Task updates are not replayed (kUnsupported): they were made against a version that is no
  /// longer current.
  boost::asio::awaitable<Result<pipeline::CommitOutcome>> replay(std::string sender,
                                                                 std::string message_type,
                                                                 std::string payload,
                                                                 std::string earlier_answer,
                                                                 pipeline::CommitPort& port);

  /// Who a request is from (fhir.clients; the development client without clients), and the
  /// absolute FHIR base URL it reached: for the other /fhir routes (Subscriptions).
  std::expected<Client, Problem> authenticate(const http::Request& req) const;
  std::string base_url(const http::Request& req) const;

  /// The CapabilityStatement served at /fhir/metadata.
  const std::string& capability_statement() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// An RFC 3339 time as an HTTP date (RFC 9110 IMF-fixdate); empty when it cannot be read.
std::string http_date(std::string_view rfc3339);

}  // namespace sdoh::fhir
