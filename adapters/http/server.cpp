#include "adapters/http/server.hpp"

#include <atomic>
#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "adapters/http/request_framing.hpp"
#include "adapters/net/accept_loop.hpp"
#include "adapters/net/acceptor.hpp"
#include "adapters/net/admission.hpp"
#include "adapters/net/connections.hpp"
#include "adapters/net/tls.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;
using tcp_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct Server::State {
  State(asio::io_context& io, const config::HttpConfig& c, const Router& r, metrics::Registry& reg)
      : ioc(io),
        cfg(c),
        router(r),
        acceptor(asio::make_strand(io)),
        tls(c.tls, "http.tls"),
        requests(reg.counter("sdoh_http_requests_total", "HTTP requests answered.",
                             {"route", "method", "status"})),
        duration(reg.histogram("sdoh_http_request_duration_seconds",
                               "Time from a request's last byte to its response.", {"route"})),
        open_gauge(reg.gauge("sdoh_http_connections_open", "Open HTTP connections.").with()),
        accepted(reg.counter("sdoh_http_connections_total",
                             "HTTP connections accepted under max_connections (some are then "
                             "refused: see sdoh_http_connections_rejected_total).")
                     .with()),
        rejected(reg.counter("sdoh_http_connections_rejected_total",
                             "HTTP connections closed at once: reason global_cap "
                             "(http.max_connections), peer_cap (http.max_connections_per_peer) "
                             "or proxy_header (a trusted proxy sent no valid PROXY v2 header).",
                             {"reason"})),
        tls_failures(reg.counter("sdoh_http_tls_handshake_failures_total",
                                 "TLS handshakes that failed or timed out.")
                         .with()),
        admission(c.trusted_proxies, c.max_connections_per_peer, rejected, "http") {
    rejected.with({"global_cap"});  // every reason shows in /metrics from the start
  }

  asio::io_context& ioc;
  config::HttpConfig cfg;
  const Router& router;
  tcp::acceptor acceptor;  // belongs to its own strand: the accept loop and stop() run there
  net::ServerTls tls;      // replaced whole on reload; each connection keeps the one it began with
  net::ConnectionTracker connections;
  std::atomic<bool> stopped{false};  // stop() runs once
  std::string address;

  metrics::Family<metrics::Counter>& requests;
  metrics::Family<metrics::Histogram>& duration;
  metrics::Gauge& open_gauge;
  metrics::Counter& accepted;
  metrics::Family<metrics::Counter>& rejected;
  metrics::Counter& tls_failures;
  net::AdmissionPolicy admission;  // after the counters it points to
};

namespace {

std::string method_label(std::string_view m) {
  for (auto known : {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}) {
    if (m == known) return std::string(m);
  }
  return "other";
}

// The subject CN of a verified client certificate; empty without one.
std::string client_common_name(tls_stream& stream) {
  SSL* ssl = stream.native_handle();
  if (SSL_get_verify_result(ssl) != X509_V_OK) return {};
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return {};
  std::string cn(256, '\0');
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn.data(),
                                          static_cast<int>(cn.size()));
  X509_free(cert);
  cn.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return cn;
}

// `header_fields`: how many of the message's fields came in its header section. Beast adds
// trailer fields to the same container; they are not passed on as headers, because a field sent
// after the body must not change how the request is read (RFC 9110 6.5.1: trailers are not merged
// into the header section).
Request to_request(bhttp::request<bhttp::string_body>&& in, std::size_t header_fields,
                   const std::string& peer, bool secure) {
  Request r;
  r.method = std::string(in.method_string());
  r.target = std::string(in.target());
  const auto q = r.target.find('?');
  r.path = r.target.substr(0, q);
  if (q != std::string::npos) r.query = r.target.substr(q + 1);
  r.headers.reserve(std::min<std::size_t>(header_fields, 32));
  for (const auto& field : in) {
    if (r.headers.size() == header_fields) break;
    r.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  r.body = std::move(in.body());
  r.peer = peer;
  r.secure = secure;
  return r;
}

bhttp::response<bhttp::string_body> to_wire(Response&& in, unsigned version, bool keep_alive) {
  bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(in.status), version};
  out.set(bhttp::field::server, "sdoh-gateway");
  if (!in.content_type.empty() && (!in.body.empty() || in.status >= 200))
    out.set(bhttp::field::content_type, in.content_type);
  for (auto& h : in.headers)
    out.insert(h.name, h.value);
  out.body() = std::move(in.body);
  out.keep_alive(keep_alive);
  out.prepare_payload();
  return out;
}

