// adapters/hl7v2/mllp_server.cpp over loopback TCP: the listener on a live io_context (two
// threads, as the runtime runs it), a scripted Hl7Handler in place of the pipeline, and blocking
// clients whose every read has a deadline. What the listener promises: MLLP framing both ways,
// one message at a time per connection so answers leave in arrival order, the peer's address
// handed to the handler, mllp.max_frame_bytes, mllp.frame_timeout and mllp.idle_timeout, the
// per-peer connection cap, and a drain (stop()) that closes idle connections at once while a
// message in flight still gets its answer.
#include "adapters/hl7v2/mllp_server.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <poll.h>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "tests/unit/support/loopback.hpp"

namespace sdoh::hl7v2 {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
using test::eventually;
using test::Gate;
using test::kWait;

std::string framed(const std::string& message) {
  return "\x0B" + message + "\x1C\x0D";
}

// The pipeline as the listener sees it. Records each message and its peer, and answers
// "ACK|<message>"; a message starting HOLD first waits at the gate, SLOW waits 100 ms (so a
// listener that answered out of order would be caught), NOANSWER gets no answer and TWO an
// answer of two HL7 messages (an enhanced-mode accept ACK and application ACK).
class ScriptedHandler : public pipeline::Hl7Handler {
 public:
  struct Call {
    std::string message;
    std::string peer;
  };

  asio::awaitable<std::string> handle(std::string message, const pipeline::Peer& peer) override {
    {
      std::lock_guard lock(mutex_);
      calls_.push_back({message, peer.address});
      max_active_ = std::max(max_active_, ++active_);
    }
    if (message.starts_with("HOLD")) {
      co_await gate.wait();
    } else if (message.starts_with("SLOW")) {
      asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
      co_await timer.async_wait(kUseTuple);
    }
    {
      std::lock_guard lock(mutex_);
      --active_;
    }
    if (message.starts_with("NOANSWER")) co_return "";
    if (message.starts_with("TWO")) {
      co_return "MSH|^~\\&|GW|1\rMSA|CA|" + message + "\rMSH|^~\\&|GW|2\rMSA|AA|" + message + "\r";
    }
    co_return "ACK|" + message;
  }

  std::vector<Call> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  bool saw(const std::string& message) const {
    const auto all = calls();
    return std::any_of(all.begin(), all.end(), [&](const Call& c) { return c.message == message; });
  }
  int max_active() const {
    std::lock_guard lock(mutex_);
    return max_active_;
  }

  Gate gate;

 private:
  mutable std::mutex mutex_;
  std::vector<Call> calls_;
  int active_ = 0;
  int max_active_ = 0;
};

// A clinic's interface engine: a loopback client that reads MLLP frames.
class Client : public test::LoopbackClient {
 public:
  using LoopbackClient::LoopbackClient;
  /// The next complete frame's content; nothing when none completes within `limit`.
  std::optional<std::string> next_frame(std::chrono::milliseconds limit = kWait) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      const auto end = received_.find("\x1C\x0D");
      if (end != std::string::npos) {
        EXPECT_EQ(received_[0], '\x0B') << "an answer must start with the start block";
        auto content = received_.substr(1, end - 1);
        received_.erase(0, end + 2);
        return content;
      }
      if (closed_ || !read_once(deadline)) return std::nullopt;
    }
  }
};

class MllpServerTest : public ::testing::Test {
 protected:
  // Starts the listener with cfg_ (which a test may change first) on any free port.
  void start() {
    cfg_.listen = {"127.0.0.1", 0};
    server_ = std::make_unique<MllpServer>(ioc_, cfg_, handler_, registry_);
    auto bound = server_->bind();
    ASSERT_TRUE(bound) << bound.error().message;
    port_ = static_cast<std::uint16_t>(std::stoi(bound->substr(bound->rfind(':') + 1)));
    server_->start();
    for (int i = 0; i < 2; ++i)
      threads_.emplace_back([this] { ioc_.run(); });
  }

  void TearDown() override {
    handler_.gate.open();
    if (server_) {
      server_->stop();
      // Every connection ends with its client and the drain: the gauge returns to zero.
      EXPECT_TRUE(eventually([&] { return metric("sdoh_mllp_connections_open") == 0; }))
          << metric("sdoh_mllp_connections_open") << " connections still open";
    }
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_)
      t.join();
  }

  // A sample's value from the registry's exposition ("name" or "name{labels}"); -1 when absent.
  double metric(const std::string& sample) const { return test::metric_sample(registry_, sample); }

  config::MllpConfig cfg_;
  metrics::Registry registry_;
  ScriptedHandler handler_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(ioc_);
  std::unique_ptr<MllpServer> server_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
};

