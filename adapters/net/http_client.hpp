#pragma once
// A small HTTP/1.1 client for the gateway's own outbound calls (FHIR Subscription rest-hook
// deliveries, JWKS fetches): one POST per connection, every step under one deadline, https verified
// against the system's trust store (or a CA file) and the URL's host name. Beast stays in the .cpp.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "gateway/core/result.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sdoh::net {

/// An http or https URL split into its parts.
struct HttpUrl {
  bool https = false;
  std::string host;  ///< without brackets for IPv6
  std::string port;  ///< "80"/"443" when the URL names none
  std::string target = "/";
  /// Parses "http(s)://host[:port][/path[?query]]"; errors name `key`.
  static Result<HttpUrl> parse(const std::string& url, const std::string& key);
};

struct HttpPostResult {
  /// The HTTP status; none when no answer came (connect, TLS, timeout: see `error`).
  std::optional<unsigned> status;
  std::string error;  ///< our own words, never the peer's body
  std::string body;   ///< http_get only: the answer's body
};

/// POSTs `body` to `url` and reads the answer's status (the body is read and dropped, at most
/// 64 KiB). Completes within `timeout`. `tls` is used for https (required then).
boost::asio::awaitable<HttpPostResult> http_post(
    boost::asio::any_io_executor executor, const HttpUrl& url,
    std::vector<std::pair<std::string, std::string>> headers, std::string body,
    std::chrono::milliseconds timeout, std::shared_ptr<boost::asio::ssl::context> tls);

/// GETs `url` and reads the answer's status and body (refused past `max_body` bytes: `error` set,
/// no status). Completes within `timeout`. For documents the gateway needs (a JWKS).
boost::asio::awaitable<HttpPostResult> http_get(
    boost::asio::any_io_executor executor, const HttpUrl& url,
    std::vector<std::pair<std::string, std::string>> headers, std::chrono::milliseconds timeout,
    std::shared_ptr<boost::asio::ssl::context> tls, std::size_t max_body = 256 * 1024);

}  // namespace sdoh::net
