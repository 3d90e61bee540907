#include "gateway/http/message.hpp"

#include <algorithm>
#include <cctype>

#include "gateway/core/json_text.hpp"

namespace sdoh::http {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    const auto end = path.find('/', i);
    const auto stop = end == std::string_view::npos ? path.size() : end;
    out.push_back(path.substr(i, stop - i));
    i = stop;
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

std::vector<Request::QueryParam> Request::query_params() const {
  std::vector<QueryParam> out;
  std::string_view q = query;
  while (!q.empty()) {
    const auto amp = q.find('&');
    auto item = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    out.push_back({url_decode(item.substr(0, eq)),
                   eq == std::string_view::npos ? std::string() : url_decode(item.substr(eq + 1)),
                   item});
  }
  return out;
}

std::vector<std::string> Request::query_values(std::string_view name) const {
  std::vector<std::string> out;
  for (auto& p : query_params()) {
    if (p.name == name) out.push_back(std::move(p.value));
  }
  return out;
}

std::optional<std::string> Request::query_value(std::string_view name) const {
  auto all = query_values(name);
  if (all.empty()) return std::nullopt;
  return all.front();
}

Response Response::json(unsigned status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::error(unsigned status, std::string_view code, std::string_view message) {
  std::string body = "{\"error\":";
  append_json_string(body, code);
  body += ",\"message\":";
  append_json_string(body, message);
  body += "}";
  return json(status, std::move(body));
}

void Router::add(std::string method, std::string pattern, Handler handler) {
  Route r;
  r.segments.clear();
  for (auto s : split_path(pattern))
    r.segments.emplace_back(s);
  r.method = std::move(method);
  r.pattern = std::move(pattern);
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
}

void Router::set_error_body(std::string path_prefix, ErrorBody body) {
  error_bodies_.emplace_back(std::move(path_prefix), std::move(body));
}

Response Router::error_response(std::string_view path, unsigned status, std::string_view code,
                                std::string_view message) const {
  for (const auto& [prefix, body] : error_bodies_) {
    if (path == prefix || (path.starts_with(prefix) && path.size() > prefix.size() &&
                           (path[prefix.size()] == '/' || path[prefix.size()] == '?'))) {
      return body(status, code, message);
    }
  }
  return Response::error(status, code, message);
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match result;
  result.route = "unmatched";
  result.status = 404;
  const auto segments = split_path(path);
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (std::size_t i = 0; i < segments.size() && ok; ++i) {
      const auto& want = r.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        if (segments[i].empty()) ok = false;
        params[want.substr(1, want.size() - 2)] = std::string(segments[i]);
      } else {
        ok = want == segments[i];
      }
    }
    if (!ok) continue;
    // HEAD is answered by the GET handler; the server drops the body.
    if (r.method == method || (method == "HEAD" && r.method == "GET")) {
      result.handler = &r.handler;
      result.route = r.pattern;
      result.params = std::move(params);
      result.status = 0;
      result.allow.clear();
      return result;
    }
    result.status = 405;
    result.route = r.pattern;
    if (result.allow.find(r.method) == std::string::npos) {
      result.allow += (result.allow.empty() ? "" : ", ") + r.method;
    }
  }
  return result;
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace sdoh::http
