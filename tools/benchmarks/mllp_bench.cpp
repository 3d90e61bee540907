// bench-mllp: MLLP load generator. Opens N connections to an MLLP listener; each sends one
// ORU^R01 screening message, waits for its ACK, then sends the next (closed loop, as an
// interface engine in original acknowledgment mode does), for a warm-up and then a measured
// window. Every ACK must be AA with MSA-2 = the MSH-10 sent; anything else is counted. Prints
// messages/s and p50/p99/max latency (write of the frame to the last byte of its ACK).
//   tools/bench mllp                      (starts a gateway, runs 1 and 8 connections)
//   build/bench/bench-mllp --port 2575 --connections 8 --seconds 10
//   build/bench/bench-mllp --port 2575 --connections 8 --rate 5000 --seconds 120
//                                         (open-loop pacing: at most 5000 messages/s in all)
// SIGINT or SIGTERM ends the window early: the figures so far are printed (over the time run).
//
// A plain CLI rather than Google Benchmark: Benchmark decides how many iterations to run and
// times them itself, while a network load test runs for a fixed wall-clock window over N
// concurrent closed loops against a separate process; wrapped in benchmark::State it would be
// one iteration of manual time that only re-labels the figures printed here.
//
// Exit status: 0 when every ACK in the run was the expected code echoing its control id, 1 when
// any was not (or an I/O error occurred), 2 on usage errors.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using tcp_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// MLLP block characters (HL7 v2.5.1 Implementation Guide, appendix C: <SB> message <EB><CR>).
constexpr char kStartBlock = 0x0B;
constexpr char kEndBlock = 0x1C;
constexpr char kCarriageReturn = 0x0D;
constexpr std::size_t kMaxAckBytes = 64 * 1024;

// ../shared/samples/hl7v2/oru-r01-ahc-hrsn-positive.hl7 with MSH-15/MSH-16 left empty: original
// acknowledgment mode, so the gateway answers AA after the durable commit (not CA).
constexpr std::string_view kAhcHrsnOru =
    "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120103000-0500||ORU^R01^ORU_R01|A1000001|P|"
    "2.5.1|||||||UNICODE UTF-8\r"
    "PID|1||MRN12345^^^PEDS_A^MR~8675309^^^STATE_MEDICAID^MA||Garcia^Sofia^^^^^L||20260501|F||2106-"
    "3^White^CDCREC|12 Elm St^^Durham^NC^27701^USA||^PRN^PH^^1^919^5551234|||||||||2135-2^Hispanic "
    "or Latino^CDCREC\r"
    "NK1|1|Garcia^Maria|MTH^Mother^HL70063|12 Elm St^^Durham^NC^27701^USA|^PRN^PH^^1^919^5551234\r"
    "PV1|1|O|PEDS^^^PEDS_A||||1234567890^Rivera^Ana^^^Dr\r"
    "OBR|1|ORD123|SCR456|96777-8^Accountable health communities (AHC) health-related social needs "
    "screening (HRSN) tool^LN|||20261120100000-0500\r"
    "OBX|1|CWE|71802-3^Housing status^LN||LA31994-9^I have a place to live today, but I am worried "
    "about losing it in the future^LN||||||F|||20261120100000-0500\r"
    "OBX|2|CWE|96778-6^Problems with place where you live^LN|1|LA28580-1^Mold^LN~LA31996-4^Pests "
    "such as bugs, ants, or mice^LN||||||F\r"
    "OBX|3|CWE|88122-7^Within the past 12 months we worried whether our food would run out before "
    "we got money to buy more^LN||LA28397-0^Often true^LN||||||F\r"
    "OBX|4|CWE|88123-5^Within the past 12 months the food we bought just didn't last and we didn't "
    "have money to get more^LN||LA6729-3^Sometimes true^LN||||||F\r"
    "OBX|5|CWE|93030-5^Has lack of transportation kept you from medical appointments, meetings, "
    "work, or from getting things needed for daily living^LN||LA32-8^No^LN||||||F\r"
    "OBX|6|CWE|96779-4^Has the electric, gas, oil, or water company threatened to shut off "
    "services in your home in past 12 months^LN||LA32-8^No^LN||||||F\r";

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 2575;
  int connections = 8;
  double seconds = 10;
  double warmup = 2;
  double ack_timeout = 10;
  int threads = 1;
  double rate = 0;  ///< messages/s over all connections together; 0: as fast as ACKs come
  bool tls = false;
  std::string ca_file;
  std::string message_file;
  std::string expect = "AA";
  bool header = true;
};

