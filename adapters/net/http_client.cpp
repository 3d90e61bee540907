#include "adapters/net/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "adapters/net/tls.hpp"
#include "gateway/core/text.hpp"

namespace sdoh::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Result<HttpUrl> HttpUrl::parse(const std::string& url, const std::string& key) {
  HttpUrl out;
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    out.https = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return fail(Error::invalid(key + " must be an http or https URL"));
  }
  const auto slash = rest.find_first_of("/?");
  auto authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    out.target = std::string(rest.substr(slash));
    if (out.target.front() == '?') out.target.insert(0, "/");
  }
  if (authority.find('@') != std::string_view::npos)
    return fail(Error::invalid(key + " must not carry user information"));
  if (authority.starts_with("[")) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return fail(Error::invalid(key + " has an unclosed IPv6 address"));
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (authority.starts_with(":")) out.port = std::string(authority.substr(1));
  } else {
    const auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) out.port = std::string(authority.substr(colon + 1));
  }
  if (out.host.empty()) return fail(Error::invalid(key + " names no host"));
  if (out.port.empty()) out.port = out.https ? "443" : "80";
  for (char ch : out.port) {
    if (ch < '0' || ch > '9') return fail(Error::invalid(key + " has a port that is not a number"));
  }
  for (char ch : out.target) {
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f)
      return fail(Error::invalid(key + " has a space or control character"));
  }
  return out;
}

namespace {

template <class Stream>
asio::awaitable<HttpPostResult> exchange(Stream& stream, http::request<http::string_body>& req,
                                         std::size_t max_body, bool keep_body) {
  HttpPostResult out;
  auto [ec, n] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (ec) {
    out.error = "sending the request failed: " + ec.message();
    co_return out;
  }
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  auto [rec, rn] =
      co_await http::async_read(stream, buf, parser, asio::as_tuple(asio::use_awaitable));
  (void)rn;
  if (rec == http::error::body_limit && keep_body) {
    out.error = "the answer is larger than " + std::to_string(max_body) + " bytes";
    co_return out;
  }
  if (rec && rec != http::error::body_limit) {
    out.error = "reading the answer failed: " + rec.message();
    co_return out;
  }
  out.status = parser.get().result_int();
  if (keep_body) out.body = std::move(parser.get().body());
  co_return out;
}

asio::awaitable<HttpPostResult> send(asio::any_io_executor executor, const HttpUrl& url,
                                     http::verb verb,
                                     std::vector<std::pair<std::string, std::string>> headers,
                                     std::string body, std::chrono::milliseconds timeout,
                                     std::shared_ptr<asio::ssl::context> tls, std::size_t max_body,
                                     bool keep_body) {
  HttpPostResult out;
  // A name lookup is bounded by the same timeout as the rest: a resolver that does not answer
  // (no DNS, no hosts file) must not hold the sender. The timer cancels the lookup; both own
  // the resolver, whichever ends first.
  auto resolver = std::make_shared<asio::ip::tcp::resolver>(executor);
  asio::steady_timer deadline(executor);
  deadline.expires_after(timeout);
  deadline.async_wait([resolver](boost::system::error_code ec) {
    if (!ec) resolver->cancel();
  });
  auto [rec, endpoints] =
      co_await resolver->async_resolve(url.host, url.port, asio::as_tuple(asio::use_awaitable));
  deadline.cancel();
  if (rec) {
    out.error = "cannot resolve " + url.host + ": " +
                (rec == asio::error::operation_aborted ? std::string("timed out") : rec.message());
    co_return out;
  }
  http::request<http::string_body> req{verb, url.target, 11};
  const bool default_port = url.port == (url.https ? "443" : "80");
  const auto host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  req.set(http::field::host, default_port ? host : host + ":" + url.port);
  req.set(http::field::user_agent, "sdoh-gateway");
  req.set(http::field::connection, "close");
  for (auto& [name, value] : headers)
    req.set(name, value);
  if (verb != http::verb::get) {
    req.body() = std::move(body);
    req.prepare_payload();
  }

  if (!url.https) {
    beast::tcp_stream stream(executor);
    stream.expires_after(timeout);
    auto [cec, ep] = co_await stream.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
    (void)ep;
    if (cec) {
      out.error = "cannot connect to " + url.host + ":" + url.port + ": " + cec.message();
      co_return out;
    }
    out = co_await exchange(stream, req, max_body, keep_body);
    boost::system::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    co_return out;
  }
  if (!tls) {
    out.error = "no TLS context for an https endpoint";
    co_return out;
  }
  beast::ssl_stream<beast::tcp_stream> stream(executor, *tls);
  beast::get_lowest_layer(stream).expires_after(timeout);
  if (auto named = set_client_peer_name(stream.native_handle(), url.host); !named) {
    out.error = named.error().message;
    co_return out;
  }
  auto [cec, ep] = co_await beast::get_lowest_layer(stream).async_connect(
      endpoints, asio::as_tuple(asio::use_awaitable));
  (void)ep;
  if (cec) {
    out.error = "cannot connect to " + url.host + ":" + url.port + ": " + cec.message();
    co_return out;
  }
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client,
                                               asio::as_tuple(asio::use_awaitable));
  if (hec) {
    out.error = "TLS handshake with " + url.host + " failed: " + hec.message();
    co_return out;
  }
  out = co_await exchange(stream, req, max_body, keep_body);
  auto [sec] = co_await stream.async_shutdown(asio::as_tuple(asio::use_awaitable));
  (void)sec;  // many servers close without close_notify
  co_return out;
}

}  // namespace

asio::awaitable<HttpPostResult> http_post(asio::any_io_executor executor, const HttpUrl& url,
                                          std::vector<std::pair<std::string, std::string>> headers,
                                          std::string body, std::chrono::milliseconds timeout,
                                          std::shared_ptr<asio::ssl::context> tls) {
  // The answer's body is read (at most 64 KiB) and dropped: only the status counts.
  co_return co_await send(std::move(executor), url, http::verb::post, std::move(headers),
                          std::move(body), timeout, std::move(tls), 64 * 1024, false);
}

asio::awaitable<HttpPostResult> http_get(asio::any_io_executor executor, const HttpUrl& url,
                                         std::vector<std::pair<std::string, std::string>> headers,
                                         std::chrono::milliseconds timeout,
                                         std::shared_ptr<asio::ssl::context> tls,
                                         std::size_t max_body) {
  co_return co_await send(std::move(executor), url, http::verb::get, std::move(headers), {},
                          timeout, std::move(tls), max_body, true);
}

}  // namespace sdoh::net
