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

TEST(MllpFramer, ADoubledStartBlockSplitAcrossReadsIsToleratedToo) {
  // As the listener reads: each read lent to the framer, then overwritten.
  for (const bool borrowed : {false, true}) {
    MllpFramer f(1024);
    std::string read = "\x0b";
    borrowed ? f.feed_borrowed(read) : f.feed(read);
    EXPECT_TRUE(frames_of(f).empty());
    read =
        "\x0b"
        "A\x1c\r";
    borrowed ? f.feed_borrowed(read) : f.feed(read);
    EXPECT_EQ(frames_of(f), std::vector<std::string>{"A"}) << (borrowed ? "borrowed" : "copied");
    EXPECT_EQ(f.deviations(), 1u);
  }
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

TEST(MllpFramer, InFrameOnceAStartBlockIsSeen) {
  MllpFramer f(1024);
  std::string frame;
  f.feed("\x0b");
  EXPECT_EQ(f.next(frame), MllpFramer::Event::kNone);
  EXPECT_TRUE(f.in_frame());
  f.feed("MSH|\x1c\r");
  EXPECT_EQ(f.next(frame), MllpFramer::Event::kFrame);
  EXPECT_FALSE(f.in_frame());
}

// What an idle connection holds: a buffer that grew for one large frame is freed once the frame
// is answered; one of a typical message's size is kept for the next message.
TEST(MllpFramer, AnIdleFramerFreesABufferGrownPastTheKeepSize) {
  MllpFramer f(1024 * 1024);
  f.feed(mllp_frame(std::string(100 * 1024, 'x')));
  EXPECT_EQ(frames_of(f).size(), 1u);
  EXPECT_GE(f.capacity(), 100u * 1024);
  f.release_if_idle(4096);
  EXPECT_EQ(f.capacity(), std::string().capacity());
  f.feed(mllp_frame(kMsg));
  EXPECT_EQ(frames_of(f), std::vector<std::string>{kMsg});
}

TEST(MllpFramer, AnIdleFramerKeepsABufferWithinTheKeepSize) {
  MllpFramer f(1024 * 1024);
  f.feed(mllp_frame(kMsg));
  EXPECT_EQ(frames_of(f).size(), 1u);
  const auto capacity = f.capacity();
  f.release_if_idle(4096);
  EXPECT_EQ(f.capacity(), capacity);
  EXPECT_EQ(f.buffered(), 0u);
}

TEST(MllpFramer, APartialFrameIsNeverReleased) {
  MllpFramer f(1024 * 1024);
  const std::string content(10 * 1024, 'y');
  f.feed("\x0b" + content);
  std::string frame;
  EXPECT_EQ(f.next(frame), MllpFramer::Event::kNone);
  f.release_if_idle(0);
  EXPECT_EQ(f.buffered(), content.size());
  f.feed("\x1c\r");
  EXPECT_EQ(frames_of(f), std::vector<std::string>{content});
}

TEST(MllpFramer, AnEndBlockWaitingForItsCarriageReturnIsNeverReleased) {
  MllpFramer f(1024);
  std::string frame;
  f.feed("\x0bMSH|\x1c");
  EXPECT_EQ(f.next(frame), MllpFramer::Event::kNone);
  f.release_if_idle(0);
  f.feed("\r");
  EXPECT_EQ(frames_of(f), std::vector<std::string>{"MSH|"});
  EXPECT_EQ(f.deviations(), 0u);
}

TEST(MllpFramer, StrayBytesAreDiscardedBeforeTheBufferIsReleased) {
  MllpFramer f(1024);
  f.feed(std::string(8 * 1024, 'z'));
  EXPECT_TRUE(frames_of(f).empty());
  f.release_if_idle(4096);
  EXPECT_EQ(f.capacity(), std::string().capacity());
  EXPECT_EQ(f.discarded_bytes(), 8u * 1024);
}

// Borrowed input: the caller's read buffer is framed in place and reused once next() says kNone,
// as the listener does with its read buffer. Every split must still give the same frames.
TEST(MllpFramer, BorrowedFramesSplitAtEveryByteSurviveTheCallerReusingItsBuffer) {
  const auto wire =
      mllp_frame(kMsg) + std::string(2, '\0') + mllp_frame("MSH|2") + mllp_frame("MSH|3");
  for (std::size_t cut = 1; cut < wire.size(); ++cut) {
    MllpFramer f(1024);
    std::vector<std::string> frames;
    std::string reused;  // the caller's one buffer, overwritten by every read
    for (const auto& piece : {wire.substr(0, cut), wire.substr(cut)}) {
      reused = piece;
      f.feed_borrowed(reused);
      for (auto more = frames_of(f); const auto& one : more)
        frames.push_back(one);
      reused.assign(reused.size(), '#');
    }
    EXPECT_EQ(frames, (std::vector<std::string>{kMsg, "MSH|2", "MSH|3"})) << "cut at " << cut;
    EXPECT_EQ(f.discarded_bytes(), 2u) << "cut at " << cut;
    EXPECT_EQ(f.buffered(), 0u);
  }
}

TEST(MllpFramer, FramesArrivingWholeAreNeverBuffered) {
  MllpFramer f(1024);
  const auto wire = mllp_frame(kMsg) + mllp_frame(kMsg);
  f.feed_borrowed(wire);
  EXPECT_EQ(frames_of(f), (std::vector<std::string>{kMsg, kMsg}));
  EXPECT_EQ(f.capacity(), std::string().capacity());
}

TEST(MllpFramer, BorrowedBytesAfterBufferedOnesAreAppended) {
  MllpFramer f(1024);
  f.feed("\x0bMSH|");
  EXPECT_TRUE(frames_of(f).empty());
  std::string read = "1\x1c\r";
  f.feed_borrowed(read);
  EXPECT_EQ(frames_of(f), std::vector<std::string>{"MSH|1"});
}

TEST(MllpFramer, AnOversizedBorrowedFrameIsReported) {
  MllpFramer f(16);
  const auto wire = "\x0b" + std::string(17, 'x');
  f.feed_borrowed(wire);
  std::string frame;
  EXPECT_EQ(f.next(frame), MllpFramer::Event::kTooLarge);
}

// The frame clock, with times written out: t0 is an arbitrary start, timeout 30 s, idle 5 min.
using Clock = FrameDeadline::Clock;
const Clock::time_point t0 = Clock::time_point(std::chrono::hours(1000));
constexpr auto kFrameTimeout = std::chrono::seconds(30);
constexpr auto kIdle = std::chrono::minutes(5);

TEST(FrameDeadline, WithNothingReceivedOnlyTheIdleTimeoutApplies) {
  FrameDeadline d(kFrameTimeout);
  EXPECT_EQ(d.read_deadline(t0, kIdle), t0 + kIdle);
  EXPECT_FALSE(d.expired(t0 + std::chrono::hours(1)));
}

TEST(FrameDeadline, TrickledBytesDoNotMoveTheFrameDeadline) {
  FrameDeadline d(kFrameTimeout);
  d.bytes_received(t0);
  for (int s = 3; s < 30; s += 3) {
    d.bytes_received(t0 + std::chrono::seconds(s));  // one byte every 3 s
    EXPECT_EQ(d.read_deadline(t0 + std::chrono::seconds(s), kIdle), t0 + kFrameTimeout);
  }
  EXPECT_FALSE(d.expired(t0 + std::chrono::seconds(29)));
  EXPECT_TRUE(d.expired(t0 + kFrameTimeout));
}

TEST(FrameDeadline, TheIdleTimeoutWinsWhenItIsEarlier) {
  FrameDeadline d(std::chrono::minutes(10));
  d.bytes_received(t0);
  EXPECT_EQ(d.read_deadline(t0 + std::chrono::seconds(1), kIdle),
            t0 + std::chrono::seconds(1) + kIdle);
}

TEST(FrameDeadline, ACompleteFrameStopsTheClock) {
  FrameDeadline d(kFrameTimeout);
  d.bytes_received(t0);
  d.frame_completed(false);
  EXPECT_EQ(d.read_deadline(t0 + std::chrono::minutes(2), kIdle),
            t0 + std::chrono::minutes(2) + kIdle);
  EXPECT_FALSE(d.expired(t0 + std::chrono::minutes(2)));
}

TEST(FrameDeadline, BytesOfTheNextFrameRunFromTheReadThatBroughtThem) {
  FrameDeadline d(kFrameTimeout);
  d.bytes_received(t0);
  d.bytes_received(t0 + std::chrono::seconds(20));  // ends frame 1, starts frame 2
  d.frame_completed(true);
  EXPECT_EQ(d.read_deadline(t0 + std::chrono::seconds(25), kIdle),
            t0 + std::chrono::seconds(20) + kFrameTimeout);
}

TEST(FrameDeadline, StrayBytesAfterAFrameStartTheClock) {
  FrameDeadline d(kFrameTimeout);
  d.bytes_received(t0);
  d.frame_completed(false);
  d.bytes_received(t0 + std::chrono::minutes(1));  // garbage, no start block
  EXPECT_EQ(d.read_deadline(t0 + std::chrono::minutes(1), kIdle),
            t0 + std::chrono::minutes(1) + kFrameTimeout);
  EXPECT_TRUE(d.expired(t0 + std::chrono::minutes(1) + kFrameTimeout));
}

}  // namespace
}  // namespace sdoh::hl7v2
