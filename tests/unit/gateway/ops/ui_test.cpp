#include "gateway/ops/ui.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::ops {
namespace {

using ::testing::HasSubstr;

constexpr EmbeddedFile kFiles[] = {
    {"index.html", "text/html; charset=utf-8", "\"abc123\"", "<!doctype html><title>t</title>"},
    {"assets/app.js", "text/javascript; charset=utf-8", "\"def456\"", "export {};"},
};

class UiRoutes : public ::testing::Test {
 protected:
  UiRoutes() { add_ui_routes(router_, kFiles); }

  http::Response get(const std::string& path, std::vector<http::Header> headers = {}) {
    auto m = router_.match("GET", path);
    EXPECT_EQ(m.status, 0u) << path;
    http::Request req;
    req.method = "GET";
    req.path = path;
    req.params = m.params;
    req.headers = std::move(headers);
    boost::asio::io_context ioc;
    auto fut = boost::asio::co_spawn(ioc, (*m.handler)(req), boost::asio::use_future);
    ioc.run();
    return fut.get();
  }

  static std::string header(const http::Response& r, std::string_view name) {
    for (const auto& h : r.headers)
      if (h.name == name) return h.value;
    return "";
  }

  http::Router router_;
};

TEST_F(UiRoutes, EveryPageIsTheIndexWithAStrictPolicy) {
  for (const auto* path : {"/ui", "/ui/", "/ui/overview", "/ui/equity", "/ui/senders"}) {
    auto r = get(path);
    EXPECT_EQ(r.status, 200u) << path;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_EQ(r.body, "<!doctype html><title>t</title>");
    EXPECT_EQ(header(r, "Content-Security-Policy"),
              "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
              "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'");
    EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(header(r, "ETag"), "\"abc123\"");
    EXPECT_EQ(header(r, "Cache-Control"), "no-cache");
  }
}

TEST_F(UiRoutes, AnAssetHasItsOwnTypeAndTag) {
  auto r = get("/ui/assets/app.js");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(r.body, "export {};");
  EXPECT_EQ(header(r, "ETag"), "\"def456\"");
}

TEST_F(UiRoutes, AMatchingTagIs304WithoutABody) {
  auto r = get("/ui/assets/app.js", {{"If-None-Match", "\"def456\""}});
  EXPECT_EQ(r.status, 304u);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.content_type, "");
  EXPECT_EQ(header(r, "ETag"), "\"def456\"");
}

TEST_F(UiRoutes, UnknownPagesAndFilesAre404) {
  EXPECT_EQ(get("/ui/admin").status, 404u);
  auto r = get("/ui/assets/missing.js");
  EXPECT_EQ(r.status, 404u);
  EXPECT_THAT(header(r, "Content-Security-Policy"), HasSubstr("default-src 'none'"));
}

}  // namespace
}  // namespace sdoh::ops
