#include "adapters/hl7v2/mllp_server.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <string_view>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "adapters/hl7v2/mllp_framer.hpp"
#include "adapters/net/accept_loop.hpp"
#include "adapters/net/acceptor.hpp"
#include "adapters/net/admission.hpp"
#include "adapters/net/connections.hpp"
#include "adapters/net/tls.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::hl7v2 {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using tcp_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct MllpServer::State {
  State(asio::io_context& io, const config::MllpConfig& c, pipeline::Hl7Handler& h,
        metrics::Registry& reg)
      : ioc(io),
        cfg(c),
        handler(h),
        acceptor(asio::make_strand(io)),
        tls(c.tls, "mllp.tls"),
        open_gauge(reg.gauge("sdoh_mllp_connections_open", "Open MLLP connections.").with()),
        accepted(reg.counter("sdoh_mllp_connections_total",
                             "MLLP connections accepted under max_connections (some are then "
                             "refused: see sdoh_mllp_connections_rejected_total).")
                     .with()),
        rejected(reg.counter("sdoh_mllp_connections_rejected_total",
                             "MLLP connections closed at once: reason global_cap "
                             "(mllp.max_connections), peer_cap (mllp.max_connections_per_peer) "
                             "or proxy_header (a trusted proxy sent no valid PROXY v2 header).",
                             {"reason"})),
        tls_failures(reg.counter("sdoh_mllp_tls_handshake_failures_total",
                                 "MLLP TLS handshakes that failed or timed out.")
                         .with()),
        frames(reg.counter("sdoh_mllp_frames_total", "MLLP frames received.").with()),
        bytes_in(
            reg.counter("sdoh_mllp_bytes_received_total", "Bytes received on MLLP connections.")
                .with()),
        bytes_out(
            reg.counter("sdoh_mllp_bytes_sent_total", "Bytes sent on MLLP connections.").with()),
        discarded(
            reg.counter("sdoh_mllp_discarded_bytes_total",
                        "Bytes received outside any MLLP frame (before a start block), discarded.")
                .with()),
        deviations(
            reg.counter("sdoh_mllp_framing_deviations_total",
                        "Tolerated framing deviations (doubled start block, end block without CR).")
                .with()),
        oversized(reg.counter("sdoh_mllp_oversized_frames_total",
                              "Frames over mllp.max_frame_bytes; the connection was closed.")
                      .with()),
        frame_timeouts(reg.counter("sdoh_mllp_frame_timeouts_total",
                                   "Connections closed because a frame was not complete within "
                                   "mllp.frame_timeout of its first byte.")
                           .with()),
        latency(reg.histogram("sdoh_mllp_ack_latency_seconds",
                              "Time from a frame's last byte to its ACK written.")
                    .with()),
        admission(c.trusted_proxies, c.max_connections_per_peer, rejected, "mllp") {
    rejected.with({"global_cap"});  // every reason shows in /metrics from the start
  }

  asio::io_context& ioc;
  config::MllpConfig cfg;
  pipeline::Hl7Handler& handler;
  tcp::acceptor acceptor;  // belongs to its own strand: the accept loop and stop() run there
  net::ServerTls tls;      // replaced whole on reload; each connection keeps the one it began with
  net::ConnectionTracker connections;
  std::atomic<bool> stopped{false};  // stop() runs once

  metrics::Gauge& open_gauge;
  metrics::Counter& accepted;
  metrics::Family<metrics::Counter>& rejected;
  metrics::Counter& tls_failures;
  metrics::Counter& frames;
  metrics::Counter& bytes_in;
  metrics::Counter& bytes_out;
  metrics::Counter& discarded;
  metrics::Counter& deviations;
  metrics::Counter& oversized;
  metrics::Counter& frame_timeouts;
  metrics::Histogram& latency;
  net::AdmissionPolicy admission;  // after the counters it points to
};

