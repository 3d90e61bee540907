#include "adapters/hl7v2/pipeline.hpp"

#include <chrono>
#include <ctime>
#include <map>
#include <stdexcept>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/hl7v2/mllp_framer.hpp"
#include "adapters/hl7v2/oru.hpp"
#include "adapters/hl7v2/referral.hpp"
#include "adapters/hl7v2/timezone.hpp"
#include "gateway/events/dead_letter.hpp"
#include "gateway/events/event.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/log/log.hpp"
#include "gateway/mapping/lifecycle.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/referral/service.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::hl7v2 {

namespace asio = boost::asio;

namespace {

std::string hl7_now() {
  const auto t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S+0000", &tm);
  return buf;
}

std::string label_for_type(const std::string& type) {
  for (const char* known : {"ORU^R01", "REF^I12", "REF^I13", "REF^I14", "RRI^I12", "ACK"}) {
    if (type == known) return type;
  }
  return "other";
}

}  // namespace

struct Hl7Pipeline::Impl {
  const mapping::ScreeningMapper& mapper;
  mapping::ReferralMapper referral_mapper;
  pipeline::CommitPort& store;
  Hl7PipelineOptions options;
  referral::Service service;
  std::map<std::string, TimeZone> zones;  // by IANA name; read-only after construction
  metrics::Family<metrics::Counter>& messages;
  metrics::Counter& parse_errors;
  metrics::Counter& duplicates;
  metrics::Counter& acks_received;
  metrics::Histogram& processing;
  metrics::Family<metrics::Counter>& charset_fallbacks;
  metrics::Family<metrics::Counter>& referrals;

  Impl(const mapping::ScreeningMapper& m, pipeline::CommitPort& s, Hl7PipelineOptions o,
       metrics::Registry& reg)
      : mapper(m),
        referral_mapper(m),
        store(s),
        options(std::move(o)),
        service({options.gateway_id, options.topics.referral_status}),
        messages(reg.counter("sdoh_hl7_messages_total",
                             "HL7 v2 messages answered, by type and ACK code.", {"type", "ack"})),
        parse_errors(
            reg.counter("sdoh_hl7_parse_errors_total", "Frames that were not parseable HL7 v2.")
                .with()),
        duplicates(reg.counter("sdoh_hl7_duplicates_total",
                               "Resent messages answered with their stored ACK (no new events).")
                       .with()),
        acks_received(reg.counter("sdoh_hl7_acks_received_total",
                                  "Senders' acknowledgments of the gateway's application ACKs "
                                  "(enhanced mode): consumed, not answered.")
                          .with()),
        processing(reg.histogram("sdoh_hl7_processing_seconds",
                                 "Parse, map and durable commit of one HL7 message.")
                       .with()),
        charset_fallbacks(reg.counter(
            "sdoh_hl7_charset_fallbacks_total",
            "Messages whose bytes were not in the character set MSH-18 declared (or implied by "
            "leaving it empty), read in the set they were really in.",
            {"declared", "read_as"})),
        referrals(reg.counter("sdoh_hl7_referral_messages_total",
                              "Referrals HL7 messages made or changed, by message type (REF^I12, "
                              "RRI^I12, ORU^R01) and outcome (created, held, released, updated, "
                              "unchanged, already-known).",
                              {"type", "outcome"})) {
    auto load = [this](const std::string& name) {
      if (name.empty() || zones.count(name) != 0) return;
      auto zone = TimeZone::load(name);
      if (!zone) throw std::runtime_error(zone.error().message);
      zones.emplace(name, std::move(*zone));
    };
    load(options.hl7.default_timezone);
    for (const auto& [sender, cfg] : options.hl7.senders)
      load(cfg.timezone);
  }

  // The sender's settings: by "MSH-3^MSH-4", else by facility "MSH-4", else the defaults.
  struct SenderSettings {
    const TimeZone* zone = nullptr;
    ContactConsentPolicy consent = ContactConsentPolicy::kConSegment;
  };
  SenderSettings settings_for(const Message& m) const {
    const config::Hl7SenderConfig* cfg = nullptr;
    if (auto it = options.hl7.senders.find(sender_of(m)); it != options.hl7.senders.end()) {
      cfg = &it->second;
    } else if (auto f = options.hl7.senders.find(m.get("MSH-4.1"));
               f != options.hl7.senders.end()) {
      cfg = &f->second;
    }
    SenderSettings out;
    const auto& zone_name =
        cfg != nullptr && !cfg->timezone.empty() ? cfg->timezone : options.hl7.default_timezone;
    if (auto z = zones.find(zone_name); z != zones.end()) out.zone = &z->second;
    if (cfg != nullptr && cfg->contact_consent == "clinic-policy")
      out.consent = ContactConsentPolicy::kClinicPolicy;
    return out;
  }

  AckOptions ack_options(const Message& m) const {
    // The ACK's own control id: stable for a resend, distinct from the message's.
    return {"ACK" + identity::sha256_hex(sender_of(m) + "|" + m.get("MSH-10")).substr(0, 17),
            hl7_now(), "SDOH_GW", "", ""};
  }

  events::Event event(events::EventType type, const std::string& identity, int position,
                      std::string subject, std::string topic, std::string key, std::string data,
                      const std::string& time) const {
    events::Event e;
    e.type = type;
    e.id = events::event_id(identity, position);
    e.source = events::event_source(options.gateway_id);
    e.subject = std::move(subject);
    e.time = time;
    e.topic = std::move(topic);
    e.key = std::move(key);
    e.data = std::move(data);
    return e;
  }

  static pipeline::OutboxEvent outbox(const events::Event& e) {
    return {e.id, std::string(events::type_name(e.type)), e.topic, e.key, e.envelope()};
  }

  // One answer sent: counted on /metrics by type and code, and for the ops API's last hour by
  // sender (`m` null: the frame was not readable HL7, so there is no sender to name).
  void answered(const std::string& type, std::string_view code, const Message* m) {
    messages.with({label_for_type(type), std::string(code)}).inc();
    if (options.throughput != nullptr)
      options.throughput->record("hl7v2", m != nullptr ? sender_of(*m) : "(unreadable)", code);
  }

