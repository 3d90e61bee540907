#include "gateway/ops/access.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::ops {
namespace {

using ::testing::HasSubstr;

constexpr const char* kOps = "ops-token-0123456789";
constexpr const char* kAdmin = "admin-token-0123456789";

http::Request with_bearer(std::string token) {
  http::Request req;
  req.method = "GET";
  req.path = "/ops/api/v1/health";
  if (!token.empty()) req.headers.push_back({"Authorization", "Bearer " + token});
  return req;
}

TEST(OpsAccess, DevModeWithoutTokensIsOpenAndEveryCallerIsAdmin) {
  OpsAccess access("", "", true);
  EXPECT_TRUE(access.open());
  EXPECT_EQ(access.role_of(with_bearer("")), OpsRole::kAdmin);
  EXPECT_FALSE(access.refuse(with_bearer(""), OpsRole::kAdmin));
}

TEST(OpsAccess, OpsTokenReadsButIsRefusedAdminRoutes) {
  OpsAccess access(kOps, kAdmin, true);
  EXPECT_FALSE(access.open());
  EXPECT_EQ(access.role_of(with_bearer(kOps)), OpsRole::kOps);
  EXPECT_FALSE(access.refuse(with_bearer(kOps), OpsRole::kOps));
  auto refused = access.refuse(with_bearer(kOps), OpsRole::kAdmin);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403u);
  EXPECT_EQ(refused->content_type, "application/problem+json");
  EXPECT_THAT(refused->body, HasSubstr("\"title\":\"admin only\""));
}

TEST(OpsAccess, AdminTokenMayDoEverythingOpsMay) {
  OpsAccess access(kOps, kAdmin, false);
  EXPECT_EQ(access.role_of(with_bearer(kAdmin)), OpsRole::kAdmin);
  EXPECT_FALSE(access.refuse(with_bearer(kAdmin), OpsRole::kOps));
  EXPECT_FALSE(access.refuse(with_bearer(kAdmin), OpsRole::kAdmin));
}

TEST(OpsAccess, NoOrUnknownTokenIs401WithAChallenge) {
  OpsAccess access(kOps, "", true);
  for (const auto* token : {"", "ops-token-0123456780"}) {
    auto refused = access.refuse(with_bearer(token), OpsRole::kOps);
    ASSERT_TRUE(refused) << token;
    EXPECT_EQ(refused->status, 401u);
    EXPECT_EQ(refused->content_type, "application/problem+json");
    EXPECT_THAT(refused->body,
                HasSubstr("\"status\":401,\"detail\":\"send Authorization: Bearer <ops.token>"));
    ASSERT_EQ(refused->headers.size(), 1u);
    EXPECT_EQ(refused->headers[0].name, "WWW-Authenticate");
  }
}

TEST(OpsAccess, TheSchemeIsCaseInsensitive) {
  OpsAccess access(kOps, "", true);
  http::Request req;
  req.headers.push_back({"authorization", std::string("bearer ") + kOps});
  EXPECT_EQ(access.role_of(req), OpsRole::kOps);
}

TEST(OpsAccess, OnlyAnOpsTokenConfiguredSaysNoAdminIsConfigured) {
  OpsAccess access(kOps, "", false);
  auto refused = access.refuse(with_bearer(kOps), OpsRole::kAdmin);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403u);
  EXPECT_THAT(refused->body,
              HasSubstr("neither admin.token nor a party of kind admin is configured"));
}

TEST(OpsAccess, ProductionWithoutTokensRefusesEveryoneNamingTheKeys) {
  OpsAccess access("", "", false);
  EXPECT_FALSE(access.open());
  auto refused = access.refuse(with_bearer("anything-at-all-here"), OpsRole::kOps);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403u);
  EXPECT_THAT(refused->body, HasSubstr("set ops.token (reads) and admin.token"));
}

TEST(OpsAccess, AnOpsOrAdminPartysClientCertificateIsItsRole) {
  // A Prometheus scraper with mTLS, in production, with no token anywhere.
  OpsAccess access(
      "", "", false,
      {{"prometheus-scraper", OpsRole::kOps}, {"/O=State/CN=gw-admin", OpsRole::kAdmin}});
  EXPECT_TRUE(access.configured());
  EXPECT_FALSE(access.open());
  auto scraper = with_bearer("");
  scraper.client_subject = "/O=State/CN=prometheus-scraper";
  EXPECT_EQ(access.role_of(scraper), OpsRole::kOps);
  EXPECT_FALSE(access.refuse(scraper, OpsRole::kOps));
  EXPECT_EQ(access.refuse(scraper, OpsRole::kAdmin)->status, 403u);
  auto admin = with_bearer("");
  admin.client_subject = "/O=State/CN=gw-admin";
  EXPECT_EQ(access.role_of(admin), OpsRole::kAdmin);
  auto stranger = with_bearer("");
  stranger.client_subject = "/O=Peds/CN=peds-clinic-a-ehr";
  EXPECT_EQ(access.role_of(stranger), OpsRole::kNone);
  EXPECT_EQ(access.refuse(stranger, OpsRole::kOps)->status, 401u);
}

TEST(OpsAccess, GuardRunsTheHandlerOnlyForTheRole) {
  OpsAccess access(kOps, kAdmin, true);
  int ran = 0;
  auto handler = access.guard(OpsRole::kAdmin,
                              [&ran](http::Request&) -> boost::asio::awaitable<http::Response> {
                                ++ran;
                                co_return http::Response::json(200, "{}");
                              });
  auto call = [&handler](std::string token) {
    auto req = with_bearer(std::move(token));
    boost::asio::io_context ioc;
    auto fut = boost::asio::co_spawn(ioc, handler(req), boost::asio::use_future);
    ioc.run();
    return fut.get().status;
  };
  EXPECT_EQ(call(kOps), 403u);
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(call(kAdmin), 200u);
  EXPECT_EQ(ran, 1);
}

TEST(OpsAccess, FromConfigRefusesTheAdminTokenAsOpsToken) {
  ::setenv("SDOH_TEST_OPS_TOKEN", kAdmin, 1);
  ::setenv("SDOH_TEST_ADMIN_TOKEN", kAdmin, 1);
  config::GatewayConfig cfg;
  cfg.ops.token = {config::SecretRef::Source::kEnv, "SDOH_TEST_OPS_TOKEN"};
  cfg.admin.token = {config::SecretRef::Source::kEnv, "SDOH_TEST_ADMIN_TOKEN"};
  auto access = OpsAccess::from_config(cfg);
  ASSERT_FALSE(access);
  EXPECT_EQ(access.error().where.expression, "ops.token");
  EXPECT_THAT(access.error().message, HasSubstr("is the same as admin.token"));
}

TEST(OpsAccess, FromConfigRefusesAShortToken) {
  ::setenv("SDOH_TEST_OPS_TOKEN", "short", 1);
  config::GatewayConfig cfg;
  cfg.ops.token = {config::SecretRef::Source::kEnv, "SDOH_TEST_OPS_TOKEN"};
  auto access = OpsAccess::from_config(cfg);
  ASSERT_FALSE(access);
  EXPECT_EQ(access.error().where.expression, "ops.token");
  EXPECT_THAT(access.error().message,
              HasSubstr("at least 16 bytes (env:SDOH_TEST_OPS_TOKEN has 5)"));
}

}  // namespace
}  // namespace sdoh::ops