namespace {

// What one connection reads into while it waits for its next bytes. An idle connection's pending
// read holds this buffer for as long as it is idle, so it is small: 10,000 idle connections must
// fit in memory (issue 16: at most 16 KB each, everything counted). A typical ORU^R01 (1.5-3 KB)
// still arrives in one read; the rest of a larger frame is drained from the socket (drain()).
constexpr std::size_t kWaitReadBytes = 4 * 1024;
// What a framer may keep between frames. Frames that arrive whole in one read are framed in place
// (feed_borrowed); only a frame split across reads is buffered. A buffer a large frame grew is
// freed before the connection waits again; a small one (a sender that writes the start block, the
// message and the end block apart) is reused without an allocation.
constexpr std::size_t kFramerKeepBytes = 4 * 1024;
// The most one drain takes at once, so that the frame size limit is checked between reads.
constexpr std::size_t kDrainReadBytes = 64 * 1024;

tcp_stream& lowest(tcp_stream& s) {
  return s;
}
tcp_stream& lowest(tls_stream& s) {
  return beast::get_lowest_layer(s);
}

// After a read that filled the small buffer: what the kernel already holds for this connection,
// without waiting (the socket is non-blocking for synchronous calls: run_connection). Into a
// buffer of the I/O thread, safe because the caller copies the bytes into its framer before it
// suspends. Empty when nothing more is there yet; an error shows again on the next read.
std::string_view drain(tcp_stream& s) {
  thread_local std::vector<char> buffer(kDrainReadBytes);
  boost::system::error_code ec;
  const auto n = s.socket().read_some(asio::buffer(buffer), ec);
  if (ec) return {};
  return {buffer.data(), n};
}
// A TLS stream's records are read through OpenSSL, which buffers them itself: no drain.
std::string_view drain(tls_stream&) {
  return {};
}

template <class Stream>
asio::awaitable<void> serve(std::shared_ptr<MllpServer::State> s, Stream& stream,
                            pipeline::Peer peer, std::shared_ptr<net::ConnectionControl> control) {
  MllpFramer framer(s->cfg.max_frame_bytes);
  FrameDeadline frame_deadline(s->cfg.frame_timeout);
  std::array<char, kWaitReadBytes> chunk{};
  std::string frame;
  std::uint64_t discarded_seen = 0, deviations_seen = 0;
  for (;;) {
    // Answer every complete frame before reading more: strict per-connection order.
    for (;;) {
      const auto event = framer.next(frame);
      s->discarded.inc(framer.discarded_bytes() - discarded_seen);
      s->deviations.inc(framer.deviations() - deviations_seen);
      discarded_seen = framer.discarded_bytes();
      deviations_seen = framer.deviations();
      if (event == MllpFramer::Event::kNone) break;
      if (event == MllpFramer::Event::kTooLarge) {
        s->oversized.inc();
        log::warn("mllp.frame_too_large",
                  {{"peer", peer.address}, {"limit_bytes", s->cfg.max_frame_bytes}});
        co_return;
      }
      frame_deadline.frame_completed(framer.in_frame() || framer.buffered() > 0);
      s->frames.inc();
      const auto received = std::chrono::steady_clock::now();
      auto answers = co_await s->handler.handle(std::move(frame), peer);
      frame.clear();
      // One frame per answer message: an enhanced-mode accept ACK and its application ACK are
      // two messages, a batch answer is one; nothing at all for a sender's ACK.
      std::string wire;
      for (const auto& one : split_answers(answers))
        wire += mllp_frame(std::string(one));
      if (!wire.empty()) {
        lowest(stream).expires_after(s->cfg.write_timeout);
        auto [ec, n] = co_await asio::async_write(stream, asio::buffer(wire), kUseTuple);
        if (ec) {
          log::info("mllp.write_failed", {{"peer", peer.address}, {"reason", ec.message()}});
          co_return;
        }
        s->bytes_out.inc(n);
      }
      s->latency.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - received).count());
    }
    // Draining: every complete frame has been answered; a partial one was never ACKed, so
    // the sender will resend it to whichever instance takes over.
    if (s->connections.stopping()) co_return;
    framer.release_if_idle(kFramerKeepBytes);
    // Idle timeout from now, but never past the current frame's deadline: the idle timer alone
    // restarts with every byte, so a frame trickled a byte at a time would never end.
    lowest(stream).expires_at(
        frame_deadline.read_deadline(std::chrono::steady_clock::now(), s->cfg.idle_timeout));
    // Waiting for bytes counts as idle even mid-frame: a partial frame was never ACKed, so
    // closing it on a drain loses nothing (the sender resends).
    control->idle = true;
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(chunk), kUseTuple);
    control->idle = false;
    if (ec == beast::error::timeout && frame_deadline.expired(std::chrono::steady_clock::now())) {
      // A sender that never completes its frame got no ACK for it and will resend it.
      s->frame_timeouts.inc();
      log::warn("mllp.frame_timeout", {{"peer", peer.address},
                                       {"bytes_buffered", framer.buffered()},
                                       {"limit_ms", s->cfg.frame_timeout.count()}});
      co_return;
    }
    if (ec) {
      if (ec == beast::error::timeout) {
        log::info("mllp.idle_timeout", {{"peer", peer.address}});
      } else if (ec != asio::error::eof && ec != asio::error::operation_aborted &&
                 ec != asio::error::connection_reset && ec != asio::ssl::error::stream_truncated) {
        log::info("mllp.read_failed", {{"peer", peer.address}, {"reason", ec.message()}});
      }
      if (framer.buffered() > 0) {
        // Never silently drop: a sender that hung up mid-frame got no ACK and will resend.
        log::warn("mllp.partial_frame_dropped",
                  {{"peer", peer.address}, {"bytes", framer.buffered()}});
      }
      co_return;
    }
    frame_deadline.bytes_received(std::chrono::steady_clock::now());
    s->bytes_in.inc(n);
    // chunk is not read into again before the framer has answered kNone: it may borrow it.
    framer.feed_borrowed(std::string_view(chunk.data(), n));
    if (n == chunk.size()) {
      const auto more = drain(stream);
      if (!more.empty()) {
        s->bytes_in.inc(more.size());
        framer.feed(more);
      }
    }
  }
}