  // Commits and answers; a store failure turns any answer into a negative one (never a false AA).
  // `committed` (optional) tells whether this call committed new events (not a resend).
  // `conflicted` (optional): a referral the message changes moved on since it was read (the
  // store's optimistic lock): nothing was stored or answered; the caller decides again.
  asio::awaitable<std::string> commit_and_answer(pipeline::CommitRequest request, const Message* m,
                                                 const std::string& type, bool* committed = nullptr,
                                                 bool* conflicted = nullptr) {
    if (committed != nullptr) *committed = false;
    if (conflicted != nullptr) *conflicted = false;
    const auto code = request.inbound.answer_code;
    auto answer = request.inbound.answer;
    auto outcome = co_await store.commit(std::move(request));
    if (!outcome && conflicted != nullptr && outcome.error().kind == ErrorKind::kConflict) {
      *conflicted = true;
      co_return std::string();
    }
    if (!outcome) {
      log::error("hl7.commit_failed", {{"reason", outcome.error().message}});
      if (m == nullptr) co_return answer;  // already negative (unparseable input)
      auto refusal = refusal_for(outcome.error());
      // Nothing was stored (the store cannot write, or refuses new work while Kafka is behind):
      // HL7 table 0357 207, application internal error, with "resend later".
      refusal.error.condition = ErrorCondition::kApplicationInternalError;
      refusal.error.text =
          "the message was not accepted: " + outcome.error().message + "; try again later";
      // Nothing was stored, whatever the error says: CE in enhanced mode, never CA.
      const auto plan = plan_acks(*m, refusal.code, Acceptance::kNotCommitted);
      answered(type, to_string(plan.summary), m);
      co_return build_answers(*m, plan, refusal.error, ack_options(*m));
    }
    if (outcome->status == pipeline::CommitStatus::kDuplicate) {
      duplicates.inc();
      answered(type, outcome->answer_code, m);
      co_return outcome->answer;
    }
    if (committed != nullptr) *committed = true;
    answered(type, code, m);
    co_return answer;
  }

  // A negative answer that is not recorded: the condition is transient (a referral held by
  // another message), so a resend must be processed again rather than get this answer back.
  // ERR-3 206 (application record locked) for a referral another message holds; 207
  // (application internal error) when the store cannot be read.
  std::string transient_nak(const Message& m, const std::string& type, const std::string& why,
                            ErrorCondition condition = ErrorCondition::kApplicationRecordLocked) {
    auto refusal = refusal_for(Error::unavailable(why));
    refusal.error.condition = condition;
    const auto plan = plan_acks(m, refusal.code, Acceptance::kNotCommitted);
    answered(type, to_string(plan.summary), &m);
    log::info("hl7.retry_later", {{"sender", sender_of(m)},
                                  {"control_id", m.get("MSH-10")},
                                  {"type", type},
                                  {"reason", why}});
    return build_answers(m, plan, refusal.error, ack_options(m));
  }

  asio::awaitable<std::string> reject(const Message& m, const std::string& type, const Error& error,
                                      const std::string& stage, const std::string& received_at,
                                      std::string text,
                                      std::optional<ErrorCondition> condition = std::nullopt) {
    auto refusal = refusal_for(error);
    if (condition) {
      refusal.error.condition = *condition;
    } else if (error.kind == ErrorKind::kInvalid) {
      refusal.error.condition = invalid_condition(m, error.where);
    }
    // ERR-2 and the dead letter name a segment the sender sent (MSH when nothing else fits).
    Error located_error = error;
    located_error.where = refusal.error.where = locate_in(m, error.where);
    // The dead letter is committed with the answer: at the accept level that is CA (or CR for
    // MSH-9/11/12), never CE.
    if (refusal.acceptance == Acceptance::kNotCommitted)
      refusal.acceptance = Acceptance::kCommitted;
    const auto& err = refusal.error;
    const auto plan = plan_acks(m, refusal.code, refusal.acceptance);
    const auto code = plan.summary;
    auto ack = build_answers(m, plan, err, ack_options(m));
    const auto sender = sender_of(m);
    const auto control_id = m.get("MSH-10");
    log::info("hl7.rejected", {{"sender", sender},
                               {"control_id", control_id},
                               {"type", type},
                               {"ack", to_string(code)},
                               {"reason", error.message}});
    pipeline::CommitRequest request;
    request.inbound = {"hl7v2", sender,         control_id, type, std::string(to_string(code)),
                       ack,     std::move(text)};
    add_dead_letter(request, m, located_error, err.condition, stage, received_at);
    co_return co_await commit_and_answer(std::move(request), &m, type);
  }

  // The message's dead letter and its org.sdoh.deadletter.v1 event, added to `request`.
  void add_dead_letter(pipeline::CommitRequest& request, const Message& m, const Error& error,
                       ErrorCondition condition, const std::string& stage,
                       const std::string& received_at) const {
    const auto sender = sender_of(m);
    const auto control_id = m.get("MSH-10");
    events::DeadLetter dl;
    dl.dead_letter_id = events::event_id("deadletter|hl7v2|" + sender + "|" + control_id, 0);
    dl.received_at = received_at;
    dl.protocol = "hl7v2";
    dl.sender = sender;
    dl.message_id = control_id;
    dl.message_type = m.get("MSH-9");
    dl.stage = stage;
    dl.code = std::to_string(static_cast<int>(condition));
    dl.text = error.message;
    dl.where = error.where;
    auto e =
        event(events::EventType::kDeadLetter, "hl7v2|" + sender + "|" + control_id + "|deadletter",
              0, dl.dead_letter_id, options.topics.deadletter, control_id,
              events::dead_letter_data(dl), received_at);
    request.events.push_back(outbox(e));
    request.dead_letter = pipeline::DeadLetterRecord{dl.dead_letter_id, stage, dl.code,
                                                     error.message, err_location(error.where)};
  }

  // A location as ERR-2 writes it: segment^sequence[^field].
  static std::string err_location(const Location& w) {
    if (w.segment.empty()) return "";
    auto out = w.segment + "^" + std::to_string(w.sequence > 0 ? w.sequence : 1);
    if (w.field > 0) out += "^" + std::to_string(w.field);
    return out;
  }

  asio::awaitable<std::string> reject_unparseable(std::string text, const Error& error,
                                                  const pipeline::Peer& peer,
                                                  const std::string& received_at) {
    parse_errors.inc();
    const auto sender = "peer:" + peer.address.substr(0, peer.address.rfind(':'));
    events::DeadLetter dl;
    dl.dead_letter_id =
        events::event_id("deadletter|hl7v2|" + sender + "|" + identity::sha256_hex(text), 0);
    dl.received_at = received_at;
    dl.protocol = "hl7v2";
    dl.sender = sender;
    dl.stage = "parse";
    const auto condition = std::to_string(static_cast<int>(unparseable_condition(error)));
    dl.code = condition;
    dl.text = error.message;
    dl.where = error.where;
    dl.replayable = false;
    log::info("hl7.unparseable",
              {{"peer", peer.address}, {"bytes", text.size()}, {"reason", error.message}});
    auto ack = build_unparseable_ack(
        error, {"ACK" + dl.dead_letter_id.substr(0, 17), hl7_now(), "SDOH_GW", "", ""});
    auto e = event(events::EventType::kDeadLetter, dl.dead_letter_id, 0, dl.dead_letter_id,
                   options.topics.deadletter, dl.dead_letter_id, events::dead_letter_data(dl),
                   received_at);
    pipeline::CommitRequest request;
    request.inbound = {"hl7v2", sender, "", "unparseable", "AR", ack, std::move(text)};
    request.events.push_back(outbox(e));
    request.dead_letter = pipeline::DeadLetterRecord{
        dl.dead_letter_id, "parse", condition, error.message,
        error.where.segment.empty() ? std::string("MSH^1") : err_location(error.where)};
    co_return co_await commit_and_answer(std::move(request), nullptr, "unparseable");
  }

