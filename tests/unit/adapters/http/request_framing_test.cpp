#include "adapters/http/request_framing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::http {
namespace {

using ::testing::HasSubstr;
using Values = std::vector<std::string_view>;

TEST(RequestFraming, NoTransferEncodingIsContentLengthOrNoBody) {
  EXPECT_TRUE(check_request_framing({}, true, 11));
  EXPECT_TRUE(check_request_framing({}, false, 11));
  EXPECT_TRUE(check_request_framing({}, true, 10));
}

TEST(RequestFraming, ChunkedAloneInAnyCaseIsAccepted) {
  EXPECT_TRUE(check_request_framing(Values{"chunked"}, false, 11));
  EXPECT_TRUE(check_request_framing(Values{"Chunked"}, false, 11));
  EXPECT_TRUE(check_request_framing(Values{" CHUNKED\t"}, false, 11));
}

TEST(RequestFraming, TransferEncodingWithContentLengthIsAmbiguous) {
  auto r = check_request_framing(Values{"chunked"}, true, 11);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  EXPECT_THAT(r.error().message, HasSubstr("Content-Length"));
}

TEST(RequestFraming, ACodingBeforeChunkedIsNotImplemented) {
  auto r = check_request_framing(Values{"gzip, chunked"}, false, 11);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kUnsupported);
  EXPECT_THAT(r.error().message, HasSubstr("\"gzip\""));
}

TEST(RequestFraming, CodingsSplitOverTwoFieldsAreOneList) {
  auto r = check_request_framing(Values{"gzip", "chunked"}, false, 11);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kUnsupported);
}

TEST(RequestFraming, ChunkedTwiceIsMalformed) {
  for (const auto& values : {Values{"chunked, chunked"}, Values{"chunked", "chunked"}}) {
    auto r = check_request_framing(values, false, 11);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
    EXPECT_THAT(r.error().message, HasSubstr("more than once"));
  }
}

TEST(RequestFraming, AFinalCodingOtherThanChunkedLeavesTheLengthUnknown) {
  for (const auto& values : {Values{"identity"}, Values{"gzip"}, Values{"chunked, gzip"}}) {
    auto r = check_request_framing(values, false, 11);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
    EXPECT_THAT(r.error().message, HasSubstr("not chunked"));
  }
}

TEST(RequestFraming, EmptyOrNonTokenElementsAreMalformed) {
  for (const auto& values : {Values{""}, Values{"chunked,"}, Values{", chunked"},
                             Values{"chunked;q=1"}, Values{"chun ked"}, Values{"\"chunked\""}}) {
    auto r = check_request_framing(values, false, 11);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  }
}

TEST(RequestFraming, TransferEncodingInHttp10IsRefused) {
  auto r = check_request_framing(Values{"chunked"}, false, 10);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  EXPECT_THAT(r.error().message, HasSubstr("HTTP/1.0"));
}

TEST(RequestFraming, ALongUnknownCodingIsCutShortInTheMessage) {
  const std::string coding(5000, 'x');
  auto r = check_request_framing(Values{coding, "chunked"}, false, 11);
  ASSERT_FALSE(r);
  EXPECT_LT(r.error().message.size(), 200u);
}

TEST(RequestFraming, ByteBudgetCoversHeaderTrailerBodyAndFraming) {
  // 2 x 16 KiB + 2 x 4 MiB + 64 KiB with the defaults.
  EXPECT_EQ(request_byte_budget(16 * 1024, 4 * 1024 * 1024), 8'486'912u);
  EXPECT_EQ(request_byte_budget(1024, 1024), 69'632u);
}

}  // namespace
}  // namespace sdoh::http