/// The message to send, split around MSH-10 so each send only splices in a new control id.
struct MessageTemplate {
  std::string before_control_id;  // <SB> and MSH up to and including the '|' before MSH-10
  std::string after_control_id;   // from the '|' after MSH-10 to <EB><CR>
  std::string description;

  std::string frame(std::string_view control_id) const {
    std::string out;
    out.reserve(before_control_id.size() + control_id.size() + after_control_id.size());
    out += before_control_id;
    out += control_id;
    out += after_control_id;
    return out;
  }
};

std::optional<MessageTemplate> make_template(std::string message, std::string description) {
  // Segment terminators on the wire are CR (HL7 v2.5.1 2.5.4); sample files may carry LF/CRLF.
  std::string normalized;
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\n') {
      if (normalized.empty() || normalized.back() != kCarriageReturn) normalized += kCarriageReturn;
    } else {
      normalized += message[i];
    }
  }
  while (!normalized.empty() && normalized.back() == kCarriageReturn)
    normalized.pop_back();
  normalized += kCarriageReturn;
  if (normalized.size() < 8 || normalized.compare(0, 3, "MSH") != 0) return std::nullopt;
  const char field = normalized[3];  // MSH-1 is the field separator itself
  // The separator at offset 3 is MSH-1 and opens MSH-2; the 9th separator opens MSH-10.
  std::size_t start = 3;
  for (int i = 0; i < 8; ++i) {
    start = normalized.find(field, start + 1);
    if (start == std::string::npos) return std::nullopt;
  }
  const auto end = normalized.find_first_of(std::string{field, kCarriageReturn}, start + 1);
  if (end == std::string::npos) return std::nullopt;
  MessageTemplate t;
  t.before_control_id = std::string(1, kStartBlock) + normalized.substr(0, start + 1);
  t.after_control_id = normalized.substr(end) + kEndBlock + kCarriageReturn;
  t.description = std::move(description) + ", " + std::to_string(normalized.size()) + " bytes";
  return t;
}

enum class AckOutcome { kExpected, kAE, kAR, kOther };

/// Classifies one ACK (the bytes between <SB> and <EB>): the expected code with MSA-2 equal to
/// the control id sent, AE, AR, or anything else (another code, a wrong MSA-2, no MSA).
AckOutcome classify_ack(std::string_view ack, std::string_view control_id,
                        std::string_view expected_code) {
  if (ack.size() < 4 || ack.compare(0, 3, "MSH") != 0) return AckOutcome::kOther;
  const char field = ack[3];
  std::size_t pos = 0;
  while (pos < ack.size()) {
    auto eol = ack.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) eol = ack.size();
    const auto segment = ack.substr(pos, eol - pos);
    pos = eol + 1;
    if (segment.size() < 4 || segment.compare(0, 3, "MSA") != 0 || segment[3] != field) continue;
    // HL7 v2.5.1 2.14.8: MSA-1 acknowledgment code, MSA-2 echoes MSH-10 of the message.
    const auto rest = segment.substr(4);
    const auto sep = rest.find(field);
    const auto code = rest.substr(0, sep);
    auto msa2 = sep == std::string_view::npos ? std::string_view{} : rest.substr(sep + 1);
    msa2 = msa2.substr(0, msa2.find(field));
    if (code == expected_code && msa2 == control_id) return AckOutcome::kExpected;
    if (code == "AE") return AckOutcome::kAE;
    if (code == "AR") return AckOutcome::kAR;
    return AckOutcome::kOther;
  }
  return AckOutcome::kOther;
}

/// What one connection saw. Owned by that connection's coroutine until the io_context stops.
struct ConnectionStats {
  std::vector<std::uint32_t> latencies_us;  // completions inside the measured window
  std::uint64_t expected = 0, ae = 0, ar = 0, other = 0, errors = 0;
  std::uint64_t warmup_failures = 0;  // non-expected ACKs and errors during the warm-up
  std::string first_failure;
};

struct Run {
  Options opt;
  MessageTemplate message;
  tcp::resolver::results_type endpoints;
  std::shared_ptr<asio::ssl::context> tls;
  std::string run_id;  // makes control ids unique across runs against the same store
  Clock::time_point started, measure_from, measure_until;
  std::vector<ConnectionStats> stats;
  // With --rate: the n-th message of the run (over every connection) is due at started + n /
  // rate. A connection takes the next ticket before each send, so the pace is shared: a slow
  // connection leaves its turns to the others, and a sender that fell behind catches up at once.
  std::atomic<std::uint64_t> next_ticket{0};
  // Set by SIGINT/SIGTERM: every connection stops before its next send.
  std::atomic<bool> stopping{false};