TEST_F(MllpServerTest, HandlerGetsTheBytesBetweenTheBlocksAndItsAnswerComesBackFramed) {
  start();
  Client client(port_);
  client.send("\x0BMSH|^~\\&|EHR|PEDS_A\rPID|1\x1C\x0D");
  // The answer's exact bytes: <VT> answer <FS><CR>, and nothing else.
  const std::string expected =
      "\x0B"
      "ACK|MSH|^~\\&|EHR|PEDS_A\rPID|1\x1C\x0D";
  ASSERT_TRUE(client.read_at_least(expected.size()));
  EXPECT_EQ(client.unread(), expected);
  const auto calls = handler_.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].message, "MSH|^~\\&|EHR|PEDS_A\rPID|1");
  EXPECT_EQ(metric("sdoh_mllp_frames_total"), 1);
}

TEST_F(MllpServerTest, FrameArrivingInPiecesIsHandledOnceWhole) {
  start();
  Client client(port_);
  client.send("\x0BMSG-");
  std::this_thread::sleep_for(30ms);  // pacing only: separate segments, separate reads
  client.send("in-three");
  std::this_thread::sleep_for(30ms);
  client.send("-pieces\x1C\x0D");
  EXPECT_EQ(client.next_frame(), "ACK|MSG-in-three-pieces");
  ASSERT_EQ(handler_.calls().size(), 1u);
  EXPECT_EQ(handler_.calls()[0].message, "MSG-in-three-pieces");
}

TEST_F(MllpServerTest, AnswersSeveralMessagesOnOneConnectionInArrivalOrder) {
  start();
  Client client(port_);
  // All three in one write: the first is slow to answer, the others are quick.
  client.send(framed("SLOW-1") + framed("FAST-2") + framed("FAST-3"));
  EXPECT_EQ(client.next_frame(), "ACK|SLOW-1");
  EXPECT_EQ(client.next_frame(), "ACK|FAST-2");
  EXPECT_EQ(client.next_frame(), "ACK|FAST-3");
  EXPECT_EQ(handler_.max_active(), 1) << "one message at a time per connection";
  client.send(framed("FAST-4"));  // the connection stays open for more
  EXPECT_EQ(client.next_frame(), "ACK|FAST-4");
}

TEST_F(MllpServerTest, AnswerOfTwoMessagesIsFramedAsTwoFrames) {
  start();
  Client client(port_);
  client.send(framed("TWO"));
  EXPECT_EQ(client.next_frame(), "MSH|^~\\&|GW|1\rMSA|CA|TWO\r");
  EXPECT_EQ(client.next_frame(), "MSH|^~\\&|GW|2\rMSA|AA|TWO\r");
}

TEST_F(MllpServerTest, EmptyAnswerWritesNothingAndTheNextMessageIsAnswered) {
  start();
  Client client(port_);
  client.send(framed("NOANSWER-1"));
  client.send(framed("MSG-2"));
  // An empty frame for the first would arrive before this one.
  EXPECT_EQ(client.next_frame(), "ACK|MSG-2");
  EXPECT_EQ(client.unread(), "");
  EXPECT_TRUE(handler_.saw("NOANSWER-1"));
}

TEST_F(MllpServerTest, HandlerSeesThePeerAddressOfTheConnection) {
  start();
  Client client(port_);
  client.send(framed("MSG-1"));
  ASSERT_TRUE(client.next_frame());
  ASSERT_EQ(handler_.calls().size(), 1u);
  EXPECT_EQ(handler_.calls()[0].peer, "127.0.0.1:" + std::to_string(client.local_port()));
}

TEST_F(MllpServerTest, FrameOfExactlyMaxFrameBytesIsAnswered) {
  cfg_.max_frame_bytes = 64;
  start();
  Client client(port_);
  const std::string message(64, 'M');
  client.send(framed(message));
  EXPECT_EQ(client.next_frame(), "ACK|" + message);
  EXPECT_EQ(metric("sdoh_mllp_oversized_frames_total"), 0);
}