  // The positive answer for `m`, committed with `events` (possibly none).
  asio::awaitable<std::string> accept(const Message& m, const std::string& type, std::string text,
                                      std::vector<pipeline::OutboxEvent> events,
                                      bool* committed = nullptr,
                                      std::vector<pipeline::ResourceWrite> resources = {},
                                      std::vector<pipeline::ReferralState> states = {},
                                      const Error* held = nullptr,
                                      const std::string& received_at = {},
                                      std::string_view held_stage = "route") {
    pipeline::CommitRequest request;
    request.events = std::move(events);
    request.resources = std::move(resources);
    request.referrals = std::move(states);
    co_return co_await accept_request(m, type, std::move(text), std::move(request), committed,
                                      nullptr, held, received_at, held_stage);
  }

  // The positive answer for `m`, committed with what `request` holds (its events, resources and
  // referral states). `conflicted`: see commit_and_answer.
  asio::awaitable<std::string> accept_request(const Message& m, const std::string& type,
                                              std::string text, pipeline::CommitRequest request,
                                              bool* committed, bool* conflicted,
                                              const Error* held = nullptr,
                                              const std::string& received_at = {},
                                              std::string_view held_stage = "route") {
    const auto sender = sender_of(m);
    const auto control_id = m.get("MSH-10");
    const auto plan = plan_acks(m, AckCode::kAA, Acceptance::kCommitted);
    const auto code = plan.summary;
    auto ack = build_answers(m, plan, std::nullopt, ack_options(m));
    request.inbound = {"hl7v2", sender,         control_id, type, std::string(to_string(code)),
                       ack,     std::move(text)};
    // A referral held for no route is accepted and also a dead letter (stage route): listed for
    // operations, and replayed once a route exists, which releases it to its agency. One held
    // uncategorised likewise (stage map), replayed once a local code table translates it.
    if (held != nullptr) {
      add_dead_letter(request, m, *held, ErrorCondition::kTableValueNotFound,
                      std::string(held_stage), received_at);
    }
    log::debug("hl7.accepted", {{"sender", sender},
                                {"control_id", control_id},
                                {"type", type},
                                {"events", request.events.size()}});
    co_return co_await commit_and_answer(std::move(request), &m, type, committed, conflicted);
  }

  // The referral `keys` name and its Task (null when the gateway keeps none), read from the
  // store; an error when the store cannot be read.
  struct Known {
    referral::Referral referral;
    std::optional<pipeline::ResourceRow> task;
  };
  Result<std::optional<Known>> find(const pipeline::ReferralKeys& keys) const {
    if (options.referrals == nullptr) return std::optional<Known>();
    auto row = options.referrals->find_referral(keys);
    if (!row) return fail(row.error());
    if (!*row) return std::optional<Known>();
    auto typed = referral::Referral::from(**row);
    if (!typed) return fail(Error::internal("the referral's stored state is not readable"));
    Known known{std::move(*typed), std::nullopt};
    if (options.resources != nullptr) {
      auto task = options.resources->read_resource("Task", known.referral.id);
      if (!task) return fail(task.error());
      known.task = std::move(*task);
    }
    return std::optional<Known>(std::move(known));
  }

  // How many times a message decides again when another change of its referral committed first.
  static constexpr int kDecideAttempts = 4;

  // A referral mapping error, located in the REF message that caused it.
  static Error located(const Message& m, Error e, std::optional<ErrorCondition>& condition) {
    const auto& x = e.where.expression;
    if (x == "patient.identifier") e.where = {"PID", 1, 3, 0, ""};
    if (x == "clinicReferralNumber") e.where = {"RF1", 1, 6, 0, ""};
    if (x == "evidence") e.where = {"OBX", 1, 0, 0, ""};
    if (x == "category" && m.segment("OBR") != nullptr) {
      // The need is named by OBR-4 (or by answers in OBX under an OBR).
      e.where = {"OBR", 1, 4, 0, ""};
      condition = ErrorCondition::kTableValueNotFound;
    } else if (x == "category") {
      // No OBR: only RF1-5 (referral category) or RF1-3 (referral type) could name the need.
      const int field = m.get("RF1-5.1").empty() && !m.get("RF1-3.1").empty() ? 3 : 5;
      e.where = {"RF1", 1, field, 0, ""};
      condition = invalid_condition(m, e.where) == ErrorCondition::kRequiredFieldMissing
                      ? ErrorCondition::kRequiredFieldMissing
                      : ErrorCondition::kTableValueNotFound;
    }
    return e;
  }

  // RF1-1/RF1-2 values outside their tables name component 1 (the code): ERR-3 103.
  static std::optional<ErrorCondition> read_condition(const Error& e) {
    if (e.kind == ErrorKind::kInvalid && e.where.component == 1)
      return ErrorCondition::kTableValueNotFound;
    return std::nullopt;
  }

  // A time for a status event: the message's own (date-time with offset), else when received.
  static std::string event_time(const std::string& stated, const std::string& received_at) {
    return stated.find('T') != std::string::npos ? stated : received_at;
  }

  // Runs `work`, a decision that reads the store, on the store executor (when there is one):
  // the I/O thread that parses, validates and maps a message never blocks on a store read.
  template <class T>
  asio::awaitable<T> reading(asio::awaitable<T> work) {
    if (options.store_executor == nullptr) co_return co_await std::move(work);
    co_return co_await options.store_executor->run(std::move(work));
  }

  // A screening whose family asked for help: the referrals it opens are decided from the store.
  struct AskingScreening {
    const mapping::NormalizedScreening* screening;
    mapping::MappedScreening mapped;
  };