  bool open() const {
    return !stopping.load(std::memory_order_relaxed) && Clock::now() < measure_until;
  }
};

std::string make_run_id() {
  static constexpr char kDigits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::random_device rd;
  std::mt19937 gen(rd());
  std::string id;
  for (int i = 0; i < 5; ++i)
    id += kDigits[gen() % 36];
  return id;
}

tcp_stream& lowest(tcp_stream& s) {
  return s;
}
tcp_stream& lowest(tls_stream& s) {
  return beast::get_lowest_layer(s);
}

/// Sends messages on one open stream until the window closes or an error; returns false on error.
template <class Stream>
asio::awaitable<bool> drive(Run& run, int index, std::uint64_t& sequence, Stream& stream) {
  auto& st = run.stats[static_cast<std::size_t>(index)];
  std::string buffer;  // received bytes not yet consumed
  std::array<char, 4096> chunk{};
  const auto ack_timeout = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(run.opt.ack_timeout));
  // MSH-10 is ST(20) in v2.5.1: 5 (run) + 3 (connection) + 12 (sequence) characters at most.
  char control_id[32];
  asio::steady_timer pace(co_await asio::this_coro::executor);
  while (run.open()) {
    if (run.opt.rate > 0) {
      const auto ticket = run.next_ticket.fetch_add(1, std::memory_order_relaxed);
      const auto due = run.started + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(ticket / run.opt.rate));
      if (due > Clock::now()) {
        pace.expires_at(due);
        co_await pace.async_wait(kUseTuple);
        if (!run.open()) break;
      }
    }
    const int n = std::snprintf(control_id, sizeof control_id, "%s%03d%llu", run.run_id.c_str(),
                                index, static_cast<unsigned long long>(sequence++));
    const std::string_view id(control_id, static_cast<std::size_t>(n));
    const auto frame = run.message.frame(id);
    const auto sent = Clock::now();
    const bool measured = sent >= run.measure_from;
    auto fail = [&](std::string what) {
      if (measured) {
        ++st.errors;
      } else {
        ++st.warmup_failures;
      }
      if (st.first_failure.empty()) st.first_failure = std::move(what);
    };
    lowest(stream).expires_after(ack_timeout);
    auto [wec, written] = co_await asio::async_write(stream, asio::buffer(frame), kUseTuple);
    if (wec) {
      fail("write: " + wec.message());
      co_return false;
    }
    // Read until one complete <SB> ... <EB><CR> frame is buffered.
    std::size_t start = std::string::npos, end = std::string::npos;
    for (;;) {
      start = buffer.find(kStartBlock);
      if (start != std::string::npos) end = buffer.find(kEndBlock, start + 1);
      if (start != std::string::npos && end != std::string::npos && end + 1 < buffer.size()) break;
      if (buffer.size() > kMaxAckBytes) {
        fail("ACK larger than " + std::to_string(kMaxAckBytes) + " bytes");
        co_return false;
      }
      lowest(stream).expires_after(ack_timeout);
      auto [rec, got] = co_await stream.async_read_some(asio::buffer(chunk), kUseTuple);
      if (rec) {
        fail("read: " + rec.message());
        co_return false;
      }
      buffer.append(chunk.data(), got);
    }
    const auto done = Clock::now();
    const auto ack = std::string_view(buffer).substr(start + 1, end - start - 1);
    const auto outcome = classify_ack(ack, id, run.opt.expect);
    if (buffer[end + 1] != kCarriageReturn && st.first_failure.empty())
      st.first_failure = "ACK frame not ended by <EB><CR>";
    if (outcome != AckOutcome::kExpected && st.first_failure.empty()) {
      std::string shown(ack);
      std::replace(shown.begin(), shown.end(), kCarriageReturn, '\n');
      st.first_failure = "unexpected ACK for " + std::string(id) + ":\n" + shown;
    }
    if (done >= run.measure_from && done <= run.measure_until) {
      st.latencies_us.push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(done - sent).count()));
      switch (outcome) {
        case AckOutcome::kExpected:
          ++st.expected;
          break;
        case AckOutcome::kAE:
          ++st.ae;
          break;
        case AckOutcome::kAR:
          ++st.ar;
          break;
        case AckOutcome::kOther:
          ++st.other;
          break;
      }
    } else if (outcome != AckOutcome::kExpected && done < run.measure_from) {
      ++st.warmup_failures;
    }
    buffer.erase(0, end + 2);
  }
  co_return true;
}