// An idle connection reads into a small buffer (4 KB); what a larger frame brings beyond it is
// drained from the socket. Every byte arrives once, in order, and is counted.
TEST_F(MllpServerTest, FramesLargerThanTheReadBufferArriveWholeAndEveryByteIsCounted) {
  start();
  Client client(port_);
  std::string first(100 * 1024, 'A'), second(20 * 1024, 'B');
  for (std::size_t i = 0; i < first.size(); i += 1000)
    first[i] = static_cast<char>('a' + (i / 1000) % 26);  // a reordered chunk would show
  const auto wire = framed(first) + framed(second);
  client.send(wire);
  EXPECT_EQ(client.next_frame(), "ACK|" + first);
  EXPECT_EQ(client.next_frame(), "ACK|" + second);
  EXPECT_EQ(metric("sdoh_mllp_bytes_received_total"), static_cast<double>(wire.size()));
  EXPECT_EQ(metric("sdoh_mllp_frames_total"), 2);
}

TEST_F(MllpServerTest, FrameOverMaxFrameBytesInOneBurstClosesTheConnection) {
  cfg_.max_frame_bytes = 16 * 1024;
  start();
  Client client(port_);
  client.send(framed(std::string(512 * 1024, 'M')));
  ASSERT_TRUE(client.wait_closed());
  EXPECT_TRUE(handler_.calls().empty());
  EXPECT_EQ(metric("sdoh_mllp_oversized_frames_total"), 1);
}

TEST_F(MllpServerTest, FrameOverMaxFrameBytesClosesTheConnectionUnanswered) {
  cfg_.max_frame_bytes = 64;
  start();
  Client client(port_);
  client.send(framed(std::string(65, 'M')));
  ASSERT_TRUE(client.wait_closed());
  EXPECT_EQ(client.unread(), "") << "no answer to a frame over the limit";
  EXPECT_TRUE(handler_.calls().empty());
  EXPECT_EQ(metric("sdoh_mllp_oversized_frames_total"), 1);
}

TEST_F(MllpServerTest, FrameNotCompleteWithinFrameTimeoutClosesTheConnection) {
  cfg_.frame_timeout = 300ms;
  cfg_.idle_timeout = 60s;
  start();
  Client client(port_);
  const auto first_byte = Clock::now();
  client.send("\x0BMSH|");
  // A byte every 50 ms keeps the idle timer from firing; the frame's own deadline must.
  const auto give_up = first_byte + kWait;
  while (!client.wait_closed(50ms) && Clock::now() < give_up)
    client.send("x");
  ASSERT_TRUE(client.closed());
  EXPECT_GE(Clock::now() - first_byte, 300ms);
  EXPECT_EQ(client.unread(), "");
  EXPECT_TRUE(handler_.calls().empty());
  // Beast's deadline closes the socket before the session resumes to count it.
  EXPECT_TRUE(eventually([&] { return metric("sdoh_mllp_frame_timeouts_total") == 1; }));
}

TEST_F(MllpServerTest, SilentConnectionClosesAfterIdleTimeout) {
  cfg_.idle_timeout = 300ms;
  start();
  Client client(port_);
  const auto sent = Clock::now();
  client.send(framed("MSG-1"));
  ASSERT_EQ(client.next_frame(), "ACK|MSG-1");
  ASSERT_TRUE(client.wait_closed(3s));
  EXPECT_GE(Clock::now() - sent, 300ms);
  // Once the session has ended (the gauge drops last), it counted no frame timeout.
  ASSERT_TRUE(eventually([&] { return metric("sdoh_mllp_connections_open") == 0; }));
  EXPECT_EQ(metric("sdoh_mllp_frame_timeouts_total"), 0) << "idle, not a frame timeout";
}

TEST_F(MllpServerTest, MessagesMoreOftenThanIdleTimeoutKeepTheConnectionOpen) {
  cfg_.idle_timeout = 500ms;
  start();
  Client client(port_);
  // Eight messages 100 ms apart: the connection lives well past one idle timeout.
  for (int i = 0; i < 8; ++i) {
    client.send(framed("MSG-" + std::to_string(i)));
    ASSERT_EQ(client.next_frame(), "ACK|MSG-" + std::to_string(i));
    std::this_thread::sleep_for(100ms);  // pacing only
  }
  const auto calls = handler_.calls();
  ASSERT_EQ(calls.size(), 8u);
  EXPECT_EQ(calls.front().peer, calls.back().peer) << "one connection throughout";
}