  asio::awaitable<std::string> handle_oru(const Message& m, const std::string& type,
                                          std::string text, const std::string& received_at) {
    auto screenings = screenings_from_oru(m, settings_for(m).zone);
    if (!screenings)
      co_return co_await reject(m, type, screenings.error(), "validate", received_at,
                                std::move(text));
    std::vector<pipeline::OutboxEvent> out;
    std::vector<AskingScreening> asking;
    int position = 0;
    const auto sender = sender_of(m);
    const auto control_id = m.get("MSH-10");
    for (const auto& s : *screenings) {
      auto mapped = mapper.map(s);
      if (!mapped) {
        Error e = mapped.error();
        if (e.where.expression == "patient.identifier") e.where = {"PID", 1, 3, 0, ""};
        // A screening without answers: its OBR has no OBX under it.
        if (e.where.expression == "items") e.where = {"OBR", s.position + 1, 0, 0, ""};
        co_return co_await reject(m, type, e, "map", received_at, std::move(text));
      }
      auto e = event(events::EventType::kScreening, "hl7v2|" + sender + "|" + control_id,
                     position++, mapped->screening_id, options.topics.screening,
                     mapped->patient_pseudonym, std::move(mapped->data), received_at);
      out.push_back(outbox(e));
      if (options.refer_from_screening &&
          std::any_of(mapped->domains.begin(), mapped->domains.end(),
                      [](const auto& d) { return d.assistance_requested == true; })) {
        asking.push_back({&s, std::move(*mapped)});
      }
    }
    // A screening that opens no referral reads nothing: committed from here.
    if (asking.empty()) {
      pipeline::CommitRequest request;
      request.events = std::move(out);
      co_return co_await accept_request(m, type, std::move(text), std::move(request), nullptr,
                                        nullptr, nullptr, received_at);
    }
    co_return co_await reading(
        refer_and_commit(m, type, std::move(text), received_at, std::move(out), std::move(asking)));
  }

  // The referrals `asking` opens, committed with the screening events `out`.
  asio::awaitable<std::string> refer_and_commit(const Message& m, const std::string& type,
                                                std::string text, std::string received_at,
                                                std::vector<pipeline::OutboxEvent> out,
                                                std::vector<AskingScreening> asking) {
    const auto sender = sender_of(m);
    const auto control_id = m.get("MSH-10");
    std::vector<ScreeningReferral> opened;
    for (const auto& a : asking)
      refer_from_screening(m, *a.screening, a.mapped, opened);
    pipeline::CommitRequest request;
    request.events = std::move(out);
    std::vector<pipeline::ReferralState> states;
    const Error* held = nullptr;
    for (auto& o : opened) {
      auto state =
          open_referral(m, o.ref, std::move(o.mapped), settings_for(m), received_at, request);
      if (state.agency_id.empty() && held == nullptr) held = &o.no_route;
      states.push_back(std::move(state));
    }
    bool committed = false;
    bool conflicted = false;
    auto answer = co_await accept_request(m, type, std::move(text), std::move(request), &committed,
                                          &conflicted, held, received_at);
    if (conflicted) {
      // Another message opened one of these referrals first: resent, this one finds it.
      co_return transient_nak(m, type, "another message is changing this referral; resend later");
    }
    if (committed) {
      for (const auto& st : states) {
        referrals.with({"ORU^R01", st.agency_id.empty() ? "held" : "created"}).inc();
        log::info("hl7.referral_from_screening", {{"sender", sender},
                                                  {"control_id", control_id},
                                                  {"referral", st.referral_id},
                                                  {"agency", st.agency_id},
                                                  {"category", st.category},
                                                  {"business_status", st.business_status}});
      }
    }
    co_return answer;
  }

  // A referral an ORU's screening opens, before it is committed.
  struct ScreeningReferral {
    mapping::NormalizedReferral ref;
    mapping::MappedReferral mapped;
    Error no_route;
  };

  // The referrals the family asked for in screening `s` (assistanceRequested true), routed; not
  // from answers still in progress, and not again for a referral the gateway has (a resend).
  void refer_from_screening(const Message& m, const mapping::NormalizedScreening& s,
                            const mapping::MappedScreening& screening,
                            std::vector<ScreeningReferral>& opened) const {
    const bool settled = std::any_of(s.items.begin(), s.items.end(), [](const auto& i) {
      return i.status == mapping::ResultStatus::kFinal ||
             i.status == mapping::ResultStatus::kCorrected;
    });
    if (!settled) return;
    const auto settings = settings_for(m);
    const ReferralReadOptions read_options{settings.zone, settings.consent};
    for (const auto& d : screening.domains) {
      if (d.assistance_requested != true) continue;
      auto ref = referral_from_screening(m, s, screening.screening_id, d.category, read_options);
      auto mapped = map_referral(ref);
      if (!mapped) {
        log::warn("hl7.referral_from_screening_not_opened", {{"sender", sender_of(m)},
                                                             {"control_id", m.get("MSH-10")},
                                                             {"category", d.category},
                                                             {"reason", mapped.error().message}});
        continue;
      }
      // Not again for a referral the gateway has (or cannot tell: the commit's lock decides).
      if (auto known = find({mapped->referral_id, "", "", ""}); known && *known) continue;
      if (options.open_referral_for) {
        // One open referral per child and need: a later screening asking again adds none.
        if (auto open = options.open_referral_for(mapped->patient_pseudonym, d.category)) {
          log::info("hl7.referral_already_open", {{"sender", sender_of(m)},
                                                  {"control_id", m.get("MSH-10")},
                                                  {"category", d.category},
                                                  {"referral", *open}});
          continue;
        }
      }
      Error no_route =
          Error::invalid(Location{"OBX", 1, 5, 0, ""},
                         "no route for the need " + d.category +
                             " in the family's area and age band: the referral is held");
      opened.push_back({std::move(ref), std::move(*mapped), std::move(no_route)});
    }
  }

  // The referral's agency is the one the clinic named (PRD role RT), else the one routing picks
  // by need, area and the child's age on the referral date. Routing finding none leaves the
  // agency empty: the referral is held (identified only, businessStatus no-route, no event data).
  Result<mapping::MappedReferral> map_referral(mapping::NormalizedReferral& r) const {
    auto held = referral_mapper.identify(r);
    if (!held || held->uncategorised) {
      // No code or answer tells the need: held before routing, whatever agency the clinic named
      // (a replay after a local code table translates it reads that agency again).
      if (held) {
        r.agency_id.clear();
        r.agency_name.clear();
        r.business_status = held->business_status;
      }
      return held;
    }
    if (r.agency_id.empty()) {
      if (!options.route) return held;
      const auto keys = mapping::routing_keys(r, r.authored_on);
      auto found = options.route(held->category, keys);
      if (!found) return held;
      r.agency_id = std::move(found->agency_id);
      r.agency_name = std::move(found->agency_name);
      r.routed = found->basis;
      r.business_status =
          mapping::initial_state(true, r.consent.status == mapping::ConsentStatus::kActive)
              .business_status;
    }
    if (options.agency_topic) r.agency_topic = options.agency_topic(r.agency_id);
    if (r.agency_topic.empty()) r.agency_topic = options.topics.referral;
    return referral_mapper.map(r);
  }

