// The outbound MLLP client against a scripted in-test MLLP peer (plain TCP or TLS) on loopback:
// what each kind of answer, silence or failure becomes, connection reuse, and the TLS checks.
#include "adapters/hl7v2/mllp_client.hpp"

#include <array>
#include <filesystem>
#include <functional>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "adapters/hl7v2/mllp_framer.hpp"
#include "adapters/net/tls.hpp"
#include "gateway/log/log.hpp"
#include "tests/unit/adapters/net/test_certificate.hpp"

namespace sdoh::hl7v2 {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::ip::tcp;
using std::chrono::milliseconds;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// What the client sends: an RRI^I12 with PHI in it, which must never reach a log line.
constexpr const char* kMessage =
    "MSH|^~\\&|SDOH_GW|GW|EHR|PEDS_A|20261125101500+0000||RRI^I12^RRI_I12|GW-1|P|2.5.1|||AL|NE\r"
    "MSA|AA|A1000003\r"
    "RF1|A^accepted^HL70283|||||REF-2026-0001^PEDS_A\r"
    "PID|1||MRN12345^^^PEDS_A^MR||Garcia^Sofia\r";

std::string ack(const std::string& code, const std::string& control_id = "GW-1",
                const std::string& err = "") {
  return "MSH|^~\\&|EHR|PEDS_A|SDOH_GW|GW|20261125101501+0000||ACK^I12^ACK|C-77|P|2.5.1\r"
         "MSA|" +
         code + "|" + control_id + "\r" + err;
}

std::string framed(const std::string& message) {
  return mllp_frame(message);
}

// A clinic's MLLP listener, scripted: each frame it receives gets the script's reply written
// back as is (bytes, framed or not); no reply leaves the connection open and silent.
class ScriptedPeer {
 public:
  struct Reply {
    std::string bytes;
    bool close_after = false;  ///< close the connection once the bytes are written
  };
  using Script = std::function<std::optional<Reply>(const std::string& frame)>;

  ScriptedPeer(asio::io_context& io, Script script,
               std::shared_ptr<asio::ssl::context> tls = nullptr)
      : script_(std::move(script)), tls_(std::move(tls)), acceptor_(io) {
    const tcp::endpoint any(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(any.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(any);
    acceptor_.listen();
    asio::co_spawn(io, accept_loop(), asio::detached);
  }

  std::string port() const { return std::to_string(acceptor_.local_endpoint().port()); }
  int connections = 0;
  std::vector<std::string> frames;

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kUseTuple);
      if (ec) co_return;
      ++connections;
      auto ex = acceptor_.get_executor();
      if (tls_) {
        auto stream = std::make_shared<asio::ssl::stream<tcp::socket>>(std::move(socket), *tls_);
        asio::co_spawn(ex, serve_tls(stream), asio::detached);
      } else {
        auto stream = std::make_shared<tcp::socket>(std::move(socket));
        asio::co_spawn(ex, serve(stream), asio::detached);
      }
    }
  }

  asio::awaitable<void> serve_tls(std::shared_ptr<asio::ssl::stream<tcp::socket>> stream) {
    auto [ec] = co_await stream->async_handshake(asio::ssl::stream_base::server, kUseTuple);
    if (ec) co_return;
    co_await serve(stream);
  }

  template <class Stream>
  asio::awaitable<void> serve(std::shared_ptr<Stream> stream) {
    MllpFramer framer(1 << 20);
    std::array<char, 4096> chunk{};
    std::string frame;
    for (;;) {
      auto [ec, n] = co_await stream->async_read_some(asio::buffer(chunk), kUseTuple);
      if (ec) co_return;
      framer.feed(std::string_view(chunk.data(), n));
      while (framer.next(frame) == MllpFramer::Event::kFrame) {
        frames.push_back(frame);
        auto reply = script_(frame);
        if (!reply) continue;
        auto [wec, written] =
            co_await asio::async_write(*stream, asio::buffer(reply->bytes), kUseTuple);
        (void)written;
        if (wec || reply->close_after) co_return;
      }
    }
  }

  Script script_;
  std::shared_ptr<asio::ssl::context> tls_;
  tcp::acceptor acceptor_;
};