tcp_stream& lowest(tcp_stream& s) {
  return s;
}
tcp_stream& lowest(tls_stream& s) {
  return beast::get_lowest_layer(s);
}

template <class Stream>
asio::awaitable<void> graceful_close(Stream& stream) {
  if constexpr (std::is_same_v<Stream, tls_stream>) {
    lowest(stream).expires_after(std::chrono::seconds(2));
    co_await stream.async_shutdown(kUseTuple);
  }
  boost::system::error_code ec;
  lowest(stream).socket().shutdown(tcp::socket::shutdown_send, ec);
}

// After refusing a request whose bytes may still be arriving. Closing with unread bytes makes
// the kernel send a TCP reset, which can destroy the answer before the client has read it
// (RFC 9112 9.6): so half-close, then read and discard what still comes, for a bounded time and
// amount, before the socket is closed.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = 1024 * 1024;

template <class Stream>
asio::awaitable<void> linger_close(Stream& stream) {
  if constexpr (std::is_same_v<Stream, tls_stream>) {
    co_await graceful_close(stream);  // close_notify; the TLS layer reads until the peer's
  } else {
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.expires_after(kLingerTime);
    std::array<char, 8192> scratch{};
    for (std::size_t drained = 0; drained < kLingerBytes;) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch), kUseTuple);
      if (ec) break;
      drained += n;
    }
  }
}

// Answers a request that was refused before any handler saw it; the connection closes after.
template <class Stream>
asio::awaitable<void> reply_and_close(Server::State& s, Stream& stream, std::string_view target,
                                      unsigned status, std::string_view code,
                                      std::string_view message) {
  auto res =
      to_wire(s.router.error_response(target.substr(0, target.find('?')), status, code, message),
              11, false);
  s.requests.with({"unmatched", "other", std::to_string(status)}).inc();
  lowest(stream).expires_after(s.cfg.write_timeout);
  auto [ec, n] = co_await bhttp::async_write(stream, res, kUseTuple);
  if (!ec) co_await linger_close(stream);
}

using RequestParser = bhttp::request_parser<bhttp::string_body>;

// How reading one request ended.
struct ReadOutcome {
  enum class Kind {
    kRequest,  ///< complete and within every limit
    kClosed,   ///< the peer left, timed out or the server is draining: close without an answer
    kRefused,  ///< answer `status` and close
  };
  Kind kind = Kind::kClosed;
  unsigned status = 0;
  std::string code;
  std::string message;
  std::size_t header_fields = 0;  ///< fields of the header section (kRequest)
};

ReadOutcome refused(unsigned status, std::string code, std::string message) {
  return {ReadOutcome::Kind::kRefused, status, std::move(code), std::move(message), 0};
}

ReadOutcome headers_too_large(const config::HttpConfig& cfg) {
  return refused(431, "headers_too_large",
                 "request header or trailer section exceeds " +
                     std::to_string(cfg.max_header_bytes) + " bytes (http.max_header_bytes)");
}