TEST_F(MllpServerTest, PeerCapClosesFurtherConnectionsFromTheSameAddress) {
  cfg_.max_connections_per_peer = 2;
  start();
  auto first = std::make_unique<Client>(port_);
  Client second(port_);
  first->send(framed("FIRST"));
  second.send(framed("SECOND"));
  ASSERT_EQ(first->next_frame(), "ACK|FIRST");
  ASSERT_EQ(second.next_frame(), "ACK|SECOND");

  Client third(port_);
  third.send(framed("THIRD"));
  ASSERT_TRUE(third.wait_closed());
  EXPECT_EQ(third.unread(), "");
  EXPECT_FALSE(handler_.saw("THIRD"));
  EXPECT_EQ(metric("sdoh_mllp_connections_rejected_total{reason=\"peer_cap\"}"), 1);
  EXPECT_EQ(server_->open_connections(), 2u);

  // A closed connection gives its place back.
  first->close();
  ASSERT_TRUE(eventually([&] { return metric("sdoh_mllp_connections_open") == 1; }));
  Client fourth(port_);
  fourth.send(framed("FOURTH"));
  EXPECT_EQ(fourth.next_frame(), "ACK|FOURTH");
}

TEST_F(MllpServerTest, PeerCapCountsEachAddressApart) {
  cfg_.max_connections_per_peer = 1;
  start();
  Client first(port_, "127.0.0.1");
  first.send(framed("FROM-1"));
  ASSERT_EQ(first.next_frame(), "ACK|FROM-1");
  Client other(port_, "127.0.0.2");
  other.send(framed("FROM-2"));
  EXPECT_EQ(other.next_frame(), "ACK|FROM-2");
  Client again(port_, "127.0.0.1");
  EXPECT_TRUE(again.wait_closed()) << "127.0.0.1 is at its cap of one";

  const auto calls = handler_.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].peer, "127.0.0.2:" + std::to_string(other.local_port()));
  EXPECT_EQ(metric("sdoh_mllp_connections_rejected_total{reason=\"peer_cap\"}"), 1);
}

TEST_F(MllpServerTest, OpenConnectionsCountsTheConnectionsBeingServed) {
  start();
  EXPECT_EQ(server_->open_connections(), 0u);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>(port_));
    clients.back()->send(framed("MSG-" + std::to_string(i)));
    ASSERT_EQ(clients.back()->next_frame(), "ACK|MSG-" + std::to_string(i));
  }
  EXPECT_EQ(server_->open_connections(), 3u);
  clients[1]->close();
  EXPECT_TRUE(eventually([&] { return server_->open_connections() == 2; }))
      << server_->open_connections();
  clients.clear();
  EXPECT_TRUE(eventually([&] { return server_->open_connections() == 0; }))
      << server_->open_connections();
}

TEST_F(MllpServerTest, StopClosesIdleConnectionsAndStillAnswersTheMessageInFlight) {
  start();
  Client idle(port_);
  idle.send(framed("MSG-1"));
  ASSERT_EQ(idle.next_frame(), "ACK|MSG-1");
  Client busy(port_);
  busy.send(framed("HOLD-2"));
  ASSERT_TRUE(eventually([&] { return handler_.saw("HOLD-2"); }));

  server_->stop();
  EXPECT_TRUE(idle.wait_closed()) << "an idle connection closes at once on stop()";
  EXPECT_EQ(idle.unread(), "");
  // The busy connection is still there, waiting for its answer.
  EXPECT_TRUE(eventually([&] { return server_->open_connections() == 1; }))
      << server_->open_connections();

  handler_.gate.open();
  EXPECT_EQ(busy.next_frame(), "ACK|HOLD-2");
  EXPECT_TRUE(busy.wait_closed()) << "closes once its answer is written";
  EXPECT_TRUE(eventually([&] { return server_->open_connections() == 0; }));

  // No new connection is served after stop().
  Client late(port_);
  if (late.connected()) {
    late.send(framed("LATE"));
    EXPECT_TRUE(late.wait_closed());
    EXPECT_EQ(late.unread(), "");
  }
  EXPECT_FALSE(handler_.saw("LATE"));
}

}  // namespace
}  // namespace sdoh::hl7v2