class MllpClientTest : public ::testing::Test {
 protected:
  MllpClientTest() {
    dir_ = fs::temp_directory_path() /
           ("sdoh-mllp-client-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  ~MllpClientTest() override { fs::remove_all(dir_); }

  MllpSendOutcome send(MllpClient& client, const MllpEndpoint& endpoint,
                       std::string message = kMessage) {
    std::optional<MllpSendOutcome> out;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          out = co_await client.send(endpoint, std::move(message));
        },
        asio::detached);
    while (!out)
      io_.run_one();
    return *out;
  }

  static MllpEndpoint at(const ScriptedPeer& peer) {
    auto ep = MllpEndpoint::parse("127.0.0.1:" + peer.port(), "test");
    EXPECT_TRUE(ep);
    return *ep;
  }

  static ScriptedPeer::Script answering(std::string bytes) {
    return [bytes](const std::string&) { return ScriptedPeer::Reply{bytes, false}; };
  }

  MllpClientOptions fast() const {
    MllpClientOptions o;
    o.connect_timeout = milliseconds(500);
    o.answer_timeout = milliseconds(300);
    return o;
  }

  asio::io_context io_;
  fs::path dir_;
};

// --- answers ---------------------------------------------------------------------------------

TEST_F(MllpClientTest, ApplicationAcceptIsAccepted) {
  ScriptedPeer peer(io_, answering(framed(ack("AA"))));
  MllpClient client(io_.get_executor());
  auto out = send(client, at(peer));
  EXPECT_TRUE(out.accepted());
  EXPECT_EQ(out.code, AckCode::kAA);
  ASSERT_EQ(peer.frames.size(), 1u);
  EXPECT_EQ(peer.frames[0], kMessage);  // framed once, bytes unchanged
  EXPECT_EQ(client.stats().sent, 1u);
}

TEST_F(MllpClientTest, CommitAcceptIsAccepted) {
  ScriptedPeer peer(io_, answering(framed(ack("CA"))));
  MllpClient client(io_.get_executor());
  auto out = send(client, at(peer));
  EXPECT_TRUE(out.accepted());
  EXPECT_EQ(out.code, AckCode::kCA);
}

TEST_F(MllpClientTest, ApplicationErrorIsARejectionWithTheErrText) {
  ScriptedPeer peer(
      io_, answering(framed(
               ack("AE", "GW-1",
                   "ERR||RF1^1^6|204^Unknown key identifier^HL70357|E||||no such referral\r"))));
  MllpClient client(io_.get_executor());
  auto out = send(client, at(peer));
  EXPECT_EQ(out.status, MllpSendOutcome::Status::kRejected);
  EXPECT_EQ(out.code, AckCode::kAE);
  EXPECT_EQ(out.error_code, "204");
  EXPECT_EQ(out.text, "no such referral");
  EXPECT_FALSE(out.final_rejection());  // AE may pass: the caller retries
}

TEST_F(MllpClientTest, RejectsAreFinalAndFallBackToMsa3) {
  for (const char* code : {"AR", "CR"}) {
    ScriptedPeer peer(io_, answering(framed("MSH|^~\\&|EHR|PEDS_A|SDOH_GW|GW|20261125||ACK|C-1|P|"
                                            "2.5.1\rMSA|" +
                                            std::string(code) + "|GW-1|unsupported message\r")));
    MllpClient client(io_.get_executor());
    auto out = send(client, at(peer));
    EXPECT_EQ(out.status, MllpSendOutcome::Status::kRejected) << code;
    EXPECT_TRUE(out.final_rejection()) << code;
    EXPECT_EQ(out.text, "unsupported message") << code;
  }
}

TEST_F(MllpClientTest, CommitErrorIsARejectionThatMayPass) {
  ScriptedPeer peer(io_, answering(framed(ack("CE"))));
  MllpClient client(io_.get_executor());
  auto out = send(client, at(peer));
  EXPECT_EQ(out.code, AckCode::kCE);
  EXPECT_FALSE(out.final_rejection());
}

// --- no acknowledgment -----------------------------------------------------------------------

