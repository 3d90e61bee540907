// The outbound HTTP client (FHIR Subscription endpoints): its URLs, and that a POST completes
// within its timeout whatever the name lookup does.
#include "adapters/net/http_client.hpp"

#include <chrono>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace sdoh::net {
namespace {

TEST(HttpUrl, SplitsSchemeHostPortAndTarget) {
  auto u = HttpUrl::parse("https://agency.example.org:8443/hooks/sdoh?x=1", "endpoint");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_TRUE(u->https);
  EXPECT_EQ(u->host, "agency.example.org");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->target, "/hooks/sdoh?x=1");
}

TEST(HttpUrl, DefaultsThePortAndTheTarget) {
  auto https = HttpUrl::parse("https://agency.example.org", "endpoint");
  ASSERT_TRUE(https);
  EXPECT_EQ(https->port, "443");
  EXPECT_EQ(https->target, "/");
  auto http = HttpUrl::parse("http://[::1]/hook", "endpoint");
  ASSERT_TRUE(http);
  EXPECT_EQ(http->host, "::1");
  EXPECT_EQ(http->port, "80");
}

TEST(HttpUrl, RefusesWhatIsNotAPlainHttpUrl) {
  for (const char* bad : {"ftp://agency.example.org/", "agency.example.org/hook", "https:///hook",
                          "https://user:pw@agency.example.org/", "https://agency.example.org:x/",
                          "https://agency.example.org/a b", "http://[::1/hook"}) {
    auto u = HttpUrl::parse(bad, "Subscription.channel.endpoint");
    EXPECT_FALSE(u) << bad;
    if (!u) {
      EXPECT_NE(u.error().message.find("Subscription.channel.endpoint"), std::string::npos);
    }
  }
}

TEST(HttpPost, ANameThatDoesNotResolveEndsWithinTheTimeout) {
  // .invalid never resolves (RFC 6761): the lookup fails at once, or (no DNS, no hosts file)
  // is cut off by the timeout; either way the sender is not held.
  boost::asio::io_context io;
  auto url = HttpUrl::parse("http://sdoh-gateway-test.invalid:9/hook", "endpoint");
  ASSERT_TRUE(url);
  std::optional<HttpPostResult> result;
  const auto started = std::chrono::steady_clock::now();
  boost::asio::co_spawn(
      io, http_post(io.get_executor(), *url, {}, "{}", std::chrono::milliseconds(300), nullptr),
      [&](std::exception_ptr, HttpPostResult r) { result = std::move(r); });
  io.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->status);
  EXPECT_EQ(result->error.rfind("cannot resolve sdoh-gateway-test.invalid", 0), 0u)
      << result->error;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

}  // namespace
}  // namespace sdoh::net
