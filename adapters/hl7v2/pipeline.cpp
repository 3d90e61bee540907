#include "adapters/hl7v2/pipeline.hpp"

#include <chrono>
#include <ctime>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/hl7v2/oru.hpp"
#include "gateway/events/dead_letter.hpp"
#include "gateway/events/event.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/log/log.hpp"

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

// MSH-18 character sets this gateway reads (HL7 table 0211): ASCII, Latin-1 and UTF-8.
bool supported_charset(std::string_view cs) {
  return cs.empty() || cs == "ASCII" || cs == "8859/1" || cs == "UNICODE UTF-8" || cs == "UNICODE";
}

std::string label_for_type(const std::string& type) {
  for (const char* known : {"ORU^R01", "REF^I12", "RRI^I12", "ACK"}) {
    if (type == known) return type;
  }
  return "other";
}

}  // namespace

struct Hl7Pipeline::Impl {
  const mapping::ScreeningMapper& mapper;
  pipeline::CommitPort& store;
  std::function<void()> on_commit;
  Hl7PipelineOptions options;
  metrics::Family<metrics::Counter>& messages;
  metrics::Counter& parse_errors;
  metrics::Counter& duplicates;
  metrics::Histogram& processing;

  Impl(const mapping::ScreeningMapper& m, pipeline::CommitPort& s, std::function<void()> cb,
       Hl7PipelineOptions o, metrics::Registry& reg)
      : mapper(m),
        store(s),
        on_commit(std::move(cb)),
        options(std::move(o)),
        messages(reg.counter("sdoh_hl7_messages_total",
                             "HL7 v2 messages answered, by type and ACK code.", {"type", "ack"})),
        parse_errors(
            reg.counter("sdoh_hl7_parse_errors_total", "Frames that were not parseable HL7 v2.")
                .with()),
        duplicates(reg.counter("sdoh_hl7_duplicates_total",
                               "Resent messages answered with their stored ACK (no new events).")
                       .with()),
        processing(reg.histogram("sdoh_hl7_processing_seconds",
                                 "Parse, map and durable commit of one HL7 message.")
                       .with()) {}