/// One sender: connects (again after an error, until the window closes) and drives messages.
asio::awaitable<void> connection(Run& run, int index) {
  auto executor = co_await asio::this_coro::executor;
  auto& st = run.stats[static_cast<std::size_t>(index)];
  std::uint64_t sequence = 0;
  while (run.open()) {
    tcp_stream tcp(executor);
    tcp.expires_after(std::chrono::seconds(5));
    auto [cec, ep] = co_await tcp.async_connect(run.endpoints, kUseTuple);
    bool ok = false;
    if (cec) {
      ++(Clock::now() < run.measure_from ? st.warmup_failures : st.errors);
      if (st.first_failure.empty()) st.first_failure = "connect: " + cec.message();
    } else {
      tcp.socket().set_option(tcp::no_delay(true));
      if (run.tls) {
        tls_stream stream(std::move(tcp), *run.tls);
        SSL_set_tlsext_host_name(stream.native_handle(), run.opt.host.c_str());
        lowest(stream).expires_after(std::chrono::seconds(5));
        auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kUseTuple);
        if (hec) {
          ++(Clock::now() < run.measure_from ? st.warmup_failures : st.errors);
          if (st.first_failure.empty()) st.first_failure = "TLS handshake: " + hec.message();
        } else {
          ok = co_await drive(run, index, sequence, stream);
          lowest(stream).expires_after(std::chrono::seconds(2));
          co_await stream.async_shutdown(kUseTuple);
        }
      } else {
        ok = co_await drive(run, index, sequence, tcp);
        boost::system::error_code ignored;
        tcp.socket().shutdown(tcp::socket::shutdown_send, ignored);
      }
    }
    if (!ok) {
      // Back off briefly so a refusing listener does not turn the run into a connect loop.
      asio::steady_timer pause(executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(kUseTuple);
    }
  }
}

