// The outbound HTTP client's URLs (FHIR Subscription endpoints).
#include "adapters/net/http_client.hpp"

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

}  // namespace
}  // namespace sdoh::net