  // The gateway's Task for an HL7 referral (version `version`, replacing the one before).
  pipeline::ResourceWrite task_write(const Message& m, const mapping::NormalizedReferral& ref,
                                     const mapping::MappedReferral& mapped,
                                     const std::string& received_at, std::int64_t version) const {
    return referral::task_version(mapped.referral_id,
                                  referral::new_task_json(ref, mapped, received_at, version),
                                  version, received_at, sender_of(m));
  }

  // A held referral that can now go further: one held for no route that routing now sends to an
  // agency (referral::Service::route), or one held uncategorised whose need a local code table
  // now translates (referral::Service::categorise: to the agency the clinic named or routing
  // finds, else held for no route, `no_route`). Its referral event when it reaches an agency, the
  // gateway's status event, its state and the next version of its Task. nullopt: it is no longer
  // held so (it moved since it was read).
  asio::awaitable<std::optional<std::string>> release_held(
      const Message& m, const std::string& type, std::string text,
      const mapping::NormalizedReferral& ref, const mapping::MappedReferral& mapped,
      const Known& known, const std::string& received_at, const Error& no_route, bool* conflicted) {
    const auto& rid = mapped.referral_id;
    const auto* task = known.task ? &*known.task : nullptr;
    const bool consent = ref.consent.status == mapping::ConsentStatus::kActive;
    const bool categorising = known.referral.business_status == mapping::kUncategorised;
    auto routed = categorising
                      ? service.categorise(known.referral, task, mapped.category, ref.agency_id,
                                           ref.agency_name, consent, received_at)
                      : service.route(known.referral, task, ref.agency_id, ref.agency_name, consent,
                                      received_at);
    if (!routed) co_return std::nullopt;
    pipeline::CommitRequest request;
    const bool to_agency = !ref.agency_id.empty();
    if (to_agency) {
      request.events.push_back(service.referral_event(rid, routed->after.sequence, ref.agency_topic,
                                                      mapped.data, received_at));
    }
    service.add_to(request, *routed, received_at);
    bool committed = false;
    auto answer = co_await accept_request(m, type, std::move(text), std::move(request), &committed,
                                          conflicted, to_agency ? nullptr : &no_route, received_at);
    if (committed) {
      referrals.with({"REF^I12", to_agency ? "released" : "held"}).inc();
      log::info(categorising ? "hl7.referral_categorised" : "hl7.referral_routed",
                {{"sender", sender_of(m)},
                 {"control_id", m.get("MSH-10")},
                 {"referral", rid},
                 {"agency", ref.agency_id},
                 {"category", mapped.category}});
    }
    co_return answer;
  }

  // A new referral (referral::Service::open): its referral event (unless held for no route), its
  // first status event, its Task and its state (written only if no referral has its id yet),
  // added to `request`; returns its state.
  pipeline::ReferralState open_referral(const Message& m, const mapping::NormalizedReferral& ref,
                                        mapping::MappedReferral mapped,
                                        const SenderSettings& settings,
                                        const std::string& received_at,
                                        pipeline::CommitRequest& request) const {
    const auto& rid = mapped.referral_id;
    referral::Referral r;
    r.id = rid;
    r.agency_id = ref.agency_id;
    r.category = mapped.category;
    if (mapped.uncategorised) r.business_status = std::string(mapping::kUncategorised);
    auto& state = r.stored;
    state.clinic_number_system = ref.clinic_number_system;
    state.clinic_number_value = ref.clinic_number_value;
    state.source_control_id = m.get("MSH-10");
    state.return_to = sender_of(m);
    if (const auto* pid = m.segment("PID")) state.return_pid = std::string(pid->raw(3));
    state.race = ref.race;
    state.ethnicity = ref.ethnicity;
    state.language = ref.language;
    state.zip3 = mapped.zip3;
    state.patient = mapped.patient_pseudonym;
    auto opened =
        service.open(std::move(r), ref.consent.status == mapping::ConsentStatus::kActive,
                     {mapping::Actor::kClinic, agency_id_from(ref.facility.code)},
                     event_time(dtm_to_rfc3339(m.get("MSH-7"), settings.zone), received_at));
    if (options.resources != nullptr)
      request.resources.push_back(task_write(m, ref, mapped, received_at, 1));
    if (!ref.agency_id.empty()) {
      request.events.push_back(
          service.referral_event(rid, 1, ref.agency_topic, std::move(mapped.data), received_at));
    }
    service.add_to(request, opened, received_at);
    return opened.after.state();
  }

  asio::awaitable<std::string> handle_ref(const Message& m, const std::string& type,
                                          std::string text, const std::string& received_at) {
    const auto settings = settings_for(m);
    const ReferralReadOptions read_options{settings.zone, settings.consent};
    auto ref = referral_from_ref(m, read_options);
    if (!ref) {
      co_return co_await reject(m, type, ref.error(), "validate", received_at, std::move(text),
                                read_condition(ref.error()));
    }
    const bool named = !ref->agency_id.empty();
    auto mapped = map_referral(*ref);
    if (!mapped) {
      std::optional<ErrorCondition> condition;
      const auto e = located(m, mapped.error(), condition);
      co_return co_await reject(m, type, e, "map", received_at, std::move(text), condition);
    }
    const bool held = ref->agency_id.empty();
    const auto rid = mapped->referral_id;
    const Error no_route =
        Error::invalid(Location{"PRD", 1, 7, 0, ""},
                       "no route for the need " + mapped->category +
                           " in the family's area and age band: the referral is held");
    // Codes only in the message (never text): which to add to a local code table.
    const Error uncategorised = Error::invalid(
        Location{"RF1", 1, 5, 0, ""},
        "the referral's need cannot be told from " + mapped->untranslated + " (sender " +
            sender_of(m) +
            "): the referral is held (uncategorised); add the codes to a local code table in "
            "schemas/mappings/local/ and replay this message");
    const Error* hold = mapped->uncategorised ? &uncategorised : held ? &no_route : nullptr;
    const std::string_view hold_stage = mapped->uncategorised ? "map" : "route";
    for (int attempt = 0; attempt < kDecideAttempts; ++attempt) {
      auto known = find({rid, "", "", ""});
      if (!known)
        co_return transient_nak(m, type, "the store cannot be read; resend later",
                                ErrorCondition::kApplicationInternalError);
      bool conflicted = false;
      if (*known) {
        const auto& k = **known;
        const bool requested = k.referral.status == mapping::ReferralStatus::kRequested;
        const bool still_held = requested && k.referral.business_status == mapping::kNoRoute;
        const bool still_uncategorised =
            requested && k.referral.business_status == mapping::kUncategorised;
        if ((still_held && !held) || (still_uncategorised && !mapped->uncategorised)) {
          // Held for no route, and a route now finds its agency; or held uncategorised, and a
          // local code table now translates its need (the clinic sent it again, or an operator
          // replayed it after adding the route or the code): released, or held for no route.
          auto released = co_await release_held(m, type, text, *ref, *mapped, k, received_at,
                                                no_route, &conflicted);
          if (conflicted) continue;
          if (released) co_return std::move(*released);
        }
        // A REF^I12 for a referral already made (the clinic re-sent it under a new control id):
        // acknowledged, and nothing new is published. Changes to a referral are REF^I13.
        referrals.with({"REF^I12", "already-known"}).inc();
        log::info("hl7.referral_known",
                  {{"sender", sender_of(m)}, {"control_id", m.get("MSH-10")}, {"referral", rid}});
        std::vector<pipeline::OutboxEvent> none;
        const Error* kept = still_uncategorised ? &uncategorised : still_held ? &no_route : nullptr;
        co_return co_await accept(m, type, std::move(text), std::move(none), nullptr, {}, {}, kept,
                                  received_at, still_uncategorised ? "map" : "route");
      }
      pipeline::CommitRequest request;
      const auto state = open_referral(m, *ref, *mapped, settings, received_at, request);
      bool committed = false;
      auto answer = co_await accept_request(m, type, text, std::move(request), &committed,
                                            &conflicted, hold, received_at, hold_stage);
      if (conflicted) continue;  // another message made it first: it is known now
      if (committed) {
        referrals.with({"REF^I12", held ? "held" : "created"}).inc();
        log::info(held ? "hl7.referral_held" : "hl7.referral_created",
                  {{"sender", sender_of(m)},
                   {"control_id", m.get("MSH-10")},
                   {"referral", rid},
                   {"agency", ref->agency_id},
                   {"agency_named", named},
                   {"category", state.category},
                   {"business_status", state.business_status},
                   {"consent", to_string(ref->consent.status)}});
      }
      co_return answer;
    }
    co_return transient_nak(m, type, "another message is changing this referral; resend later");
  }

