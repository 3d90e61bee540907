#include "gateway/ops/ui.hpp"

#include <algorithm>

namespace sdoh::ops {

namespace asio = boost::asio;

namespace {

const EmbeddedFile* find(std::span<const EmbeddedFile> files, std::string_view path) {
  auto it = std::find_if(files.begin(), files.end(),
                         [path](const EmbeddedFile& f) { return f.path == path; });
  return it == files.end() ? nullptr : &*it;
}

void security_headers(http::Response& r) {
  r.headers.push_back({"Content-Security-Policy", std::string(kUiContentSecurityPolicy)});
  r.headers.push_back({"X-Content-Type-Options", "nosniff"});
  r.headers.push_back({"Referrer-Policy", "no-referrer"});
  r.headers.push_back({"X-Frame-Options", "DENY"});
}

http::Response serve(const EmbeddedFile& f, const http::Request& req) {
  http::Response r;
  security_headers(r);
  r.headers.push_back({"ETag", std::string(f.etag)});
  r.headers.push_back({"Cache-Control", "no-cache"});
  if (auto match = req.header("If-None-Match");
      match && match->find(f.etag) != std::string_view::npos) {
    r.status = 304;
    r.content_type.clear();
    return r;
  }
  r.status = 200;
  r.content_type = std::string(f.content_type);
  r.body = std::string(f.bytes);
  return r;
}

http::Response not_found() {
  auto r = http::Response::error(404, "not-found", "no such dashboard page or file");
  security_headers(r);
  return r;
}

}  // namespace

void add_ui_routes(http::Router& router, std::span<const EmbeddedFile> files) {
  const EmbeddedFile* index = find(files, "index.html");
  router.add("GET", "/ui", [index](http::Request& req) -> asio::awaitable<http::Response> {
    co_return index ? serve(*index, req) : not_found();
  });
  router.add("GET", "/ui/{page}", [index](http::Request& req) -> asio::awaitable<http::Response> {
    const auto& page = req.params["page"];
    const bool known =
        std::find(std::begin(kUiPages), std::end(kUiPages), page) != std::end(kUiPages);
    co_return known&& index ? serve(*index, req) : not_found();
  });
  router.add("GET", "/ui/assets/{file}",
             [files](http::Request& req) -> asio::awaitable<http::Response> {
               const auto* f = find(files, "assets/" + req.params["file"]);
               co_return f ? serve(*f, req) : not_found();
             });
}

}  // namespace sdoh::ops