TEST_F(MllpClientTest, SilentPeerIsAnAnswerTimeout) {
  ScriptedPeer peer(io_, [](const std::string&) { return std::nullopt; });
  MllpClient client(io_.get_executor(), fast());
  const auto started = std::chrono::steady_clock::now();
  auto out = send(client, at(peer));
  EXPECT_EQ(out.status, MllpSendOutcome::Status::kTransportError);
  EXPECT_EQ(out.error, MllpTransportError::kAnswerTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  EXPECT_EQ(client.idle_connections(), 0u);  // a connection that timed out is not kept
  EXPECT_EQ(client.stats().transport_errors, 1u);
}

TEST_F(MllpClientTest, GarbageIsNotAnAck) {
  ScriptedPeer peer(io_, answering(framed("this is not hl7 at all")));
  MllpClient client(io_.get_executor(), fast());
  auto out = send(client, at(peer));
  EXPECT_EQ(out.error, MllpTransportError::kNotAnAck);
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST_F(MllpClientTest, HeaderWithoutMsaIsNotAnAck) {
  ScriptedPeer peer(io_,
                    answering(framed("MSH|^~\\&|EHR|PEDS_A|SDOH_GW|GW|20261125||ACK|C|P|2.5.1\r")));
  MllpClient client(io_.get_executor(), fast());
  EXPECT_EQ(send(client, at(peer)).error, MllpTransportError::kNotAnAck);
}

TEST_F(MllpClientTest, UnknownAcknowledgmentCodeIsNotAnAck) {
  ScriptedPeer peer(io_, answering(framed(ack("OK"))));
  MllpClient client(io_.get_executor(), fast());
  EXPECT_EQ(send(client, at(peer)).error, MllpTransportError::kNotAnAck);
}

TEST_F(MllpClientTest, UnframedBytesAreNeverAnAnswer) {
  ScriptedPeer peer(io_, answering(ack("AA")));  // no MLLP blocks around it
  MllpClient client(io_.get_executor(), fast());
  EXPECT_EQ(send(client, at(peer)).error, MllpTransportError::kAnswerTimeout);
}

TEST_F(MllpClientTest, AnAckOfAnotherMessageIsNeverCreditedToThisOne) {
  ScriptedPeer peer(io_, answering(framed(ack("AA", "GW-0"))));
  MllpClient client(io_.get_executor(), fast());
  auto out = send(client, at(peer));
  EXPECT_EQ(out.error, MllpTransportError::kWrongMessage);
  EXPECT_NE(out.text.find("GW-0"), std::string::npos);
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST_F(MllpClientTest, PeerClosingWithoutAnswerIsClosed) {
  ScriptedPeer peer(io_, [](const std::string&) { return ScriptedPeer::Reply{"", true}; });
  MllpClient client(io_.get_executor(), fast());
  EXPECT_EQ(send(client, at(peer)).error, MllpTransportError::kClosed);
}

TEST_F(MllpClientTest, OversizedAnswerIsRefused) {
  ScriptedPeer peer(io_, answering(framed(ack("AA") + "NTE|1||" + std::string(4096, 'x') + "\r")));
  auto options = fast();
  options.max_answer_bytes = 1024;
  MllpClient client(io_.get_executor(), options);
  EXPECT_EQ(send(client, at(peer)).error, MllpTransportError::kAnswerTooLarge);
}

TEST_F(MllpClientTest, RefusedConnectionIsAConnectError) {
  std::string port;
  {
    tcp::acceptor closed(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = std::to_string(closed.local_endpoint().port());
  }
  MllpClient client(io_.get_executor(), fast());
  auto ep = MllpEndpoint::parse("127.0.0.1:" + port, "test");
  ASSERT_TRUE(ep);
  auto out = send(client, *ep);
  EXPECT_EQ(out.status, MllpSendOutcome::Status::kTransportError);
  EXPECT_EQ(out.error, MllpTransportError::kConnect);
  EXPECT_EQ(client.stats().connections_opened, 0u);
}

TEST_F(MllpClientTest, NotAnHl7MessageIsRefusedBeforeConnecting) {
  ScriptedPeer peer(io_, answering(framed(ack("AA"))));
  MllpClient client(io_.get_executor(), fast());
  EXPECT_EQ(send(client, at(peer), "hello").error, MllpTransportError::kInvalidMessage);
  EXPECT_EQ(peer.connections, 0);
}

// --- connections -----------------------------------------------------------------------------

TEST_F(MllpClientTest, OneConnectionServesConsecutiveSends) {
  ScriptedPeer peer(io_, [](const std::string& frame) {
    const auto id = frame.find("|GW-2|") != std::string::npos ? "GW-2" : "GW-1";
    return ScriptedPeer::Reply{framed(ack("CA", id)), false};
  });
  MllpClient client(io_.get_executor());
  EXPECT_TRUE(send(client, at(peer)).accepted());
  EXPECT_EQ(client.idle_connections(), 1u);
  std::string second = kMessage;
  second.replace(second.find("|GW-1|"), 6, "|GW-2|");
  EXPECT_TRUE(send(client, at(peer), second).accepted());
  EXPECT_EQ(peer.connections, 1);
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(client.stats().connections_reused, 1u);
}

TEST_F(MllpClientTest, AKeptConnectionThePeerClosedIsReplacedOnce) {
  // The peer answers, then hangs up: the next send finds the kept connection dead.
  ScriptedPeer closing(io_, [](const std::string&) {
    return ScriptedPeer::Reply{framed(ack("AA")), true};
  });
  MllpClient client(io_.get_executor());
  EXPECT_TRUE(send(client, at(closing)).accepted());
  // Let the peer's close arrive before the kept connection is used again.
  io_.run_for(milliseconds(50));
  EXPECT_TRUE(send(client, at(closing)).accepted());
  EXPECT_EQ(closing.connections, 2);
  EXPECT_EQ(closing.frames.size(), 2u);  // the message reached the peer once per connection
  EXPECT_EQ(client.stats().stale_reconnects, 1u);
}

TEST_F(MllpClientTest, ConnectionIdleTooLongIsNotReused) {
  ScriptedPeer peer(io_, answering(framed(ack("AA"))));
  auto options = fast();
  options.idle_timeout = milliseconds(0);
  MllpClient client(io_.get_executor(), options);
  EXPECT_TRUE(send(client, at(peer)).accepted());
  io_.run_for(milliseconds(5));
  EXPECT_TRUE(send(client, at(peer)).accepted());
  EXPECT_EQ(peer.connections, 2);
  EXPECT_EQ(client.stats().connections_reused, 0u);
}

TEST_F(MllpClientTest, ConnectionWithBytesPastTheAnswerIsNotKept) {
  // An enhanced-mode peer that also sends an application ACK although MSH-16 said NE.
  ScriptedPeer peer(io_, answering(framed(ack("CA")) + framed(ack("AA"))));
  MllpClient client(io_.get_executor());
  auto out = send(client, at(peer));
  EXPECT_TRUE(out.accepted());
  EXPECT_EQ(out.code, AckCode::kCA);
  if (client.idle_connections() != 0u) {
    // Both frames did not arrive in one read: the stray one is then refused as an answer to the
    // next message, never credited to it.
    std::string second = kMessage;
    second.replace(second.find("|GW-1|"), 6, "|GW-2|");
    EXPECT_EQ(send(client, at(peer), second).error, MllpTransportError::kWrongMessage);
  }
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST_F(MllpClientTest, CloseIdleDropsKeptConnections) {
  ScriptedPeer peer(io_, answering(framed(ack("AA"))));
  MllpClient client(io_.get_executor());
  EXPECT_TRUE(send(client, at(peer)).accepted());
  EXPECT_EQ(client.idle_connections(), 1u);
  client.close_idle();
  EXPECT_EQ(client.idle_connections(), 0u);
}

// --- TLS -------------------------------------------------------------------------------------

class MllpClientTlsTest : public MllpClientTest {
 protected:
  std::shared_ptr<asio::ssl::context> server_context(const test_support::TestCertificate& cert) {
    config::TlsConfig tls;
    tls.cert_file = cert.cert_file;
    tls.key_file = cert.key_file;
    auto ctx = net::make_server_tls_context(tls, "test.tls");
    EXPECT_TRUE(ctx) << ctx.error().message;
    return *ctx;
  }
  std::shared_ptr<asio::ssl::context> trusting(const test_support::TestCertificate& cert) {
    net::ClientTlsOptions options;
    options.ca_file = cert.cert_file;
    auto ctx = net::make_client_tls_context(options, "test.tls");
    EXPECT_TRUE(ctx) << ctx.error().message;
    return *ctx;
  }
};

TEST_F(MllpClientTlsTest, VerifiedServerAcceptsOverTls) {
  const auto cert = test_support::make_test_certificate(dir_, "clinic", "IP:127.0.0.1");
  ScriptedPeer peer(io_, answering(framed(ack("AA"))), server_context(cert));
  MllpClient client(io_.get_executor(), fast());
  auto ep = at(peer);
  ep.tls = trusting(cert);
  auto out = send(client, ep);
  EXPECT_TRUE(out.accepted()) << out.text;
  ASSERT_EQ(peer.frames.size(), 1u);
  EXPECT_EQ(peer.frames[0], kMessage);
}

TEST_F(MllpClientTlsTest, CertificateForAnotherHostIsRefused) {
  const auto cert = test_support::make_test_certificate(dir_, "elsewhere", "DNS:elsewhere.example");
  ScriptedPeer peer(io_, answering(framed(ack("AA"))), server_context(cert));
  MllpClient client(io_.get_executor(), fast());
  auto ep = at(peer);
  ep.tls = trusting(cert);  // trusted, but not for 127.0.0.1
  auto out = send(client, ep);
  EXPECT_EQ(out.error, MllpTransportError::kTls);
  EXPECT_TRUE(peer.frames.empty());
}

TEST_F(MllpClientTlsTest, UntrustedCertificateIsRefused) {
  const auto cert = test_support::make_test_certificate(dir_, "clinic", "IP:127.0.0.1");
  const auto other = test_support::make_test_certificate(dir_, "other-ca", "DNS:other");
  ScriptedPeer peer(io_, answering(framed(ack("AA"))), server_context(cert));
  MllpClient client(io_.get_executor(), fast());
  auto ep = at(peer);
  ep.tls = trusting(other);
  EXPECT_EQ(send(client, ep).error, MllpTransportError::kTls);
  EXPECT_TRUE(peer.frames.empty());
}

TEST_F(MllpClientTlsTest, HandshakeThatNeverCompletesIsAConnectTimeout) {
  // A plain TCP listener that never answers the ClientHello.
  const auto cert = test_support::make_test_certificate(dir_, "clinic", "IP:127.0.0.1");
  ScriptedPeer peer(io_, [](const std::string&) { return std::nullopt; });
  MllpClient client(io_.get_executor(), fast());
  auto ep = at(peer);
  ep.tls = trusting(cert);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(send(client, ep).error, MllpTransportError::kConnectTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
}

// --- endpoints and logs ----------------------------------------------------------------------

TEST(MllpEndpoint, ParsesHostPortAndBracketedV6) {
  auto a = MllpEndpoint::parse("clinic.example:2575", "k");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "clinic.example");
  EXPECT_EQ(a->port, "2575");
  auto b = MllpEndpoint::parse("[::1]:6661", "k");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->name(), "[::1]:6661");
}

TEST(MllpEndpoint, RefusesWhatIsNotHostAndPort) {
  for (const char* bad : {"clinic.example", ":2575", "clinic:0", "clinic:70000", "clinic:25x",
                          "::1:2575", "[::1]2575", "[::1]:"}) {
    auto ep = MllpEndpoint::parse(bad, "mllp.hl7.senders.x.return_address");
    ASSERT_FALSE(ep) << bad;
    EXPECT_EQ(ep.error().where.expression, "mllp.hl7.senders.x.return_address") << bad;
  }
}

TEST(MllpTransportError, EveryValueHasAName) {
  for (int e = 0; e <= static_cast<int>(MllpTransportError::kInvalidMessage); ++e) {
    EXPECT_NE(to_string(static_cast<MllpTransportError>(e)), "unknown") << e;
  }
}

TEST_F(MllpClientTest, LogsCarryNeitherTheMessageNorTheAnswer) {
  ScriptedPeer rejecting(
      io_, answering(framed(ack("AE", "GW-1", "ERR|||207|E||||Garcia^Sofia MRN12345 unknown\r"))));
  ScriptedPeer wrong(io_, answering(framed(ack("AA", "GW-0") + "NTE|1||Garcia\r")));
  MllpClient client(io_.get_executor(), fast());
  log::init(log::Level::kTrace);
  ::testing::internal::CaptureStdout();
  send(client, at(rejecting));
  send(client, at(wrong));
  log::flush();
  const auto out = ::testing::internal::GetCapturedStdout();
  log::init(log::Level::kInfo);
  EXPECT_NE(out.find("mllp_client.failed"), std::string::npos) << out;  // the logs were read
  for (const char* phi : {"Garcia", "Sofia", "MRN12345", "REF-2026-0001"})
    EXPECT_EQ(out.find(phi), std::string::npos) << phi << " in " << out;
}

}  // namespace
}  // namespace sdoh::hl7v2