  asio::awaitable<std::string> handle_rri(const Message& m, const std::string& type,
                                          std::string text, const std::string& received_at,
                                          const pipeline::Peer& peer) {
    auto response = response_from_rri(m, settings_for(m).zone);
    if (!response) {
      co_return co_await reject(m, type, response.error(), "validate", received_at, std::move(text),
                                read_condition(response.error()));
    }
    // Which agency answers is who the connection is (parties), never what the message says.
    if (options.parties != nullptr) {
      auto who = options.parties->mllp_agency({peer.address, peer.tls_subject}, m.get("MSH-3.1"),
                                              m.get("MSH-4.1"));
      if (!who) {
        log::warn("hl7.sender_refused", {{"peer", peer.address},
                                         {"control_id", m.get("MSH-10")},
                                         {"reason", who.error().message}});
        co_return co_await reject(m, type, who.error(), "validate", received_at, std::move(text),
                                  ErrorCondition::kTableValueNotFound);
      }
      if (!who->empty()) {
        if (response->named_agency && response->agency_id != agency_id_from(*who)) {
          const auto other = Error::unsupported(
              "PRD-7 names agency " + response->agency_id + " but this connection is agency " +
                  *who + ": an agency answers only for itself",
              Location{"PRD", provider_occurrence(m, "RT"), 7, 0, ""});
          co_return co_await reject(m, type, other, "validate", received_at, std::move(text),
                                    ErrorCondition::kTableValueNotFound);
        }
        response->agency_id = agency_id_from(*who);
      }
    }
    const pipeline::ReferralKeys keys{response->external_id, response->clinic_number_system,
                                      response->clinic_number_value, response->original_control_id};
    for (int attempt = 0; attempt < kDecideAttempts; ++attempt) {
      auto known = find(keys);
      if (!known)
        co_return transient_nak(m, type, "the store cannot be read; resend later",
                                ErrorCondition::kApplicationInternalError);
      if (!*known || (*known)->referral.agency_id != response->agency_id) {
        // Also when the referral belongs to another agency: an agency learns nothing about
        // referrals that are not its own.
        // ERR-2 names the key the agency gave: RF1-11, else RF1-6, else MSA-2.
        const Location key = !response->external_id.empty() ? Location{"RF1", 1, 11, 0, ""}
                             : !response->clinic_number_value.empty() || m.segment("MSA") == nullptr
                                 ? Location{"RF1", 1, 6, 0, ""}
                                 : Location{"MSA", 1, 2, 0, ""};
        const auto unknown = Error::invalid(
            key, "no referral of agency " + response->agency_id +
                     " matches RF1-11, RF1-6 or MSA-2; the gateway may not have seen the "
                     "REF^I12 (replay this message once it has)");
        co_return co_await reject(m, type, unknown, "lifecycle", received_at, std::move(text),
                                  ErrorCondition::kUnknownKeyIdentifier);
      }
      const auto& k = **known;
      const auto& rid = k.referral.id;
      // The referral service decides, status and businessStatus together (schemas/README.md,
      // "Referral lifecycle"); a code that does not go with the new status is not carried in.
      referral::Move move;
      move.by = {mapping::Actor::kAgency, response->agency_id};
      move.status = response->status;
      move.business_status = response->business_status;
      move.reason = response->reason;
      move.time = event_time(response->time, received_at);
      auto decided = service.transition(k.referral, k.task ? &*k.task : nullptr, move, received_at);
      if (!decided) {
        const Location status_field{"RF1", 1, 1, 1, ""};
        const auto refused = Error::invalid(status_field, decided.error().message);
        co_return co_await reject(m, type, refused, "lifecycle", received_at, std::move(text),
                                  ErrorCondition::kTableValueNotFound);
      }
      pipeline::CommitRequest request;
      service.add_to(request, *decided, received_at);
      if (decided->unchanged) request.resources.clear();  // a repeat: the Task stays as it is
      // Who changes the referral (its audit record's agent): the agency the connection proves.
      request.actor = {response->agency_id, "agency", peer.address};
      bool committed = false;
      bool conflicted = false;
      auto answer =
          co_await accept_request(m, type, text, std::move(request), &committed, &conflicted);
      if (conflicted) continue;  // another change of this referral came first: decide again
      if (decided->unchanged) {
        referrals.with({"RRI^I12", "unchanged"}).inc();
      } else if (committed) {
        referrals.with({"RRI^I12", "updated"}).inc();
        log::info("hl7.referral_updated", {{"sender", sender_of(m)},
                                           {"control_id", m.get("MSH-10")},
                                           {"referral", rid},
                                           {"status", to_string(decided->after.status)},
                                           {"sequence", decided->after.sequence}});
      }
      co_return answer;
    }
    co_return transient_nak(m, type, "another message is changing this referral; resend later");
  }