std::uint32_t percentile(const std::vector<std::uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::string fixed(double v, int decimals) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(decimals);
  s << v;
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"MLLP load generator: N connections, one ORU^R01 in flight each, for T seconds"};
  app.add_option("--host", opt.host, "MLLP listener host")->capture_default_str();
  app.add_option("--port", opt.port, "MLLP listener port")->capture_default_str();
  app.add_option("--connections,-c", opt.connections, "concurrent connections")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--seconds,-t", opt.seconds, "measured window (seconds)")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  app.add_option("--warmup", opt.warmup, "warm-up before the window (seconds, not measured)")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--ack-timeout", opt.ack_timeout, "longest wait for one ACK (seconds)")
      ->check(CLI::Range(0.01, 3600.0))
      ->capture_default_str();
  app.add_option("--threads", opt.threads, "client I/O threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--rate", opt.rate,
                 "messages/s over all connections together, paced from the start of the run "
                 "(0: each connection sends its next message as soon as its ACK arrives)")
      ->check(CLI::Range(0.0, 10'000'000.0))
      ->capture_default_str();
  app.add_flag("--tls", opt.tls, "MLLP over TLS");
  app.add_option("--ca-file", opt.ca_file,
                 "with --tls: verify the server against these PEM CAs (default: no verification)");
  app.add_option("--message", opt.message_file,
                 "ER7 file to send instead of the built-in AHC HRSN ORU^R01 (MSH-10 is replaced)");
  app.add_option("--expect", opt.expect, "ACK code every answer must carry (CA: enhanced mode)")
      ->capture_default_str();
  app.add_flag("!--no-header", opt.header, "print only the result row");
  CLI11_PARSE(app, argc, argv);

  std::optional<MessageTemplate> message;
  if (opt.message_file.empty()) {
    message = make_template(std::string(kAhcHrsnOru), "AHC HRSN ORU^R01");
  } else {
    std::ifstream in(opt.message_file, std::ios::binary);
    if (!in) {
      std::cerr << "bench-mllp: cannot read " << opt.message_file << "\n";
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    message = make_template(text.str(), opt.message_file);
  }
  if (!message) {
    std::cerr << "bench-mllp: the message does not start with an MSH segment that has MSH-10\n";
    return 2;
  }

  Run run;
  run.opt = opt;
  run.message = *message;
  run.run_id = make_run_id();
  run.stats.resize(static_cast<std::size_t>(opt.connections));

  asio::io_context ioc(opt.threads);
  {
    tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    run.endpoints = resolver.resolve(opt.host, std::to_string(opt.port), ec);
    if (ec) {
      std::cerr << "bench-mllp: cannot resolve " << opt.host << ": " << ec.message() << "\n";
      return 2;
    }
  }
  if (opt.tls) {
    run.tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    if (opt.ca_file.empty()) {
      run.tls->set_verify_mode(asio::ssl::verify_none);
    } else {
      boost::system::error_code ec;
      run.tls->load_verify_file(opt.ca_file, ec);
      if (ec) {
        std::cerr << "bench-mllp: --ca-file " << opt.ca_file << ": " << ec.message() << "\n";
        return 2;
      }
      run.tls->set_verify_mode(asio::ssl::verify_peer);
      run.tls->set_verify_callback(asio::ssl::host_name_verification(opt.host));
    }
  }

  const auto to_clock = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  run.started = Clock::now();
  run.measure_from = run.started + to_clock(opt.warmup);
  run.measure_until = run.measure_from + to_clock(opt.seconds);
  // An early end (tools/bench relay stops the load once the backlog has drained): no new sends,
  // the ACKs awaited still count. The set is cancelled once every connection has finished.
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  std::atomic<Clock::rep> stopped_at{Clock::time_point::max().time_since_epoch().count()};
  signals.async_wait([&run, &stopped_at](const boost::system::error_code& ec, int) {
    if (ec) return;
    stopped_at = Clock::now().time_since_epoch().count();
    run.stopping = true;
  });
  std::atomic<int> running{opt.connections};
  for (int i = 0; i < opt.connections; ++i) {
    asio::co_spawn(ioc, connection(run, i), [&ioc, &signals, &running](std::exception_ptr) {
      if (--running == 0) asio::post(ioc, [&signals] { signals.cancel(); });
    });
  }
  std::vector<std::thread> helpers;
  for (int i = 1; i < opt.threads; ++i)
    helpers.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : helpers)
    t.join();

  std::vector<std::uint32_t> latencies;
  ConnectionStats total;
  for (auto& s : run.stats) {
    latencies.insert(latencies.end(), s.latencies_us.begin(), s.latencies_us.end());
    total.expected += s.expected;
    total.ae += s.ae;
    total.ar += s.ar;
    total.other += s.other;
    total.errors += s.errors;
    total.warmup_failures += s.warmup_failures;
    if (total.first_failure.empty()) total.first_failure = s.first_failure;
  }
  std::sort(latencies.begin(), latencies.end());
  // The window actually measured: shorter when a signal ended the run early.
  const auto window_end =
      std::min(run.measure_until, Clock::time_point(Clock::duration(stopped_at.load())));
  const double measured_seconds =
      std::max(1e-3, std::chrono::duration<double>(window_end - run.measure_from).count());
  const auto ms = [](std::uint32_t us) { return fixed(us / 1000.0, 3); };
  if (opt.header) {
    std::cout << "MLLP " << (opt.tls ? "over TLS " : "") << "to " << opt.host << ":" << opt.port
              << ", " << run.message.description << ", " << fixed(opt.warmup, 1)
              << " s warm-up, then " << fixed(measured_seconds, 1) << " s measured"
              << (opt.rate > 0 ? ", paced at " + fixed(opt.rate, 0) + " msg/s" : std::string())
              << "; latency = frame "
              << "written to ACK read\n";
    std::printf("%11s %9s %10s %8s %8s %8s %9s %5s %5s %6s %6s\n", "connections", "messages",
                "msgs/s", "p50_ms", "p99_ms", "max_ms", opt.expect.c_str(), "AE", "AR", "other",
                "errors");
  }
  std::printf(
      "%11d %9zu %10s %8s %8s %8s %9llu %5llu %5llu %6llu %6llu\n", opt.connections,
      latencies.size(), fixed(static_cast<double>(latencies.size()) / measured_seconds, 1).c_str(),
      ms(percentile(latencies, 0.50)).c_str(), ms(percentile(latencies, 0.99)).c_str(),
      ms(latencies.empty() ? 0 : latencies.back()).c_str(),
      static_cast<unsigned long long>(total.expected), static_cast<unsigned long long>(total.ae),
      static_cast<unsigned long long>(total.ar), static_cast<unsigned long long>(total.other),
      static_cast<unsigned long long>(total.errors));
  std::fflush(stdout);
  const bool clean = total.ae + total.ar + total.other + total.errors + total.warmup_failures == 0;
  if (!clean) {
    if (total.warmup_failures > 0)
      std::cerr << "bench-mllp: " << total.warmup_failures << " failures during the warm-up\n";
    std::cerr << "bench-mllp: first failure: " << total.first_failure << "\n";
  }
  return clean ? 0 : 1;
}