// Reads one request into `parser`, refusing it as soon as a limit is passed. Beast's own limits
// cover the header and the body; the rest is bounded here: `buffer` has a maximum size, so a
// trailer section or a chunk line that does not fit fails instead of growing it; the header's
// framing is checked before a body byte is parsed; and every byte the parser takes counts
// against request_byte_budget. The caller set one deadline for the whole request.
template <class Stream>
asio::awaitable<ReadOutcome> read_request(Server::State& s, Stream& stream,
                                          beast::flat_buffer& buffer, RequestParser& parser,
                                          net::ConnectionControl& control) {
  const auto& cfg = s.cfg;
  const auto budget = request_byte_budget(cfg.max_header_bytes, cfg.max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
  parser.body_limit(cfg.max_body_bytes);
  parser.eager(false);  // stop after the header, so its framing is checked first
  std::uint64_t consumed = 0, header_bytes = 0;
  std::size_t header_fields = 0;
  bool header_checked = false;
  while (!parser.is_done()) {
    control.idle = true;
    auto [ec, n] = co_await bhttp::async_read_some(stream, buffer, parser, kUseTuple);
    control.idle = false;
    consumed += n;
    if (ec == bhttp::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      co_return ReadOutcome{};
    }
    if (ec == bhttp::error::body_limit) {
      co_return refused(413, "payload_too_large",
                        "request body exceeds " + std::to_string(cfg.max_body_bytes) +
                            " bytes (http.max_body_bytes)");
    }
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
      co_return headers_too_large(cfg);
    }
    if (ec) co_return refused(400, "bad_request", "malformed HTTP request: " + ec.message());
    if (!header_checked && parser.is_header_done()) {
      header_checked = true;
      header_bytes = consumed;
      std::vector<std::string_view> transfer_encodings;
      for (const auto& field : parser.get()) {
        ++header_fields;
        if (field.name() == bhttp::field::transfer_encoding)
          transfer_encodings.push_back(field.value());
      }
      const bool content_length = parser.get().count(bhttp::field::content_length) != 0;
      auto framing =
          check_request_framing(transfer_encodings, content_length, parser.get().version());
      if (!framing) {
        const bool unsupported = framing.error().kind == ErrorKind::kUnsupported;
        co_return refused(unsupported ? 501 : 400, unsupported ? "not_implemented" : "bad_request",
                          framing.error().message);
      }
      parser.eager(true);  // the body: parse whatever has arrived in one go
    }
    if (consumed > budget) {
      co_return refused(413, "payload_too_large",
                        "request exceeds " + std::to_string(budget) +
                            " bytes with its framing (2 x http.max_header_bytes + 2 x "
                            "http.max_body_bytes + 64 KiB)");
    }
  }
  // Trailer fields count against the header limit together with the header section.
  std::uint64_t trailer_bytes = 0;
  std::size_t index = 0;
  for (const auto& field : parser.get()) {
    if (index++ >= header_fields)
      trailer_bytes += field.name_string().size() + field.value().size() + 4;  // ": " CRLF
  }
  if (header_bytes + trailer_bytes > cfg.max_header_bytes) co_return headers_too_large(cfg);
  ReadOutcome done;
  done.kind = ReadOutcome::Kind::kRequest;
  done.header_fields = header_fields;
  co_return done;
}

// Bodies pass through the read buffer on their way to the parser, so its size bounds reads, not
// requests: at least this much, however small max_header_bytes is set.
constexpr std::size_t kMinReadBuffer = 8 * 1024;

template <class Stream>
asio::awaitable<void> serve(std::shared_ptr<Server::State> s, Stream& stream, std::string peer,
                            std::shared_ptr<net::ConnectionControl> control,
                            std::string client_cn = {}, std::string client_subject = {}) {
  constexpr bool kSecure = std::is_same_v<Stream, tls_stream>;
  // Bounded: a header, trailer section or chunk line that does not fit fails with
  // buffer_overflow (431) instead of growing the buffer (a 68 MB trailer once took the
  // gateway from 19 MB to 354 MB of memory).
  beast::flat_buffer buffer(std::max(s->cfg.max_header_bytes, kMinReadBuffer));
  for (;;) {
    if (s->connections.stopping()) break;
    RequestParser parser;
    // One deadline for the whole request, not one per read: a request trickled in a byte at a
    // time (slowloris) is cut off at idle_timeout however often bytes arrive.
    lowest(stream).expires_after(s->cfg.idle_timeout);
    auto read = co_await read_request(*s, stream, buffer, parser, *control);
    if (read.kind == ReadOutcome::Kind::kClosed) break;
    if (read.kind == ReadOutcome::Kind::kRefused) {
      log::debug("http.request_refused",
                 {{"peer", peer}, {"status", read.status}, {"reason", read.message}});
      // The target is known once the request line is parsed (a body over the limit is refused
      // from its Content-Length, before the header is done): /fhir answers OperationOutcomes.
      const std::string target(parser.get().target());
      co_await reply_and_close(*s, stream, target, read.status, read.code, read.message);
      co_return;
    }

    const auto started = std::chrono::steady_clock::now();
    auto wire_req = parser.release();
    const auto version = wire_req.version();
    const bool keep_alive = wire_req.keep_alive();
    auto request = to_request(std::move(wire_req), read.header_fields, peer, kSecure);
    request.client_cn = client_cn;
    request.client_subject = client_subject;
    auto match = s->router.match(request.method, request.path);
    Response response;
    if (match.status == 404) {
      response = s->router.error_response(request.path, 404, "not_found",
                                          "no such endpoint: " + request.path);
    } else if (match.status == 405) {
      response = s->router.error_response(
          request.path, 405, "method_not_allowed",
          request.method + " is not allowed here; allowed: " + match.allow);
      response.headers.push_back({"Allow", match.allow});
    } else {
      request.params = std::move(match.params);
      try {
        response = co_await (*match.handler)(request);
      } catch (const std::exception& e) {
        log::error("http.handler_failed", {{"route", match.route}, {"reason", e.what()}});
        response = s->router.error_response(request.path, 500, "internal_error",
                                            "the request could not be processed");
      }
    }
    const auto status = response.status;
    s->requests.with({match.route, method_label(request.method), std::to_string(status)}).inc();
    s->duration.with({match.route})
        .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());

    const bool again = keep_alive && !s->connections.stopping();
    auto res = to_wire(std::move(response), version, again);
    if (request.method == "HEAD") {
      // Same headers as GET, no body (RFC 9110 9.3.2).
      bhttp::response<bhttp::empty_body> head{res.result(), res.version()};
      for (const auto& f : res)
        head.insert(f.name_string(), f.value());
      lowest(stream).expires_after(s->cfg.write_timeout);
      auto [wec, wn] = co_await bhttp::async_write(stream, head, kUseTuple);
      if (wec) break;
    } else {
      lowest(stream).expires_after(s->cfg.write_timeout);
      auto [wec, wn] = co_await bhttp::async_write(stream, res, kUseTuple);
      if (wec) break;
    }
    log::debug("http.request",
               {{"route", match.route}, {"method", request.method}, {"status", status}});
    if (!again) break;
  }
  co_await graceful_close(stream);
}