  AckOptions ack_options(const Message& m) const {
    // The ACK's own control id: stable for a resend, distinct from the message's.
    return {"ACK" + identity::sha256_hex(sender_of(m) + "|" + m.get("MSH-10")).substr(0, 17),
            hl7_now(), "SDOH_GW"};
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

  // Commits and answers; a store failure turns any answer into a negative one (never a false AA).
  asio::awaitable<std::string> commit_and_answer(pipeline::CommitRequest request, const Message* m,
                                                 const std::string& type) {
    const auto code = request.inbound.answer_code;
    auto answer = request.inbound.answer;
    auto outcome = co_await store.commit(std::move(request));
    if (!outcome) {
      log::error("hl7.commit_failed", {{"reason", outcome.error().message}});
      if (m == nullptr) co_return answer;  // already negative (unparseable input)
      auto [nak_code, err] = negative_ack_for(*m, outcome.error());
      err.text = "the message was not accepted: " + outcome.error().message + "; resend later";
      messages.with({label_for_type(type), std::string(to_string(nak_code))}).inc();
      co_return build_ack(*m, nak_code, err, ack_options(*m));
    }
    if (outcome->status == pipeline::CommitStatus::kDuplicate) {
      duplicates.inc();
      messages.with({label_for_type(type), outcome->answer_code}).inc();
      co_return outcome->answer;
    }
    if (on_commit) on_commit();
    messages.with({label_for_type(type), code}).inc();
    co_return answer;
  }

  asio::awaitable<std::string> reject(const Message& m, const std::string& type, const Error& error,
                                      const std::string& stage, const std::string& received_at,
                                      std::string text) {
    auto [code, err] = negative_ack_for(m, error);
    auto ack = build_ack(m, code, err, ack_options(m));
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
    dl.code = std::to_string(static_cast<int>(err.condition));
    dl.text = error.message;
    dl.where = error.where;
    log::info("hl7.rejected", {{"sender", sender},
                               {"control_id", control_id},
                               {"type", type},
                               {"ack", to_string(code)},
                               {"reason", error.message}});
    auto e =
        event(events::EventType::kDeadLetter, "hl7v2|" + sender + "|" + control_id + "|deadletter",
              0, dl.dead_letter_id, options.topics.deadletter, control_id,
              events::dead_letter_data(dl), received_at);
    pipeline::CommitRequest request;
    request.inbound = {"hl7v2", sender,         control_id, type, std::string(to_string(code)),
                       ack,     std::move(text)};
    request.events.push_back(outbox(e));
    request.dead_letter = pipeline::DeadLetterRecord{
        dl.dead_letter_id, stage, dl.code, error.message,
        err.where.segment.empty() ? ""
                                  : err.where.segment + "^" + std::to_string(err.where.sequence) +
                                        "^" + std::to_string(err.where.field)};
    co_return co_await commit_and_answer(std::move(request), &m, type);
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
    dl.code = "100";
    dl.text = error.message;
    dl.where = error.where;
    dl.replayable = false;
    log::info("hl7.unparseable",
              {{"peer", peer.address}, {"bytes", text.size()}, {"reason", error.message}});
    auto ack = build_unparseable_ack(
        error, {"ACK" + dl.dead_letter_id.substr(0, 17), hl7_now(), "SDOH_GW"});
    auto e = event(events::EventType::kDeadLetter, dl.dead_letter_id, 0, dl.dead_letter_id,
                   options.topics.deadletter, dl.dead_letter_id, events::dead_letter_data(dl),
                   received_at);
    pipeline::CommitRequest request;
    request.inbound = {"hl7v2", sender, "", "unparseable", "AR", ack, std::move(text)};
    request.events.push_back(outbox(e));
    request.dead_letter =
        pipeline::DeadLetterRecord{dl.dead_letter_id, "parse", "100", error.message, "MSH"};
    co_return co_await commit_and_answer(std::move(request), nullptr, "unparseable");
  }

  asio::awaitable<std::string> handle_one(std::string text, const pipeline::Peer& peer) {
    const auto received_at = events::now_rfc3339();
    auto parsed = Message::parse(text);
    if (!parsed)
      co_return co_await reject_unparseable(std::move(text), parsed.error(), peer, received_at);
    const auto& m = *parsed;
    const auto type = m.get("MSH-9.1") + "^" + m.get("MSH-9.2");
    if (!supported_charset(m.get("MSH-18"))) {
      Location where{"MSH", 1, 18, 0, ""};
      co_return co_await reject(
          m, type,
          Error::unsupported("character set \"" + m.get("MSH-18") +
                                 "\" is not supported (ASCII, 8859/1, UNICODE UTF-8)",
                             where),
          "validate", received_at, std::move(text));
    }
    if (type != "ORU^R01") {
      Location where{"MSH", 1, 9, 0, ""};
      co_return co_await reject(
          m, type,
          Error::unsupported(type + " is not a message type this gateway accepts (ORU^R01)", where),
          "validate", received_at, std::move(text));
    }
    auto screenings = screenings_from_oru(m);
    if (!screenings)
      co_return co_await reject(m, type, screenings.error(), "validate", received_at,
                                std::move(text));

    const auto sender = sender_of(m);
    const auto control_id = m.get("MSH-10");
    pipeline::CommitRequest request;
    int position = 0;
    for (const auto& s : *screenings) {
      auto mapped = mapper.map(s);
      if (!mapped) {
        Error e = mapped.error();
        if (e.where.expression == "patient.identifier") e.where = {"PID", 1, 3, 0, ""};
        if (e.where.expression == "items") e.where = {"OBX", 1, 0, 0, ""};
        co_return co_await reject(m, type, e, "map", received_at, std::move(text));
      }
      auto e = event(events::EventType::kScreening, "hl7v2|" + sender + "|" + control_id,
                     position++, mapped->screening_id, options.topics.screening,
                     mapped->patient_pseudonym, std::move(mapped->data), received_at);
      request.events.push_back(outbox(e));
    }
    const auto code = enhanced_mode(m) ? AckCode::kCA : AckCode::kAA;
    auto ack = build_ack(m, code, std::nullopt, ack_options(m));
    request.inbound = {"hl7v2", sender,         control_id, type, std::string(to_string(code)),
                       ack,     std::move(text)};
    log::debug("hl7.accepted", {{"sender", sender},
                                {"control_id", control_id},
                                {"type", type},
                                {"events", request.events.size()}});
    co_return co_await commit_and_answer(std::move(request), &m, type);
  }
};

Hl7Pipeline::Hl7Pipeline(const mapping::ScreeningMapper& mapper, pipeline::CommitPort& store,
                         std::function<void()> on_commit, Hl7PipelineOptions options,
                         metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(mapper, store, std::move(on_commit), std::move(options),
                                   registry)) {}

Hl7Pipeline::~Hl7Pipeline() = default;

asio::awaitable<std::string> Hl7Pipeline::handle(std::string frame, const pipeline::Peer& peer) {
  const auto started = std::chrono::steady_clock::now();
  std::string answer;
  auto messages = split_batch(frame);
  if (!messages || messages->size() == 1) {
    answer = co_await impl_->handle_one(std::move(frame), peer);
  } else {
    // A batch is answered with a batch of ACKs, one per message, in order.
    answer = "BHS|^~\\&|SDOH_GW||||" + hl7_now() + "\r";
    for (auto text : *messages)
      answer += co_await impl_->handle_one(std::string(text), peer);
    answer += "BTS|" + std::to_string(messages->size()) + "\r";
  }
  impl_->processing.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  co_return answer;
}

}  // namespace sdoh::hl7v2
