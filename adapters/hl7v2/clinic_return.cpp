#include "adapters/hl7v2/clinic_return.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <rapidjson/document.h>

#include "adapters/hl7v2/message.hpp"
#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::hl7v2 {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

const Delimiters kDelims{};

std::string esc(std::string_view v) {
  return escape(v, kDelims);
}

// HL7 table 0283 for the clinic's systems; the lifecycle status goes in the text.
std::string_view code_0283(std::string_view status) {
  if (status == "requested" || status == "received") return "P";
  if (status == "rejected" || status == "cancelled") return "R";
  if (status == "failed") return "E";
  return "A";  // accepted, in-progress, on-hold, completed
}

std::string hl7_now() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S+0000", &tm);
  return buf;
}

}  // namespace

std::string build_rri_i12(const RriContent& c) {
  const auto caret = c.clinic.find('^');
  const auto app = c.clinic.substr(0, caret);
  const auto facility = caret == std::string::npos ? std::string() : c.clinic.substr(caret + 1);
  std::string out = "MSH|^~\\&|SDOH_GW|" + esc(c.gateway_id) + "|" + esc(app) + "|" +
                    esc(facility) + "|" + c.timestamp + "||RRI^I12^RRI_I12|" + esc(c.control_id) +
                    "|P|2.5.1|||AL|NE\r";
  if (!c.ref_control_id.empty()) out += "MSA|AA|" + esc(c.ref_control_id) + "\r";
  out += "RF1|" + std::string(code_0283(c.status)) + "^" + esc(c.status) + "^HL70283|||||" +
         esc(c.referral.clinic_number_value) + "^" + esc(c.referral.clinic_number_system) +
         "|||||" + esc(c.referral.referral_id) + "^SDOH_GW\r";
  out += "PRD|RT^Referred to provider^HL70286||||||" + esc(c.referral.agency_id) + "^AGENCY\r";
  out += "PID|1||" + c.referral.return_pid + "\r";  // PID-3 exactly as the clinic sent it
  if (!c.business_status.empty() || !c.reason.empty()) {
    std::string note = c.business_status;
    if (!c.reason.empty()) note += (note.empty() ? "" : ": ") + c.reason;
    out += "NTE|1||" + esc(note) + "\r";
  }
  return out;
}

void add_clinic_returns(
    pipeline::CommitRequest& request, const config::Hl7Config& hl7, const std::string& gateway_id,
    const std::function<std::optional<pipeline::ReferralState>(const std::string&)>& lookup) {
  for (const auto& e : request.events) {
    if (e.type != "org.sdoh.referral.status.v1") continue;
    rapidjson::Document doc;
    doc.Parse(e.value.data(), e.value.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("data")) continue;
    const auto& d = doc["data"];
    auto str = [&d](const char* name) -> std::string {
      auto it = d.FindMember(name);
      return it != d.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
    };
    if (!d.HasMember("sequence") || !d["sequence"].IsInt() || d["sequence"].GetInt() < 2) continue;
    const auto rid = str("referralId");
    std::optional<pipeline::ReferralState> state;
    for (const auto& r : request.referrals) {
      if (r.referral_id == rid && !r.return_to.empty()) state = r;
    }
    if (!state) state = lookup(rid);
    if (!state || state->return_to.empty()) continue;
    auto sender = hl7.senders.find(state->return_to);
    if (sender == hl7.senders.end() || sender->second.return_address.empty()) continue;
    RriContent c;
    c.gateway_id = gateway_id;
    c.clinic = state->return_to;
    c.control_id = "GW" + e.event_id.substr(0, 18);
    c.timestamp = hl7_now();
    c.ref_control_id = state->source_control_id;
    c.referral = *state;
    c.status = str("status");
    c.business_status = str("businessStatus");
    c.reason = str("reason");
    request.outbound.push_back({sender->second.return_address, build_rri_i12(c), rid});
  }
}

// ---------------------------------------------------------------------------------------------

struct ClinicReturnSender::Impl {
  store::SqliteStore& store;
  config::Hl7Config hl7;
  std::chrono::milliseconds interval;
  std::thread thread;
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  bool woken = false;
  metrics::Family<metrics::Counter>& sent;

  Impl(store::SqliteStore& s, config::Hl7Config h, metrics::Registry& registry,
       std::chrono::milliseconds i)
      : store(s),
        hl7(std::move(h)),
        interval(i),
        sent(registry.counter("sdoh_hl7_outbound_total",
                              "RRI^I12 answers sent to clinics, by outcome (acked, refused, "
                              "retry).",
                              {"outcome"})) {}

  struct Answer {
    bool answered = false;
    std::string code;   // MSA-1
    std::string error;  // transport problem, or the ERR/MSA text
  };

