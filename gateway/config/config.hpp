#pragma once
// The gateway's configuration as typed data. Each component's settings are a plain struct
// whose member initialisers are the defaults; `parse_config` starts from these defaults,
// rejects unknown keys, checks types and ranges, and names the key path in every error.
// The keys data_dir, http.listen, mllp.listen and kafka.brokers are part of the runtime
// contract in DESIGN.md; everything else is documented in deploy/config/reference.yaml.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/secret.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::config {

using std::chrono::milliseconds;

/// host:port. Port 0 asks the OS for any free port (tests, parallel instances).
struct ListenAddress {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string to_string() const;
};

/// TLS for a listener. Enabled when cert_file and key_file are set.
struct TlsConfig {
  std::string cert_file;       ///< PEM certificate chain
  std::string key_file;        ///< PEM private key
  SecretRef key_password;      ///< only for an encrypted key
  std::string client_ca_file;  ///< PEM CAs that client certificates must chain to (mTLS)
  bool require_client_cert = false;
  std::string min_version = "1.2";  ///< "1.2" or "1.3"

  bool enabled() const { return !cert_file.empty(); }
};

struct LogConfig {
  std::string level = "info";  ///< trace | debug | info | warn | error
};

struct RuntimeConfig {
  int io_threads = 2;  ///< threads running the Asio io_context
  /// Threads of the store executor (pipeline::StoreExecutor): message decisions and store reads,
  /// off the I/O threads.
  int store_threads = 4;
  milliseconds drain_timeout{10'000};  ///< SIGTERM: longest wait for in-flight work
};

/// An IPv4 or IPv6 network, such as 10.0.0.0/8 or 2001:db8::/32; an address alone is a /32 or
/// /128. Parsed once here; the listeners only match against it.
struct IpNetwork {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  ///< the address as written; IPv4 uses the first 4 bytes
  unsigned prefix = 0;                   ///< leading bits that must match
  std::string text;                      ///< as written, for messages
};

struct HttpConfig {
  ListenAddress listen{"127.0.0.1", 8080};
  TlsConfig tls;
  std::size_t max_body_bytes = 4 * 1024 * 1024;  ///< larger requests get 413
  std::size_t max_header_bytes = 16 * 1024;      ///< larger headers get 431
  /// Keep-alive wait and request read deadline: a whole request (header, body, trailers), however
  /// slowly it trickles in, must arrive within it.
  milliseconds idle_timeout{30'000};
  milliseconds write_timeout{30'000};
  std::size_t max_connections = 1024;  ///< further connections are closed at once
  /// Open connections per client (IP address, or verified client certificate); further ones
  /// from that client are closed at once, so one client cannot take every connection.
  std::size_t max_connections_per_peer = 128;
  /// Load balancers (IP addresses or CIDR networks) whose connections start with a PROXY
  /// protocol v2 header naming the real client; empty: none.
  std::vector<IpNetwork> trusted_proxies;
  /// Production mode: plain HTTP allowed, on a loopback address only, behind a TLS-terminating
  /// proxy on the same machine. Otherwise every production listener is TLS.
  bool insecure_loopback_only = false;
};

/// How the gateway reads one HL7 sender's messages (mllp.hl7.senders).
struct Hl7SenderConfig {
  /// IANA time zone of the sender's clock, for HL7 times without an offset (OBR-7, OBX-14,
  /// RF1-7, MSH-7); empty: mllp.hl7.default_timezone.
  std::string timezone;
  /// con-segment: contact details go into referral events only with a CON segment whose status
  /// is A (active). clinic-policy: the clinic records the family's consent before it refers,
  /// so a REF without CON counts as consented (a CON that says otherwise still wins).
  std::string contact_consent = "con-segment";
  /// Where this clinic takes RRI^I12 answers about its referrals ("host:port", MLLP); empty:
  /// none are sent (the clinic reads GET /fhir/Task/{id}). Sent until the clinic ACKs them.
  std::string return_address;
  /// PEM CA file: send over TLS, verifying the clinic's certificate; empty: plain TCP.
  std::string return_ca_file;
};

struct Hl7Config {
  /// IANA time zone for HL7 times without an offset from senders not listed below; empty:
  /// such times become dates (their instant is unknown).
  std::string default_timezone;
  /// By sender "MSH-3^MSH-4" (e.g. "EHR^PEDS_CLINIC_A") or by facility "MSH-4".
  std::map<std::string, Hl7SenderConfig> senders;
};

struct MllpConfig {
  ListenAddress listen{"127.0.0.1", 2575};
  TlsConfig tls;
  /// Production mode: plain MLLP allowed, on a loopback address only (a local TLS terminator such
  /// as stunnel in front). Otherwise every production listener is TLS.
  bool insecure_loopback_only = false;
  std::size_t max_frame_bytes = 1024 * 1024;  ///< larger frames are refused, connection closed
  milliseconds idle_timeout{300'000};         ///< a connection silent this long is closed
  /// A frame must be complete this long after its first byte (or the first stray byte after the
  /// previous frame), however its bytes trickle in; else the connection is closed.
  milliseconds frame_timeout{30'000};
  milliseconds write_timeout{30'000};
  std::size_t max_connections = 256;
  std::size_t max_connections_per_peer = 32;  ///< as http.max_connections_per_peer
  std::vector<IpNetwork> trusted_proxies;     ///< as http.trusted_proxies
  Hl7Config hl7;
};

struct KafkaTopics {
  std::string screening = "sdoh.screening.v1";
  std::string referral = "sdoh.referral.v1";
  std::string referral_status = "sdoh.referral-status.v1";
  std::string deadletter = "sdoh.deadletter.v1";
  std::string referral_updates = "sdoh.referral-updates.v1";
  /// The audit trail's chain heads (org.sdoh.audit.anchor.v1), anchored outside the store.
  std::string audit_anchors = "sdoh.audit-anchors.v1";
  /// Every topic the gateway creates on the embedded broker, in a stable order.
  std::vector<std::string> all() const;
};

/// A librdkafka property value: literal text, or a secret read from env/file.
struct KafkaProperty {
  std::string value;
  SecretRef secret;
};

/// What every topic the gateway needs is created with (tools/kafka-provision, and the gateway
/// itself with kafka.provision_topics): real clusters only; the embedded broker uses partitions.
struct KafkaTopicDefaults {
  int partitions = 3;
  int replication_factor = 3;
  int min_insync_replicas = 2;                         ///< acks=all waits for this many replicas
  milliseconds retention{std::chrono::hours(24 * 7)};  ///< retention.ms; 0: keep forever (-1)
};

struct KafkaConfig {
  std::string brokers;  ///< empty: start the embedded in-memory dev broker
  std::string client_id = "sdoh-gateway";
  /// The consumer group that reads agencies' updates (topics.referral_updates); every gateway
  /// instance of one deployment shares it.
  std::string consumer_group = "sdoh-gateway";
  KafkaTopics topics;
  /// The gateway's Kafka principal, for the ACLs tools/kafka-provision prints.
  std::string principal = "User:sdoh-gateway";
  KafkaTopicDefaults topic_defaults;
  /// Create missing topics at start through the Admin API (CreateTopics), with topic_defaults.
  /// Real clusters only: the embedded broker creates its topics itself.
  bool provision_topics = false;
  int partitions = 3;                     ///< partitions per topic on the embedded broker
  int embedded_brokers = 1;               ///< brokers in the embedded cluster
  milliseconds metadata_interval{5'000};  ///< how often readiness re-checks broker metadata
  milliseconds metadata_timeout{2'000};
  milliseconds flush_timeout{5'000};  ///< longest wait for outstanding deliveries at shutdown
  std::map<std::string, KafkaProperty> properties;  ///< passed to librdkafka as they are
};

struct StoreConfig {
  std::string path = "gateway.db";  ///< relative paths are inside data_dir
  /// PostgreSQL instead of the SQLite file at `path`, for several gateways on one database:
  /// libpq's URI, postgresql://user@host:port/database?sslmode=verify-full. Empty: SQLite.
  std::string url;
  SecretRef password;  ///< the database user's password ({env: NAME} or {file: PATH})
  /// PostgreSQL: how long a gateway's relay lease on an outbox bucket lasts unless renewed; the
  /// buckets of a gateway that died are taken over by the others after this long.
  milliseconds lease{std::chrono::seconds(10)};
  std::string synchronous =
      "full";  ///< full | normal (normal can lose the last commits on power loss)
  /// Delivered outbox events are deleted this long after Kafka acknowledged them.
  milliseconds delivered_retention{std::chrono::hours(24 * 7)};
  /// Received message bytes are kept this long (dead letters' bytes until they are replayed).
  milliseconds payload_retention{std::chrono::hours(24 * 30)};
  /// Inbound records (resend dedupe and the original answers) are kept this long.
  milliseconds dedupe_window{std::chrono::hours(24 * 30)};
  /// Replayed dead letters are deleted this long after their replay.
  milliseconds dead_letter_retention{std::chrono::hours(24 * 30)};
  /// FHIR resources are deleted this long after their last update, except referral Tasks that
  /// are still open (requested, received, accepted, in-progress, on-hold): those never expire.
  /// Closed referrals' states (rejected, completed, failed, cancelled) are deleted this long
  /// after their last change. Earlier versions of a resource follow payload_retention.
  milliseconds resource_retention{std::chrono::hours(24 * 90)};
  /// Referral timelines (the closed-loop measures' history) are deleted this long after their
  /// referral closed. Not a key of its own: measures.window sets it.
  milliseconds timeline_retention{std::chrono::hours(24 * 395)};
  milliseconds prune_interval{60'000};  ///< how often retention is applied
  /// Overload: while the outbox holds more undelivered events than this (or more bytes than
  /// max_backlog_bytes), e.g. during a long Kafka outage, new messages are refused at once
  /// (HTTP 503 + Retry-After, MLLP AE/CE with ERR 207) and /readyz says why, so the disk and
  /// the process stay bounded. 0: no limit.
  std::int64_t max_backlog_events = 1'000'000;
  std::int64_t max_backlog_bytes = std::int64_t{2} * 1024 * 1024 * 1024;
  /// Commits waiting for the writer thread; further ones are refused at once (as above), so
  /// a slow disk cannot make queued messages fill memory.
  std::size_t max_queued_commits = 4096;
};

/// Limits on every JSON input (HTTP bodies, Kafka records, data files).
struct JsonConfig {
  std::size_t max_depth = 64;  ///< deeper nesting is refused (FHIR needs fewer than 64 levels)
};

/// When a sender gets its positive answer.
struct DeliveryConfig {
  /// committed: after the local durable commit (default). delivered: only after Kafka
  /// acknowledged every event derived from the message (acks=all).
  std::string ack = "committed";
  /// delivered mode: the longest wait for Kafka before answering negatively (the sender
  /// retries; its resend is answered positively once the events are delivered).
  milliseconds delivered_timeout{10'000};
};

/// Operator routes under /admin (dead letters: list, show, replay). Off unless a token is set.
struct AdminConfig {
  SecretRef token;  ///< bearer token the admin routes require
};

/// The ops API and dashboard (/ops/api, /ui): the token of the `ops` role, which reads everything
/// there (like /metrics); admin.token is the `admin` role, which may also read dead-letter
/// payloads and replay them. Without either, only dev mode serves /ops/api (open).
struct OpsConfig {
  SecretRef token;  ///< bearer token of the ops role
};

/// One FHIR API client with a static credential: a bearer token (mode: dev only) or the subject
/// CN of its TLS client certificate (http.tls.client_ca_file). Who it is (clinic or agency, its
/// organization) comes from the party it names; production clients use SMART Backend Services
/// instead (parties.<id>.smart_clients).
struct FhirClientConfig {
  std::string id;              ///< the key under fhir.clients: dedupe scope, logs, updatedBy
  SecretRef token;             ///< Authorization: Bearer <token> (dev mode only)
  std::string certificate_cn;  ///< or the client certificate's subject CN
  std::string party;           ///< parties.<party>: its kind is the client's role
};

/// Agencies' FHIR Subscriptions (rest-hook): how their notifications are delivered.
struct SubscriptionsConfig {
  /// The delay after the first failed delivery, doubling (less up to a quarter at random) to
  /// at most max_backoff.
  milliseconds initial_backoff{1'000};
  milliseconds max_backoff{300'000};
  /// A Subscription goes to status error after this many failed deliveries in a row, or once
  /// its deliveries have failed for give_up_after; its notifications are kept.
  int max_attempts = 10;
  milliseconds give_up_after{std::chrono::hours(24)};
  milliseconds timeout{10'000};  ///< one POST: connect, TLS, send, answer
  /// PEM CAs that https endpoints' certificates must chain to; empty: the system's trust store.
  std::string ca_file;
};

/// The FHIR R4 API under /fhir.
struct FhirConfig {
  /// The absolute base URL clients use ("https://gw.example.org/fhir") for Location and
  /// Bundle links; empty: built from the request's Host header.
  std::string base_url;
  /// Clients with static credentials. With none of these, no SMART client and no external
  /// issuer, every request is the development client "dev" with both roles (dev mode only).
  std::vector<FhirClientConfig> clients;
  /// A screening about a Patient the gateway does not know and that names no identifier:
  /// link-by-reference (keep it, pseudonymised by the reference; warn) or reject (422).
  std::string unknown_patient = "link-by-reference";
  SubscriptionsConfig subscriptions;
};

/// The audit trail (README "Audit trail").
struct AuditConfig {
  /// Records older than this are pruned (the chain stays verifiable: the prune is anchored).
  /// Default 6 years, the HIPAA documentation retention (§164.316(b)(2)).
  milliseconds retention{std::chrono::hours(24 * (365 * 6 + 2))};
  /// How often the chain's head is anchored (Kafka sdoh.audit-anchors.v1 and the log).
  milliseconds anchor_interval{std::chrono::hours(1)};
};

/// The closed loop's timing.
struct ReferralsConfig {
  /// How long an agency has to receive or accept a referral before it is overdue, when its
  /// routing entry names no SLA of its own.
  milliseconds default_sla{std::chrono::hours(72)};
  milliseconds overdue_check_interval{60'000};  ///< how often overdue referrals are looked for
  /// A screening whose family asked for help with a need (assistanceRequested true) opens a
  /// referral for it, routed by need, area and age, unless the clinic refers for that need in
  /// the same request.
  bool from_screening = true;
  /// The ZIP-to-county crosswalk routing uses when a referral gives a ZIP but no county (every
  /// FHIR referral; HL7 without PID-11.9/PID-12): schemas/README.md, "ZIP to county". Empty:
  /// <schemas_dir>/geo/zcta-county.csv.
  std::filesystem::path zip_county_file;
  /// The routing (agencies and routes), checked against <schemas_dir>/routing/routing.schema.json.
  /// Empty: <schemas_dir>/routing/routing.json, the shipped example (refused in production).
  std::filesystem::path routing_file;
};

/// The closed-loop measures (/metrics, /ops/api/v1/referrals and /equity, tools/report).
struct MeasuresConfig {
  /// How far back the measures look, and how long a referral's timeline is kept after it
  /// closed (its Task may be pruned earlier, by store.resource_retention). 13 months: a year of
  /// referrals, each with a month to close.
  milliseconds window{std::chrono::hours(24 * 395)};
  /// Groups of families (race, ethnicity, language, 3-digit ZIP) with fewer referrals than this
  /// are suppressed: their figures are not shown (CMS cell-size rule: no cell under 11).
  int min_cell = 11;
};

/// Mapping screenings to events (mapping.*).
struct MappingConfig {
  /// Whether a positive domain counts as the family's request for help, for screenings whose
  /// instrument has no help question of its own or whose help question was not answered:
  /// "none" (the default: only the family's own answer, or a referral the clinic sends, opens a
  /// referral) or "positive-domain" (the clinic's policy: it asks about help in the visit and
  /// screens positive only families who want it).
  std::string assistance_policy = "none";
  /// The same per sender (HL7 "MSH-3^MSH-4", FHIR client id), overriding the default.
  std::map<std::string, std::string> assistance_policy_by_sender;
};

/// A SMART Backend Services client of a party (parties.<id>.smart_clients.<client_id>): it
/// authenticates at the token endpoint with a private_key_jwt assertion (RFC 7523) signed by one
/// of its keys, and gets short-lived access tokens for at most `scopes`.
struct SmartClientConfig {
  std::string client_id;  ///< the key: the assertion's iss and sub
  /// Where its public keys are (exactly one): a JWKS as JSON text (inline), a file, or a URL
  /// fetched again when an unknown kid arrives (at most every smart.jwks_refetch_interval).
  std::string jwks_json;
  std::string jwks_file;
  std::string jwks_url;
  /// SMART v2 (or v1) system scopes it may be granted: "system/Task.rus", "system/*.cruds".
  std::vector<std::string> scopes;
};

/// An organisation's own authorization server whose access tokens the gateway accepts for a
/// party (parties.<id>.external_issuer).
struct ExternalIssuerConfig {
  std::string issuer;    ///< the tokens' iss, exactly
  std::string jwks_url;  ///< its signing keys
  std::string audience;  ///< what the tokens' aud must name (this gateway's FHIR base URL)
  std::vector<std::string> scopes;  ///< the most its tokens may grant; empty: nothing
  bool configured() const { return !issuer.empty(); }
};

/// One party the gateway deals with (parties.<id>): a clinic that sends, an agency that answers
/// about its referrals, or the operators (ops, admin). Who a connection or a request is comes
/// from here, never from what a message says about itself: an agency's RRI^I12 over MLLP is
/// accepted only from a connection that is that agency, a FHIR request only with a credential
/// of the party.
struct PartyConfig {
  std::string id;               ///< the key: an agency's id as routing names it; a clinic's id
  std::string kind = "agency";  ///< clinic | agency | ops | admin
  /// clinic: its facility id (events' facility and requester); agency: the agency id its Tasks'
  /// owner names ("Organization/<id>"). Default: the party id.
  std::string organization;
  std::string name;  ///< display name (facility.name); default: the party id
  /// "MSH-3^MSH-4" or "MSH-4" values its HL7 messages carry (in dev mode, enough by themselves).
  std::vector<std::string> mllp_senders;
  /// The subject of its TLS client certificate, as OpenSSL prints it one line
  /// ("/C=US/O=Early Start/CN=ehv-durham"), or just its CN; proves the connection in production.
  std::string certificate_subject;
  /// Or the networks its connections come from (after PROXY v2), for a party without mTLS.
  std::vector<IpNetwork> source_addresses;
  /// An agency's Kafka principal (tools/kafka-provision's ACLs); empty: "User:<id>".
  std::string kafka_principal;
  std::vector<SmartClientConfig> smart_clients;  ///< SMART Backend Services clients
  ExternalIssuerConfig external_issuer;          ///< or tokens of its own authorization server
};

/// SMART Backend Services: the token endpoint and how tokens and assertions are checked.
struct SmartConfig {
  /// The token endpoint's URL as clients address it: assertions' aud must equal it. Empty: the
  /// FHIR base URL (fhir.base_url) with its last "/fhir" replaced by "/auth/token"; in dev mode
  /// without fhir.base_url, built from the request's Host header.
  std::string token_endpoint;
  std::chrono::seconds access_token_lifetime{300};  ///< the tokens the gateway issues
  /// Tolerance for clocks that disagree, on exp, nbf and iat of assertions and tokens.
  std::chrono::seconds clock_skew{60};
  /// An assertion's exp at most this far in the future (SMART: five minutes).
  std::chrono::seconds max_assertion_lifetime{300};
  /// A JWKS URL is fetched again for an unknown kid at most this often.
  milliseconds jwks_refetch_interval{60'000};
  milliseconds jwks_max_age{3'600'000};  ///< a fetched JWKS is fetched again after this long
  milliseconds jwks_timeout{5'000};      ///< one fetch: connect, TLS, answer
  std::string jwks_ca_file;  ///< PEM CAs for https JWKS URLs; empty: the system's trust store
};

/// One token bucket: refilled at per_second, holding at most burst. per_second 0: no limit.
struct RateLimit {
  double per_second = 1000;
  double burst = 2000;
};

/// Requests and messages per party (rate_limits.*): a FHIR client, an MLLP connection's party,
/// else its source address. Over the limit: HTTP 429 with Retry-After, MLLP AE with ERR-3 207.
struct RateLimitsConfig {
  RateLimit default_limit;                   ///< every party without its own
  std::map<std::string, RateLimit> parties;  ///< by party or FHIR client id
};

/// Patient pseudonyms (HMAC-SHA256). The key is required in production.
struct PseudonymConfig {
  SecretRef key;
  /// HL7 assigning authority → the identifier system FHIR senders use for the same register,
  /// so one child gets one pseudonym whichever protocol the clinic used.
  std::map<std::string, std::string> authority_aliases;
};

struct GatewayConfig {
  std::string mode = "dev";  ///< dev | production (production refuses dev-only shortcuts)
  std::string gateway_id = "sdoh-gateway";  ///< names this instance in event sources
  std::filesystem::path data_dir = "var";
  std::filesystem::path schemas_dir = "schemas";  ///< event schemas, mapping tables, privacy data
  LogConfig log;
  RuntimeConfig runtime;
  HttpConfig http;
  MllpConfig mllp;
  KafkaConfig kafka;
  StoreConfig store;
  JsonConfig json;
  DeliveryConfig delivery;
  AdminConfig admin;
  OpsConfig ops;
  PseudonymConfig pseudonym;
  FhirConfig fhir;
  ReferralsConfig referrals;
  MeasuresConfig measures;
  AuditConfig audit;
  MappingConfig mapping;
  std::vector<PartyConfig> parties;
  RateLimitsConfig rate_limits;
  SmartConfig smart;

  bool dev_mode() const { return mode == "dev"; }
  const PartyConfig* party(std::string_view id) const;
  bool embedded_kafka() const { return kafka.brokers.empty(); }
  std::filesystem::path store_path() const;
  /// referrals.zip_county_file, else the shipped crosswalk under schemas_dir.
  std::filesystem::path zip_county_file() const;
  /// referrals.routing_file, else the shipped example under schemas_dir.
  std::filesystem::path routing_file() const;
};

/// One problem found in a config file: the key path ("http.listen") and why.
struct ConfigIssue {
  std::string path;
  std::string message;
  int line = 0;  ///< 1-based line in the file, 0 when unknown
};

/// Every problem found, so an operator fixes them all in one go.
struct ConfigErrors {
  std::string file;
  std::vector<ConfigIssue> issues;
  /// "dev.yaml:12: http.listen: expected host:port, got \"8080\"" lines joined by '\n'.
  std::string to_string() const;
};

/// How far a config is checked beyond its own text.
struct ParseOptions {
  /// The files it names for the listeners (TLS certificates, keys, CAs) must be readable here.
  /// Off for --kafka-provision, which reads a config meant for another machine.
  bool check_tls_files = true;
};

/// Parses YAML text. `file` is used only in messages.
std::expected<GatewayConfig, ConfigErrors> parse_config(const std::string& yaml_text,
                                                        const std::string& file = "<config>",
                                                        const ParseOptions& options = {});
/// Reads and parses a file.
std::expected<GatewayConfig, ConfigErrors> load_config(const std::filesystem::path& file,
                                                       const ParseOptions& options = {});

}  // namespace sdoh::config