  // REF^I13 (modify) and REF^I14 (cancel) of a referral this clinic made (its REF^I12 came from
  // the same sender), found by RF1-6, the clinic's number: the referral service decides.
  asio::awaitable<std::string> handle_clinic_change(const Message& m, const std::string& type,
                                                    std::string text,
                                                    const std::string& received_at) {
    const auto settings = settings_for(m);
    auto ref = referral_from_ref(m, {settings.zone, settings.consent});
    if (!ref) {
      co_return co_await reject(m, type, ref.error(), "validate", received_at, std::move(text),
                                read_condition(ref.error()));
    }
    const auto rid = mapper.referral_id(ref->clinic_number_system, ref->clinic_number_value);
    auto clinic_id = agency_id_from(ref->facility.code);
    const referral::Party clinic{mapping::Actor::kClinic,
                                 clinic_id.empty() ? "unknown" : clinic_id};
    const bool cancel = type == "REF^I14";
    for (int attempt = 0; attempt < kDecideAttempts; ++attempt) {
      auto known = find({rid, "", "", ""});
      if (!known)
        co_return transient_nak(m, type, "the store cannot be read; resend later",
                                ErrorCondition::kApplicationInternalError);
      if (!*known || (*known)->referral.stored.return_to != sender_of(m)) {
        const auto unknown = Error::invalid(
            Location{"RF1", 1, 6, 0, ""},
            "no referral of this clinic matches RF1-6; the gateway may not have its REF^I12 "
            "(replay this message once it has)");
        co_return co_await reject(m, type, unknown, "lifecycle", received_at, std::move(text),
                                  ErrorCondition::kUnknownKeyIdentifier);
      }
      const auto& k = **known;
      pipeline::CommitRequest request;
      std::optional<ErrorCondition> condition = ErrorCondition::kTableValueNotFound;
      auto decided = cancel ? cancel_change(k, clinic, *ref, received_at, request)
                            : modify_change(m, k, clinic, *ref, received_at, request, condition);
      if (!decided) {
        co_return co_await reject(m, type, decided.error(), "lifecycle", received_at,
                                  std::move(text), condition);
      }
      bool committed = false;
      bool conflicted = false;
      auto answer =
          co_await accept_request(m, type, text, std::move(request), &committed, &conflicted);
      if (conflicted) continue;  // another change of this referral came first: decide again
      if (committed) {
        referrals.with({type, *decided}).inc();
        log::info("hl7.referral_changed_by_clinic", {{"sender", sender_of(m)},
                                                     {"control_id", m.get("MSH-10")},
                                                     {"type", type},
                                                     {"referral", rid},
                                                     {"outcome", *decided}});
      }
      co_return answer;
    }
    co_return transient_nak(m, type, "another message is changing this referral; resend later");
  }

  // REF^I14: the clinic cancels its referral (RF1-10 the reason); from a final status: AE.
  Result<std::string> cancel_change(const Known& k, const referral::Party& clinic,
                                    const mapping::NormalizedReferral& ref,
                                    const std::string& received_at,
                                    pipeline::CommitRequest& request) const {
    auto decided = service.cancel(k.referral, k.task ? &*k.task : nullptr, clinic,
                                  mapping::clip_text(ref.note, 500), received_at);
    if (!decided)
      return fail(Error::invalid(Location{"RF1", 1, 1, 1, ""}, decided.error().message));
    service.add_to(request, *decided, received_at);
    return std::string(decided->unchanged ? "unchanged" : "cancelled");
  }

  // REF^I13: while no agency has accepted it (requested or received), the clinic changes the
  // priority, notes, contact details and consent (its CON releases a referral waiting with
  // awaiting-consent, or holds it again when revoked, as a FHIR Consent does) and, while no agency
  // has received it, the agency (PRD role RT). The Task follows; the agency gets the referral
  // event again as modified.
  Result<std::string> modify_change(const Message& m, const Known& k, const referral::Party& clinic,
                                    mapping::NormalizedReferral ref, const std::string& received_at,
                                    pipeline::CommitRequest& request,
                                    std::optional<ErrorCondition>& condition) const {
    const auto& current = k.referral;
    if (current.status != mapping::ReferralStatus::kRequested &&
        current.status != mapping::ReferralStatus::kReceived) {
      return fail(Error::invalid(Location{"RF1", 1, 1, 1, ""},
                                 "a referral that is " +
                                     std::string(mapping::to_string(current.status)) +
                                     " is no longer modified; only while requested or received"));
    }
    if (ref.agency_id.empty()) ref.agency_id = current.agency_id;  // kept unless PRD names one
    if (ref.category.empty()) ref.category = current.category;
    auto mapped = map_referral(ref);
    if (!mapped) return fail(located(m, mapped.error(), condition));
    const bool consent_active = ref.consent.status == mapping::ConsentStatus::kActive;
    // The Task as the message describes it now, at the referral's status.
    std::optional<pipeline::ResourceRow> modified = k.task;
    if (modified) {
      auto json = referral::with_status(
          referral::new_task_json(ref, *mapped, received_at, modified->version),
          mapping::to_string(current.status), current.business_status, "");
      if (!json) {
        condition = ErrorCondition::kApplicationInternalError;
        return fail(json.error());
      }
      modified->json = std::move(*json);
    }
    const auto* task = modified ? &*modified : nullptr;
    std::optional<referral::Change> change;
    std::string outcome = "modified";
    if (ref.agency_id != current.agency_id) {
      auto rerouted = service.reroute(current, task, clinic, ref.agency_id, ref.agency_name,
                                      consent_active, received_at);
      if (!rerouted) {
        // PRD-7 names an agency, but the referral can no longer go to another one.
        condition = ErrorCondition::kTableValueNotFound;
        return fail(Error::invalid(Location{"PRD", provider_occurrence(m, "RT"), 7, 0, ""},
                                   rerouted.error().message));
      }
      change = std::move(*rerouted);
      outcome = "rerouted";
    } else if (auto consent = service.consent(current, task, consent_active, received_at)) {
      change = std::move(*consent);
      outcome = consent_active ? "released" : "held";
    }
    const bool moved = change && !change->unchanged;
    if (moved) {
      service.add_to(request, *change, received_at);
    } else if (modified) {
      request.resources.push_back(referral::task_version(
          modified->id, modified->json, modified->version + 1, received_at, modified->source));
    }
    if (!ref.agency_id.empty()) {
      // The referral event again, as modified; its id names this message, so that it is not
      // taken for the one the agency has.
      request.events.push_back(service.referral_event(
          mapped->referral_id, moved ? change->after.sequence : current.sequence, ref.agency_topic,
          std::move(mapped->data), received_at, "modify|" + sender_of(m) + "|" + m.get("MSH-10")));
    }
    return outcome;
  }

