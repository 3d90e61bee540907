#include <gtest/gtest.h>

#include "gateway/http/message.hpp"

namespace sdoh::http {
namespace {

Handler noop() {
  return [](Request&) -> boost::asio::awaitable<Response> { co_return Response::json(200, "{}"); };
}

TEST(Router, MatchesLiteralRoute) {
  Router r;
  r.add("GET", "/healthz", noop());
  auto m = r.match("GET", "/healthz");
  EXPECT_EQ(m.status, 0u);
  EXPECT_NE(m.handler, nullptr);
  EXPECT_EQ(m.route, "/healthz");
}

TEST(Router, CapturesPathParameters) {
  Router r;
  r.add("GET", "/fhir/Task/{id}", noop());
  auto m = r.match("GET", "/fhir/Task/abc-123");
  ASSERT_EQ(m.status, 0u);
  EXPECT_EQ(m.route, "/fhir/Task/{id}");
  EXPECT_EQ(m.params.at("id"), "abc-123");
}

TEST(Router, UnknownPathIs404Unmatched) {
  Router r;
  r.add("GET", "/healthz", noop());
  auto m = r.match("GET", "/fhir/Patient/1");
  EXPECT_EQ(m.status, 404u);
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_EQ(m.route, "unmatched");
}

TEST(Router, WrongMethodIs405WithAllow) {
  Router r;
  r.add("GET", "/fhir/Task/{id}", noop());
  r.add("PUT", "/fhir/Task/{id}", noop());
  auto m = r.match("DELETE", "/fhir/Task/1");
  EXPECT_EQ(m.status, 405u);
  EXPECT_EQ(m.allow, "GET, PUT");
}

TEST(Router, HeadIsAnsweredByGet) {
  Router r;
  r.add("GET", "/readyz", noop());
  EXPECT_EQ(r.match("HEAD", "/readyz").status, 0u);
}

TEST(Router, SegmentCountMustMatch) {
  Router r;
  r.add("GET", "/fhir/Task/{id}", noop());
  EXPECT_EQ(r.match("GET", "/fhir/Task").status, 404u);
  EXPECT_EQ(r.match("GET", "/fhir/Task/1/_history").status, 404u);
}

TEST(Request, QueryValuesAreDecoded) {
  Request req;
  req.query = "owner=Organization%2Fehv-durham&status=requested&status=accepted&q=a+b";
  EXPECT_EQ(req.query_value("owner"), "Organization/ehv-durham");
  EXPECT_EQ(req.query_values("status"), (std::vector<std::string>{"requested", "accepted"}));
  EXPECT_EQ(req.query_value("q"), "a b");
  EXPECT_EQ(req.query_value("absent"), std::nullopt);
}

TEST(Request, HeaderLookupIgnoresCase) {
  Request req;
  req.headers.push_back({"Content-Type", "application/fhir+json"});
  EXPECT_EQ(req.header("content-type"), "application/fhir+json");
  EXPECT_EQ(req.header("accept"), std::nullopt);
}

TEST(UrlDecode, LeavesMalformedEscapesAlone) {
  EXPECT_EQ(url_decode("100%"), "100%");
  EXPECT_EQ(url_decode("%zz"), "%zz");
  EXPECT_EQ(url_decode("%41"), "A");
}

}  // namespace
}  // namespace sdoh::http
