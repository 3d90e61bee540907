#include "adapters/hl7v2/mllp_framer.hpp"

#include <vector>

#include <gtest/gtest.h>

namespace sdoh::hl7v2 {
namespace {

const std::string kMsg = "MSH|^~\\&|EHR|A|GW|B|20261120||ORU^R01|1|P|2.5.1\rPID|1\r";

std::vector<std::string> frames_of(MllpFramer& f) {
  std::vector<std::string> out;
  std::string frame;
  while (f.next(frame) == MllpFramer::Event::kFrame)
    out.push_back(frame);
  return out;
}

TEST(MllpFramer, OneFrame) {
  MllpFramer f(1024);
  f.feed(mllp_frame(kMsg));
  EXPECT_EQ(frames_of(f), std::vector<std::string>{kMsg});
  EXPECT_EQ(f.discarded_bytes(), 0u);
  EXPECT_EQ(f.deviations(), 0u);
  EXPECT_EQ(f.buffered(), 0u);
}

TEST(MllpFramer, FrameSplitAcrossReadsAtEveryByte) {
  const auto wire = mllp_frame(kMsg);
  MllpFramer f(1024);
  std::vector<std::string> got;
  for (char c : wire) {
    f.feed(std::string_view(&c, 1));
    for (auto& fr : frames_of(f))
      got.push_back(fr);
  }
  EXPECT_EQ(got, std::vector<std::string>{kMsg});
}

TEST(MllpFramer, SeveralFramesInOneReadWithNulsBetween) {
  MllpFramer f(1024);
  f.feed(mllp_frame("A") + std::string("\0\0", 2) + mllp_frame("B") + "\n" + mllp_frame("C"));
  EXPECT_EQ(frames_of(f), (std::vector<std::string>{"A", "B", "C"}));
  EXPECT_EQ(f.discarded_bytes(), 3u);
}

TEST(MllpFramer, BytesBeforeStartBlockAreDiscardedAndCounted) {
  MllpFramer f(1024);
  f.feed("garbage" + mllp_frame("A"));
  EXPECT_EQ(frames_of(f), std::vector<std::string>{"A"});
  EXPECT_EQ(f.discarded_bytes(), 7u);
}

TEST(MllpFramer, DoubledStartAndEndBlocksAreTolerated) {
  MllpFramer f(1024);
  f.feed(
      "\x0b\x0b"
      "A\x1c\r\x1c\r");
  EXPECT_EQ(frames_of(f), std::vector<std::string>{"A"});
  EXPECT_EQ(f.deviations(), 1u);
  EXPECT_EQ(f.discarded_bytes(), 2u);  // the second <FS><CR>
}

TEST(MllpFramer, EndBlockWithoutCarriageReturnIsTolerated) {
  MllpFramer f(1024);
  f.feed(
      "\x0b"
      "A\x1c\x0b"
      "B\x1c\r");
  EXPECT_EQ(frames_of(f), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(f.deviations(), 1u);
}

TEST(MllpFramer, WaitsForByteAfterEndBlock) {
  MllpFramer f(1024);
  f.feed(
      "\x0b"
      "A\x1c");
  EXPECT_TRUE(frames_of(f).empty());
  f.feed("\r");
  EXPECT_EQ(frames_of(f), std::vector<std::string>{"A"});
}

TEST(MllpFramer, OversizedFrameIsReportedBeforeItEnds) {
  MllpFramer f(16);
  f.feed("\x0b" + std::string(17, 'x'));
  std::string frame;
  EXPECT_EQ(f.next(frame), MllpFramer::Event::kTooLarge);
}

TEST(MllpFramer, FrameAtTheLimitIsAccepted) {
  MllpFramer f(16);
  f.feed(mllp_frame(std::string(16, 'x')));
  EXPECT_EQ(frames_of(f).size(), 1u);
}

TEST(MllpFramer, EmptyFrameIsAFrame) {
  MllpFramer f(16);
  f.feed("\x0b\x1c\r");
  EXPECT_EQ(frames_of(f), std::vector<std::string>{""});
}

TEST(MllpFramer, LongStreamKeepsBufferBounded) {
  MllpFramer f(1024);
  for (int i = 0; i < 10000; ++i) {
    f.feed(mllp_frame(kMsg));
    ASSERT_EQ(frames_of(f).size(), 1u);
  }
  EXPECT_EQ(f.buffered(), 0u);
}

}  // namespace
}  // namespace sdoh::hl7v2