  // One framed message out, one framed answer back, within `timeout`.
  Answer exchange(const std::string& destination, const std::string& ca_file,
                  const std::string& message, std::chrono::seconds timeout) {
    Answer out;
    const auto colon = destination.rfind(':');
    const auto host = destination.substr(0, colon);
    const auto port = destination.substr(colon + 1);
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    const std::string framed = "\x0b" + message + "\x1c\r";
    std::string reply;
    boost::system::error_code ec;
    auto endpoints = resolver.resolve(host, port, ec);
    if (ec) {
      out.error = "cannot resolve " + destination + ": " + ec.message();
      return out;
    }
    auto finish = [&](auto& stream, auto& lowest) {
      asio::async_write(stream, asio::buffer(framed),
                        [&](boost::system::error_code wec, std::size_t) {
                          if (wec) {
                            out.error = "send failed: " + wec.message();
                            return;
                          }
                          asio::async_read_until(stream, asio::dynamic_buffer(reply), "\x1c\r",
                                                 [&](boost::system::error_code rec, std::size_t) {
                                                   if (rec)
                                                     out.error = "no answer: " + rec.message();
                                                 });
                        });
      ioc.run_for(timeout);
      if (!ioc.stopped()) {
        out.error = "no answer within " + std::to_string(timeout.count()) + " s";
        boost::system::error_code ignored;
        lowest.close(ignored);
      }
    };
    bool connected = false;
    if (ca_file.empty()) {
      tcp::socket socket(ioc);
      asio::async_connect(socket, endpoints,
                          [&](boost::system::error_code cec, const tcp::endpoint&) {
                            if (cec)
                              out.error = "cannot connect to " + destination + ": " + cec.message();
                            connected = !cec;
                          });
      ioc.run_for(timeout);
      if (!connected) {
        if (out.error.empty()) out.error = "cannot connect to " + destination + ": timed out";
        return out;
      }
      ioc.restart();
      finish(socket, socket);
    } else {
      asio::ssl::context ctx(asio::ssl::context::tls_client);
      ctx.set_verify_mode(asio::ssl::verify_peer);
      ctx.load_verify_file(ca_file, ec);
      if (ec) {
        out.error = "cannot read " + ca_file + ": " + ec.message();
        return out;
      }
      asio::ssl::stream<tcp::socket> stream(ioc, ctx);
      SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
      asio::async_connect(stream.lowest_layer(), endpoints,
                          [&](boost::system::error_code cec, const tcp::endpoint&) {
                            if (cec) {
                              out.error = "cannot connect to " + destination + ": " + cec.message();
                              return;
                            }
                            stream.async_handshake(asio::ssl::stream_base::client,
                                                   [&](boost::system::error_code hec) {
                                                     if (hec) out.error = "TLS: " + hec.message();
                                                     connected = !hec;
                                                   });
                          });
      ioc.run_for(timeout);
      if (!connected) {
        if (out.error.empty()) out.error = "cannot connect to " + destination + ": timed out";
        return out;
      }
      ioc.restart();
      finish(stream, stream.lowest_layer());
    }
    if (!out.error.empty()) return out;
    const auto start = reply.find('\x0b');
    const auto end = reply.find("\x1c\r");
    if (start == std::string::npos || end == std::string::npos || end < start) {
      out.error = "the answer is not an MLLP frame";
      return out;
    }
    auto ack = Message::parse(reply.substr(start + 1, end - start - 1));
    if (!ack) {
      out.error = "the answer is not HL7: " + ack.error().message;
      return out;
    }
    out.answered = true;
    out.code = ack->get("MSA-1");
    if (out.code != "AA" && out.code != "CA") {
      out.error = ack->get("ERR-8");
      if (out.error.empty()) out.error = ack->get("MSA-3");
    }
    return out;
  }

  void run() {
    std::mt19937 rng(std::random_device{}());
    for (;;) {
      {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, interval, [this] { return stopping || woken; });
        if (stopping) return;
        woken = false;
      }
      const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      auto due = store.due_outbound(now, 20);
      if (!due) continue;
      for (const auto& o : *due) {
        std::string ca_file;
        for (const auto& [name, s] : hl7.senders) {
          if (s.return_address == o.destination && !s.return_ca_file.empty())
            ca_file = s.return_ca_file;
        }
        auto answer = exchange(o.destination, ca_file, o.message, std::chrono::seconds(10));
        if (answer.answered && (answer.code == "AA" || answer.code == "CA")) {
          store.record_outbound_attempt(o.id, true, answer.code, "", now);
          sent.with({"acked"}).inc();
          log::info("hl7.rri_acked", {{"referral", o.referral_id}, {"destination", o.destination}});
        } else if (answer.answered && (answer.code == "AR" || answer.code == "CR")) {
          // Refused for good: sending it again would get the same answer.
          store.record_outbound_attempt(o.id, true, answer.code, answer.error, now);
          sent.with({"refused"}).inc();
          log::warn("hl7.rri_refused", {{"referral", o.referral_id},
                                        {"destination", o.destination},
                                        {"code", answer.code},
                                        {"reason", answer.error}});
        } else {
          // Exponential backoff with jitter: 1 s, 2 s, 4 s … at most 5 min.
          const auto base = std::min<std::int64_t>(300'000, 1000LL << std::min(o.attempts, 9));
          const auto jitter = std::uniform_int_distribution<std::int64_t>(0, base / 4)(rng);
          store.record_outbound_attempt(
              o.id, false, "", answer.answered ? answer.code + ": " + answer.error : answer.error,
              now + base + jitter);
          sent.with({"retry"}).inc();
          log::info("hl7.rri_retry", {{"referral", o.referral_id},
                                      {"destination", o.destination},
                                      {"attempt", o.attempts + 1},
                                      {"reason", answer.answered ? answer.code : answer.error}});
        }
        {
          std::lock_guard lock(mutex);
          if (stopping) return;
        }
      }
    }
  }
};

ClinicReturnSender::ClinicReturnSender(store::SqliteStore& store, const config::Hl7Config& hl7,
                                       metrics::Registry& registry,
                                       std::chrono::milliseconds interval)
    : impl_(std::make_unique<Impl>(store, hl7, registry, interval)) {}

ClinicReturnSender::~ClinicReturnSender() {
  stop();
}

void ClinicReturnSender::start() {
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void ClinicReturnSender::wake() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->woken = true;
  }
  impl_->cv.notify_one();
}

void ClinicReturnSender::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->cv.notify_one();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace sdoh::hl7v2
