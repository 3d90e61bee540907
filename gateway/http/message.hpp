#pragma once
// HTTP requests and responses as plain values, and the router that maps them to handlers.
// The Beast server (adapters/http) converts wire messages to these and back, so handlers —
// ops endpoints, the FHIR API — know no socket and are tested without one.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

namespace sdoh::http {

struct Header {
  std::string name;
  std::string value;
};

struct Request {
  std::string method;  ///< "GET", "POST", ...
  std::string target;  ///< as sent: path and query
  std::string path;    ///< target before '?', not decoded
  std::string query;   ///< target after '?', not decoded
  std::vector<Header> headers;
  std::string body;
  std::string peer;       ///< remote address, for logs
  bool secure = false;    ///< arrived over TLS
  std::string client_cn;  ///< subject CN of the verified TLS client certificate; empty: none
  /// Its whole subject, one line ("/C=US/O=Early Start/CN=ehv-durham"); empty: none.
  std::string client_subject;
  std::map<std::string, std::string> params;  ///< path parameters from the route pattern

  /// Case-insensitive header lookup; the first occurrence.
  std::optional<std::string_view> header(std::string_view name) const;
  /// One query parameter: its name and value percent-decoded, and the item as sent.
  struct QueryParam {
    std::string name;
    std::string value;
    std::string_view raw;  ///< "name=value" as sent (a view of `query`)
  };
  /// Every query parameter in the order sent (empty items skipped).
  std::vector<QueryParam> query_params() const;
  /// Every value of a query parameter, percent-decoded, in order.
  std::vector<std::string> query_values(std::string_view name) const;
  std::optional<std::string> query_value(std::string_view name) const;
};

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::vector<Header> headers;
  std::string body;

  static Response json(unsigned status, std::string body);
  /// {"error": code, "message": message} — the gateway's own error body outside /fhir.
  static Response error(unsigned status, std::string_view code, std::string_view message);
};

using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;

/// Routes by method and path pattern. Patterns are literal segments and {name} parameters:
/// "/fhir/Task/{id}". The route pattern (never the raw path) labels metrics, so ids and other
/// PHI never reach a metric label.
class Router {
 public:
  void add(std::string method, std::string pattern, Handler handler);

  struct Match {
    const Handler* handler = nullptr;  ///< null when status is 404 or 405
    std::string route;                 ///< the pattern, or "unmatched"
    std::map<std::string, std::string> params;
    unsigned status = 0;  ///< 0 on a match, else 404 or 405
    std::string allow;    ///< for 405: the methods the path accepts
  };
  Match match(std::string_view method, std::string_view path) const;

  /// How errors the server answers itself (404, 405, 413, 431, 400, 500) look under a path
  /// prefix: the FHIR API answers them as OperationOutcomes. Default: Response::error.
  using ErrorBody =
      std::function<Response(unsigned status, std::string_view code, std::string_view message)>;
  void set_error_body(std::string path_prefix, ErrorBody body);
  Response error_response(std::string_view path, unsigned status, std::string_view code,
                          std::string_view message) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
  std::vector<std::pair<std::string, ErrorBody>> error_bodies_;
};

/// Percent-decoding for query values ('+' is a space in forms).
std::string url_decode(std::string_view s);

}  // namespace sdoh::http
