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

#include "adapters/net/accept_loop.hpp"
#include "adapters/net/acceptor.hpp"
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
        requests(reg.counter("sdoh_http_requests_total", "HTTP requests answered.",
                             {"route", "method", "status"})),
        duration(reg.histogram("sdoh_http_request_duration_seconds",
                               "Time from a request's last byte to its response.", {"route"})),
        open_gauge(reg.gauge("sdoh_http_connections_open", "Open HTTP connections.").with()),
        accepted(reg.counter("sdoh_http_connections_total", "HTTP connections accepted.").with()),
        rejected(reg.counter("sdoh_http_connections_rejected_total",
                             "HTTP connections closed at once because max_connections was reached.")
                     .with()),
        tls_failures(reg.counter("sdoh_http_tls_handshake_failures_total",
                                 "TLS handshakes that failed or timed out.")
                         .with()) {}

  asio::io_context& ioc;
  config::HttpConfig cfg;
  const Router& router;
  tcp::acceptor acceptor;  // belongs to its own strand: the accept loop and stop() run there
  std::shared_ptr<asio::ssl::context> tls;
  net::ConnectionTracker connections;
  std::atomic<bool> stopped{false};  // stop() runs once
  std::string address;

  metrics::Family<metrics::Counter>& requests;
  metrics::Family<metrics::Histogram>& duration;
  metrics::Gauge& open_gauge;
  metrics::Counter& accepted;
  metrics::Counter& rejected;
  metrics::Counter& tls_failures;
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

Request to_request(bhttp::request<bhttp::string_body>&& in, const std::string& peer, bool secure) {
  Request r;
  r.method = std::string(in.method_string());
  r.target = std::string(in.target());
  const auto q = r.target.find('?');
  r.path = r.target.substr(0, q);
  if (q != std::string::npos) r.query = r.target.substr(q + 1);
  r.headers.reserve(16);
  for (const auto& field : in) {
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
  if (!in.body.empty() || in.status >= 200) out.set(bhttp::field::content_type, in.content_type);
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

// Answers one request that failed to parse, then the connection closes.
template <class Stream>
asio::awaitable<void> reply_and_close(Server::State& s, Stream& stream, std::string_view target,
                                      unsigned status, std::string_view code,
                                      std::string_view message) {
  auto res =
      to_wire(s.router.error_response(target.substr(0, target.find('?')), status, code, message),
              11, false);
  s.requests.with({"unmatched", "other", std::to_string(status)}).inc();
  lowest(stream).expires_after(s.cfg.write_timeout);
  co_await bhttp::async_write(stream, res, kUseTuple);
}

template <class Stream>
asio::awaitable<void> serve(std::shared_ptr<Server::State> s, Stream& stream, std::string peer,
                            std::shared_ptr<net::ConnectionControl> control,
                            std::string client_cn = {}) {
  constexpr bool kSecure = std::is_same_v<Stream, tls_stream>;
  beast::flat_buffer buffer;  // unbounded: the parser's header and body limits bound it
  buffer.reserve(8192);
  for (;;) {
    if (s->connections.stopping()) break;
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(s->cfg.max_header_bytes));
    parser.body_limit(s->cfg.max_body_bytes);
    lowest(stream).expires_after(s->cfg.idle_timeout);
    control->idle = true;
    auto [ec, bytes] = co_await bhttp::async_read(stream, buffer, parser, kUseTuple);
    control->idle = false;
    if (ec == bhttp::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      break;
    }
    if (ec == bhttp::error::body_limit) {
      const std::string target(parser.get().target());
      co_await reply_and_close(*s, stream, target, 413, "payload_too_large",
                               "request body exceeds " + std::to_string(s->cfg.max_body_bytes) +
                                   " bytes (http.max_body_bytes)");
      break;
    }
    if (ec == bhttp::error::header_limit) {
      co_await reply_and_close(*s, stream, "", 431, "headers_too_large",
                               "request headers exceed " + std::to_string(s->cfg.max_header_bytes) +
                                   " bytes (http.max_header_bytes)");
      break;
    }
    if (ec) {
      log::debug("http.bad_request", {{"peer", peer}, {"reason", ec.message()}});
      co_await reply_and_close(*s, stream, "", 400, "bad_request",
                               "malformed HTTP request: " + ec.message());
      break;
    }

    const auto started = std::chrono::steady_clock::now();
    auto wire_req = parser.release();
    const auto version = wire_req.version();
    const bool keep_alive = wire_req.keep_alive();
    auto request = to_request(std::move(wire_req), peer, kSecure);
    request.client_cn = client_cn;
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
  const auto peer = [&] {
    boost::system::error_code ec;
    auto ep = socket.remote_endpoint(ec);
    return ec ? std::string("unknown") : net::endpoint_string(ep);
  }();
  s->open_gauge.inc();
  try {
    if (s->tls) {
      tls_stream stream(tcp_stream(std::move(socket)), *s->tls);
      auto control = s->connections.add(stream.get_executor(),
                                        [&stream] { beast::get_lowest_layer(stream).cancel(); });
      lowest(stream).expires_after(s->cfg.idle_timeout);
      control->idle = true;
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kUseTuple);
      control->idle = false;
      if (ec) {
        s->tls_failures.inc();
        log::info("http.tls_handshake_failed", {{"peer", peer}, {"reason", ec.message()}});
      } else {
        auto client_cn = client_common_name(stream);
        co_await serve(s, stream, peer, control, std::move(client_cn));
      }
      s->connections.remove(control);
    } else {
      tcp_stream stream(std::move(socket));
      auto control = s->connections.add(stream.get_executor(), [&stream] { stream.cancel(); });
      co_await serve(s, stream, peer, control);
      s->connections.remove(control);
    }
  } catch (const std::exception& e) {
    // The outermost handler of a connection: log, close, keep serving others.
    log::error("http.connection_failed", {{"peer", peer}, {"reason", e.what()}});
  }
  s->open_gauge.dec();
}

asio::awaitable<void> accept_loop(std::shared_ptr<Server::State> s) {
  const net::AcceptLimits limits{s->cfg.max_connections, &s->accepted, &s->rejected, "http"};
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
  if (state_->cfg.tls.enabled()) {
    auto ctx = net::make_server_tls_context(state_->cfg.tls, "http.tls");
    if (!ctx) return fail(ctx.error());
    state_->tls = *ctx;
  }
  auto ep = net::open_acceptor(state_->acceptor, state_->cfg.listen, "http.listen");
  if (!ep) return fail(ep.error());
  state_->address = net::endpoint_string(*ep);
  return state_->address;
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