  // Why a screening's or referral's connection may not send as the clinic its MSH-3^MSH-4 names;
  // nullopt when it may (or no parties are known: unit tests of the mapping).
  std::optional<Error> clinic_refusal(const Message& m, const pipeline::Peer& peer) const {
    if (options.parties == nullptr) return std::nullopt;
    auto who = options.parties->mllp_clinic({peer.address, peer.tls_subject}, m.get("MSH-3.1"),
                                            m.get("MSH-4.1"));
    if (who) return std::nullopt;
    log::warn(
        "hl7.sender_refused",
        {{"peer", peer.address}, {"control_id", m.get("MSH-10")}, {"reason", who.error().message}});
    return who.error();
  }

  asio::awaitable<std::string> handle_one(std::string text, const pipeline::Peer& peer) {
    const auto received_at = events::now_rfc3339();
    auto parsed = Message::parse(text);
    if (!parsed)
      co_return co_await reject_unparseable(std::move(text), parsed.error(), peer, received_at);
    const auto& m = *parsed;
    if (m.msh().raw(9, 1, 1) == "ACK") {
      // A sender's acknowledgment, e.g. of an application ACK we sent (enhanced mode). Checked
      // before anything that could refuse it: an ACK is never answered (answering ACKs would
      // loop), stored, dead-lettered or turned into events, whatever its header holds.
      acks_received.inc();
      log::debug(
          "hl7.ack_received",
          {{"sender", sender_of(m)}, {"control_id", m.get("MSH-10")}, {"msa", m.get("MSA-1")}});
      co_return std::string();
    }
    const auto type = m.get("MSH-9.1") + "^" + m.get("MSH-9.2");
    if (options.rate_limits != nullptr) {
      const auto party = options.parties != nullptr
                             ? options.parties->connection_party({peer.address, peer.tls_subject})
                             : std::string();
      const auto decision =
          options.rate_limits->take(identity::RateLimits::key_for(party, peer.address));
      if (!decision.allowed) {
        co_return transient_nak(m, type,
                                "over this sender's rate limit (rate_limits): resend after " +
                                    std::to_string(decision.retry_after.count()) + " s",
                                ErrorCondition::kApplicationInternalError);
      }
    }
    // MSH-11 and MSH-12 decide acceptance (AR, CR in enhanced mode) before anything is read.
    if (auto refused = check_header(m)) {
      co_return co_await reject(m, type, refused->error, "validate", received_at, std::move(text),
                                refused->condition);
    }
    const auto& charset = m.charset();
    if (!charset.supported) {
      const Location where{"MSH", 1, 18, 0, ""};
      const auto refused = Error::unsupported(
          "character set \"" + m.get("MSH-18") +
              "\" is not supported: send one of ASCII, 8859/1 or UNICODE UTF-8, without "
              "alternate character sets",
          where);
      co_return co_await reject(m, type, refused, "validate", received_at, std::move(text));
    }
    if (charset.invalid_utf8_at) {
      const auto where = m.location_of(*charset.invalid_utf8_at);
      const auto invalid = Error::invalid(
          where, "MSH-18 declares UTF-8 but " + where.segment + "-" + std::to_string(where.field) +
                     " holds bytes that are not UTF-8 (declare 8859/1 for Latin-1 or "
                     "Windows-1252 text)");
      co_return co_await reject(m, type, invalid, "validate", received_at, std::move(text),
                                ErrorCondition::kDataTypeError);
    }
    if (charset.fallback) {
      const auto declared = charset.declared.empty() ? std::string("none") : charset.declared;
      charset_fallbacks.with({declared, std::string(to_string(charset.charset))}).inc();
      log::info("hl7.charset_fallback", {{"sender", sender_of(m)},
                                         {"control_id", m.get("MSH-10")},
                                         {"declared", declared},
                                         {"read_as", to_string(charset.charset)}});
    }
    if (type == "ORU^R01" || type == "REF^I12" || type == "REF^I13" || type == "REF^I14") {
      // A clinic's message counts as the clinic its connection proves to be (parties).
      if (auto refused = clinic_refusal(m, peer)) {
        co_return co_await reject(m, type, *refused, "validate", received_at, std::move(text),
                                  ErrorCondition::kTableValueNotFound);
      }
    }
    if (type == "ORU^R01") co_return co_await handle_oru(m, type, std::move(text), received_at);
    // Referral messages are decided from the store's referral and its Task.
    if (type == "REF^I12")
      co_return co_await reading(handle_ref(m, type, std::move(text), received_at));
    if (type == "RRI^I12")
      co_return co_await reading(handle_rri(m, type, std::move(text), received_at, peer));
    if (type == "REF^I13" || type == "REF^I14")
      co_return co_await reading(handle_clinic_change(m, type, std::move(text), received_at));
    // A message type the gateway reads with another trigger event is 201 naming MSH-9.2; any
    // other type is 200 naming MSH-9.
    const auto code = m.get("MSH-9.1");
    const bool known_type = code == "ORU" || code == "REF" || code == "RRI";
    const Location where{"MSH", 1, 9, known_type ? 2 : 0, ""};
    const auto unsupported = Error::unsupported(
        type +
            " is not a message type this gateway accepts (ORU^R01, REF^I12, REF^I13, REF^I14, "
            "RRI^I12)",
        where);
    co_return co_await reject(m, type, unsupported, "validate", received_at, std::move(text),
                              known_type ? ErrorCondition::kUnsupportedEventCode
                                         : ErrorCondition::kUnsupportedMessageType);
  }
};

Hl7Pipeline::Hl7Pipeline(const mapping::ScreeningMapper& mapper, pipeline::CommitPort& store,
                         Hl7PipelineOptions options, metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(mapper, store, std::move(options), registry)) {}

Hl7Pipeline::~Hl7Pipeline() = default;

asio::awaitable<std::string> Hl7Pipeline::handle(std::string frame, const pipeline::Peer& peer) {
  // Parsed, validated and mapped on the listener's I/O thread, and committed from there; only
  // what reads the store (a referral's decision) moves to the store executor (Impl::reading).
  co_return co_await handle_here(std::move(frame), peer);
}

asio::awaitable<std::string> Hl7Pipeline::handle_here(std::string frame,
                                                      const pipeline::Peer& peer) {
  const auto started = std::chrono::steady_clock::now();
  std::string answer;
  auto messages = split_batch(frame);
  if (!messages || messages->size() == 1) {
    answer = co_await impl_->handle_one(std::move(frame), peer);
  } else {
    // A batch is answered with a batch of ACKs, one per message, in order.
    // BTS-1 counts the answer messages: none for a sender's ACK, two for an enhanced-mode
    // accept ACK followed by its application ACK.
    answer = "BHS|^~\\&|SDOH_GW||||" + hl7_now() + "\r";
    std::size_t count = 0;
    for (auto text : *messages) {
      auto one = co_await impl_->handle_one(std::string(text), peer);
      count += split_answers(one).size();
      answer += one;
    }
    answer += "BTS|" + std::to_string(count) + "\r";
  }
  impl_->processing.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  co_return answer;
}

}  // namespace sdoh::hl7v2