asio::awaitable<void> run_connection(std::shared_ptr<MllpServer::State> s, tcp::socket socket) {
  pipeline::Peer peer;
  peer.address = "unknown";
  s->open_gauge.inc();
  try {
    tcp_stream plain(std::move(socket));
    // Before any TLS or MLLP byte: a trusted proxy's PROXY header, then the client's share.
    auto admitted = co_await net::admit(plain, s->admission);
    if (admitted) {
      peer.address = net::endpoint_string(admitted->client);
      log::debug("mllp.connected", {{"peer", peer.address}});
    }
    const auto tls = s->tls.current();  // kept for the connection's life, across reloads
    if (admitted && tls) {
      tls_stream stream(std::move(plain), *tls);
      auto control = s->connections.add(stream.get_executor(),
                                        [&stream] { beast::get_lowest_layer(stream).cancel(); });
      // A handshake is bounded like a frame: a client trickling its handshake holds no slot
      // for the whole idle timeout.
      lowest(stream).expires_after(std::min(s->cfg.idle_timeout, s->cfg.frame_timeout));
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kUseTuple);
      if (ec) {
        s->tls_failures.inc();
        log::info("mllp.tls_handshake_failed", {{"peer", peer.address}, {"reason", ec.message()}});
      } else {
        peer.tls_subject = net::verified_client_subject(stream.native_handle());
        if (net::admit_certificate(*admitted, peer.tls_subject, s->admission)) {
          co_await serve(s, stream, peer, control);
          lowest(stream).expires_after(std::chrono::seconds(2));
          co_await stream.async_shutdown(kUseTuple);
        }
      }
      s->connections.remove(control);
    } else if (admitted) {
      // Synchronous reads (drain) must not wait; asynchronous ones are not affected. A socket
      // that cannot be made so is closed rather than let a read block an I/O thread.
      boost::system::error_code ignored;
      if (plain.socket().non_blocking(true, ignored); ignored) {
        log::warn("mllp.socket_failed", {{"peer", peer.address}, {"reason", ignored.message()}});
        co_return;
      }
      auto control = s->connections.add(plain.get_executor(), [&plain] { plain.cancel(); });
      co_await serve(s, plain, peer, control);
      plain.socket().shutdown(tcp::socket::shutdown_send, ignored);
      s->connections.remove(control);
    }
  } catch (const std::exception& e) {
    log::error("mllp.connection_failed", {{"peer", peer.address}, {"reason", e.what()}});
  }
  log::debug("mllp.disconnected", {{"peer", peer.address}});
  s->open_gauge.dec();
}

asio::awaitable<void> accept_loop(std::shared_ptr<MllpServer::State> s) {
  const net::AcceptLimits limits{s->cfg.max_connections, &s->accepted,
                                 &s->rejected.with({"global_cap"}), "mllp"};
  const net::StartConnection start = [s](tcp::socket socket) {
    auto executor = socket.get_executor();
    asio::co_spawn(executor, run_connection(s, std::move(socket)), asio::detached);
  };
  co_await net::accept_loop(s->acceptor, s->ioc, s->connections, limits, start);
}

}  // namespace

MllpServer::MllpServer(asio::io_context& ioc, const config::MllpConfig& cfg,
                       pipeline::Hl7Handler& handler, metrics::Registry& registry)
    : state_(std::make_shared<State>(ioc, cfg, handler, registry)) {}

MllpServer::~MllpServer() {
  stop();
}

Result<std::string> MllpServer::bind() {
  if (auto loaded = state_->tls.load(); !loaded) return fail(loaded.error());
  auto ep = net::open_acceptor(state_->acceptor, state_->cfg.listen, "mllp.listen");
  if (!ep) return fail(ep.error());
  return net::endpoint_string(*ep);
}

Result<void> MllpServer::reload_tls() {
  return state_->tls.load();
}

void MllpServer::start() {
  asio::co_spawn(state_->acceptor.get_executor(), accept_loop(state_), asio::detached);
}

void MllpServer::stop() {
  if (state_->stopped.exchange(true)) return;
  asio::post(state_->acceptor.get_executor(), [s = state_] {
    boost::system::error_code ignored;
    s->acceptor.close(ignored);
  });
  state_->connections.stop();
}

std::size_t MllpServer::open_connections() const {
  return state_->connections.count();
}

}  // namespace sdoh::hl7v2