asio::awaitable<void> run_connection(std::shared_ptr<Server::State> s, tcp::socket socket) {
  s->open_gauge.inc();
  std::string peer = "unknown";
  try {
    tcp_stream plain(std::move(socket));
    // Before any TLS or HTTP byte: a trusted proxy's PROXY header, then the client's share.
    auto admitted = co_await net::admit(plain, s->admission);
    if (admitted) peer = net::endpoint_string(admitted->client);
    const auto tls = s->tls.current();  // kept for the connection's life, across reloads
    if (admitted && tls) {
      tls_stream stream(std::move(plain), *tls);
      auto control = s->connections.add(stream.get_executor(),
                                        [&stream] { beast::get_lowest_layer(stream).cancel(); });
      lowest(stream).expires_after(s->cfg.idle_timeout);
      control->idle = true;
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kUseTuple);
      control->idle = false;
      if (ec) {
        s->tls_failures.inc();
        log::info("http.tls_handshake_failed", {{"peer", peer}, {"reason", ec.message()}});
      } else if (auto subject = net::verified_client_subject(stream.native_handle());
                 net::admit_certificate(*admitted, subject, s->admission)) {
        auto client_cn = client_common_name(stream);
        co_await serve(s, stream, peer, control, std::move(client_cn), std::move(subject));
      }
      s->connections.remove(control);
    } else if (admitted) {
      auto control = s->connections.add(plain.get_executor(), [&plain] { plain.cancel(); });
      co_await serve(s, plain, peer, control);
      s->connections.remove(control);
    }
  } catch (const std::exception& e) {
    // The outermost handler of a connection: log, close, keep serving others.
    log::error("http.connection_failed", {{"peer", peer}, {"reason", e.what()}});
  }
  s->open_gauge.dec();
}

asio::awaitable<void> accept_loop(std::shared_ptr<Server::State> s) {
  const net::AcceptLimits limits{s->cfg.max_connections, &s->accepted,
                                 &s->rejected.with({"global_cap"}), "http"};
  const net::StartConnection start = [s](tcp::socket socket) {
    auto executor = socket.get_executor();
    asio::co_spawn(executor, run_connection(s, std::move(socket)), asio::detached);
  };
  co_await net::accept_loop(s->acceptor, s->ioc, s->connections, limits, start);
}

}  // namespace

Server::Server(asio::io_context& ioc, const config::HttpConfig& cfg, const Router& router,
               metrics::Registry& registry)
    : state_(std::make_shared<State>(ioc, cfg, router, registry)) {}

Server::~Server() {
  stop();
}

Result<std::string> Server::bind() {
  if (auto loaded = state_->tls.load(); !loaded) return fail(loaded.error());
  auto ep = net::open_acceptor(state_->acceptor, state_->cfg.listen, "http.listen");
  if (!ep) return fail(ep.error());
  state_->address = net::endpoint_string(*ep);
  return state_->address;
}

Result<void> Server::reload_tls() {
  return state_->tls.load();
}

void Server::start() {
  asio::co_spawn(state_->acceptor.get_executor(), accept_loop(state_), asio::detached);
}

void Server::stop() {
  if (!state_ || state_->stopped.exchange(true)) return;
  // Closing on the acceptor's strand serialises with the accept loop.
  asio::post(state_->acceptor.get_executor(), [s = state_] {
    boost::system::error_code ignored;
    s->acceptor.close(ignored);
  });
  state_->connections.stop();
}

std::size_t Server::open_connections() const {
  return state_->connections.count();
}

}  // namespace sdoh::http
