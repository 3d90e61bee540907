#include "adapters/hl7v2/clinic_return.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <rapidjson/document.h>

#include "adapters/hl7v2/message.hpp"
#include "adapters/hl7v2/mllp_client.hpp"
#include "adapters/net/backoff.hpp"
#include "adapters/net/tls.hpp"
#include "gateway/core/thread_name.hpp"
#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::hl7v2 {

namespace asio = boost::asio;

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
    pipeline::CommitRequest& request, const std::vector<mapping::StatusEvent>& changes,
    const config::Hl7Config& hl7, const std::string& gateway_id,
    const std::function<std::optional<pipeline::ReferralState>(const std::string&)>& lookup) {
  for (const auto& [event_id, t] : changes) {
    if (t.sequence < 2) continue;  // the referral's creation: nothing to answer
    std::optional<pipeline::ReferralState> state;
    for (const auto& r : request.referrals) {
      if (r.referral_id == t.referral_id && !r.return_to.empty()) state = r;
    }
    if (!state) state = lookup(t.referral_id);
    if (!state || state->return_to.empty()) continue;
    auto sender = hl7.senders.find(state->return_to);
    if (sender == hl7.senders.end() || sender->second.return_address.empty()) continue;
    RriContent c;
    c.gateway_id = gateway_id;
    c.clinic = state->return_to;
    c.control_id = "GW" + event_id.substr(0, 18);
    c.timestamp = hl7_now();
    c.ref_control_id = state->source_control_id;
    c.referral = *state;
    c.status = std::string(mapping::to_string(t.status));
    c.business_status = t.business_status;
    c.reason = t.reason;
    request.outbound.push_back({sender->second.return_address, build_rri_i12(c), t.referral_id});
  }
}

// ---------------------------------------------------------------------------------------------

struct ClinicReturnSender::Impl {
  pipeline::OutboundQueue& store;
  config::Hl7Config hl7;
  std::chrono::milliseconds interval;
  std::thread thread;
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  bool woken = false;
  metrics::Family<metrics::Counter>& sent;
  // Belong to `thread`: its io_context runs only while one send is under way, so kept
  // connections wait idle in between.
  asio::io_context ioc;
  MllpClient client;
  std::map<std::string, std::shared_ptr<asio::ssl::context>> tls_by_ca_file;
  // 1 s, 2 s, 4 s … at most 5 min, up to a quarter less at random.
  const net::BackoffPolicy backoff{std::chrono::milliseconds(1'000),
                                   std::chrono::milliseconds(300'000), 2.0, 0.25};

  Impl(pipeline::OutboundQueue& s, config::Hl7Config h, metrics::Registry& registry,
       std::chrono::milliseconds i)
      : store(s),
        hl7(std::move(h)),
        interval(i),
        sent(registry.counter("sdoh_hl7_outbound_total",
                              "RRI^I12 answers sent to clinics, by outcome (acked, refused, "
                              "retry).",
                              {"outcome"})),
        client(ioc.get_executor(), client_options()) {}

  static MllpClientOptions client_options() {
    MllpClientOptions o;
    o.connect_timeout = std::chrono::seconds(10);
    o.answer_timeout = std::chrono::seconds(10);
    return o;
  }

  // One framed message out, one framed answer back (mllp_client.hpp).
  MllpSendOutcome exchange(const std::string& destination, const std::string& ca_file,
                           const std::string& message) {
    auto endpoint = MllpEndpoint::parse(destination, "return_address");
    if (!endpoint) {
      MllpSendOutcome out;
      out.error = MllpTransportError::kResolve;
      out.text = endpoint.error().message;
      return out;
    }
    if (!ca_file.empty()) {
      auto& ctx = tls_by_ca_file[ca_file];
      if (!ctx) {
        net::ClientTlsOptions tls;
        tls.ca_file = ca_file;
        auto made = net::make_client_tls_context(tls, "return_ca_file");
        if (!made) {
          tls_by_ca_file.erase(ca_file);  // read again next time: the operator may fix it
          MllpSendOutcome out;
          out.error = MllpTransportError::kTls;
          out.text = made.error().message;
          return out;
        }
        ctx = *made;
      }
      endpoint->tls = ctx;
    }
    std::optional<MllpSendOutcome> out;
    asio::co_spawn(ioc, client.send(*endpoint, message),
                   [&out](std::exception_ptr e, MllpSendOutcome o) {
                     if (e) {
                       o = MllpSendOutcome{};
                       o.error = MllpTransportError::kClosed;
                       o.text = "the send failed unexpectedly";
                     }
                     out = std::move(o);
                   });
    ioc.restart();
    ioc.run();  // until the send is done: every wait in it has a deadline
    return out.value_or(MllpSendOutcome{});
  }

  void run() {
    std::mt19937_64 rng(std::random_device{}());
    for (;;) {
      {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, interval, [this] { return stopping || woken; });
        if (stopping) break;
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
        const auto answer = exchange(o.destination, ca_file, o.message);
        const std::string code = answer.code ? std::string(to_string(*answer.code)) : "";
        // Logged: codes, kinds and our own transport texts; never the clinic's words, which may
        // quote the message (they are kept with the attempt in the store).
        if (answer.accepted()) {
          store.record_outbound_attempt(o.id, true, code, "", now);
          sent.with({"acked"}).inc();
          log::info("hl7.rri_acked", {{"referral", o.referral_id}, {"destination", o.destination}});
        } else if (answer.final_rejection()) {
          // Refused for good: sending it again would get the same answer.
          store.record_outbound_attempt(o.id, true, code, answer.text, now);
          sent.with({"refused"}).inc();
          log::warn("hl7.rri_refused", {{"referral", o.referral_id},
                                        {"destination", o.destination},
                                        {"code", code},
                                        {"error_code", answer.error_code}});
        } else {
          const auto delay = net::backoff_delay(backoff, o.attempts + 1, rng);
          const bool answered = answer.status == MllpSendOutcome::Status::kRejected;
          store.record_outbound_attempt(o.id, false, "",
                                        answered ? code + ": " + answer.text : answer.text,
                                        now + delay.count());
          sent.with({"retry"}).inc();
          log::info("hl7.rri_retry",
                    {{"referral", o.referral_id},
                     {"destination", o.destination},
                     {"attempt", o.attempts + 1},
                     {"retry_in_ms", delay.count()},
                     {"reason", answered       ? code
                                : answer.error ? std::string(to_string(*answer.error))
                                               : std::string("unknown")},
                     {"detail", answered ? answer.error_code : answer.text}});
        }
        {
          std::lock_guard lock(mutex);
          if (stopping) break;
        }
      }
    }
    client.close_idle();
  }
};

ClinicReturnSender::ClinicReturnSender(pipeline::OutboundQueue& store, const config::Hl7Config& hl7,
                                       metrics::Registry& registry,
                                       std::chrono::milliseconds interval)
    : impl_(std::make_unique<Impl>(store, hl7, registry, interval)) {}

ClinicReturnSender::~ClinicReturnSender() {
  stop();
}

void ClinicReturnSender::start() {
  impl_->thread = std::thread([impl = impl_.get()] {
    name_this_thread("clinic-returns");
    impl->run();
  });
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
