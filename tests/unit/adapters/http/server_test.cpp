// adapters/http/server.cpp over loopback TCP: the Beast listener on a live io_context (two
// threads, as the runtime runs it), a Router of small recording handlers, and blocking clients
// that write raw HTTP/1.1 and read with a deadline. What the listener promises: routed requests
// reach their handler (path parameters, query, headers, peer), the server's own 404/405/500,
// http.max_body_bytes (413), http.max_header_bytes (431), the request byte budget of
// request_framing.hpp (413), framing checked before the body (400), keep-alive and pipelining in
// order, the per-peer connection cap, the whole-request read deadline (http.idle_timeout), and a
// drain (stop()) that closes idle connections while a request in flight gets its response.
#include "adapters/http/server.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <stdexcept>
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

namespace sdoh::http {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::eventually;
using test::Gate;
using test::kWait;

std::string get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: gw.test\r\n" + extra_headers + "\r\n";
}

std::string post(const std::string& target, const std::string& body) {
  return "POST " + target +
         " HTTP/1.1\r\nHost: gw.test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// One response as the client read it; header names lower-cased.
struct Answer {
  unsigned status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// An HTTP client: a loopback client that reads HTTP/1.1 responses.
class Client : public test::LoopbackClient {
 public:
  using LoopbackClient::LoopbackClient;
  /// The next complete response (its body framed by Content-Length); nothing when none
  /// completes within `limit`.
  std::optional<Answer> next_response(std::chrono::milliseconds limit = kWait) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      if (auto answer = take_response()) return answer;
      if (closed_ || !read_once(deadline)) return std::nullopt;
    }
  }

 private:
  std::optional<Answer> take_response() {
    const auto head_end = received_.find("\r\n\r\n");
    if (head_end == std::string::npos) return std::nullopt;
    Answer answer;
    EXPECT_TRUE(received_.starts_with("HTTP/1.")) << received_.substr(0, 40);
    answer.status = static_cast<unsigned>(std::stoi(received_.substr(9, 3)));
    for (auto at = received_.find("\r\n") + 2; at < head_end;) {
      const auto eol = received_.find("\r\n", at);
      const auto line = received_.substr(at, eol - at);
      const auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      answer.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      at = eol + 2;
    }
    const auto length = answer.headers.contains("content-length")
                            ? std::stoul(answer.headers["content-length"])
                            : 0;
    if (received_.size() < head_end + 4 + length) return std::nullopt;
    answer.body = received_.substr(head_end + 4, length);
    received_.erase(0, head_end + 4 + length);
    return answer;
  }
};

class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerTest() {
    router_.add("GET", "/items/{id}", [this](Request& r) -> asio::awaitable<Response> {
      record(r);
      Response res;
      res.content_type = "text/plain";
      res.headers.push_back({"X-Handled", "items"});
      res.body = "item " + r.params.at("id");
      co_return res;
    });
    router_.add("POST", "/echo", [this](Request& r) -> asio::awaitable<Response> {
      record(r);
      co_return Response::json(201, r.body);
    });
    router_.add("GET", "/hold", [this](Request& r) -> asio::awaitable<Response> {
      record(r);
      co_await gate_.wait();
      co_return Response::json(200, "{\"held\":true}");
    });
    router_.add("GET", "/fail", [this](Request& r) -> asio::awaitable<Response> {
      record(r);
      throw std::runtime_error("handler failed");
      co_return Response{};
    });
  }

  // Starts the listener with cfg_ (which a test may change first) on any free port.
  void start() {
    cfg_.listen = {"127.0.0.1", 0};
    server_ = std::make_unique<Server>(ioc_, cfg_, router_, registry_);
    auto bound = server_->bind();
    ASSERT_TRUE(bound) << bound.error().message;
    port_ = static_cast<std::uint16_t>(std::stoi(bound->substr(bound->rfind(':') + 1)));
    server_->start();
    for (int i = 0; i < 2; ++i)
      threads_.emplace_back([this] { ioc_.run(); });
  }

  void TearDown() override {
    gate_.open();
    if (server_) {
      server_->stop();
      // Every connection ends with its client and the drain: the gauge returns to zero.
      EXPECT_TRUE(eventually([&] { return metric("sdoh_http_connections_open") == 0; }))
          << metric("sdoh_http_connections_open") << " connections still open";
    }
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_)
      t.join();
  }

  void record(const Request& r) {
    std::lock_guard lock(mutex_);
    requests_.push_back(r);
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  // A sample's value from the registry's exposition ("name" or "name{labels}"); -1 when absent.
  double metric(const std::string& sample) const { return test::metric_sample(registry_, sample); }

  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  Gate gate_;
  Router router_;
  config::HttpConfig cfg_;
  metrics::Registry registry_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(ioc_);
  std::unique_ptr<Server> server_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
};

TEST_F(HttpServerTest, RoutedRequestGetsItsHandlersResponse) {
  start();
  Client client(port_);
  client.send(get("/items/42?view=short&x=1", "X-Clinic: peds-a\r\n"));
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200u);
  EXPECT_EQ(answer->body, "item 42");
  EXPECT_EQ(answer->header("content-type"), "text/plain");
  EXPECT_EQ(answer->header("x-handled"), "items");
  EXPECT_EQ(answer->header("server"), "sdoh-gateway");

  const auto seen = requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].path, "/items/42");
  EXPECT_EQ(seen[0].query, "view=short&x=1");
  EXPECT_EQ(seen[0].header("x-clinic"), "peds-a");
  EXPECT_EQ(seen[0].peer, "127.0.0.1:" + std::to_string(client.local_port()));
  EXPECT_FALSE(seen[0].secure);
  EXPECT_EQ(metric("sdoh_http_requests_total{route=\"/items/{id}\",method=\"GET\",status=\"200\"}"),
            1);
}

TEST_F(HttpServerTest, UnknownPathIs404AndTheConnectionStaysUsable) {
  start();
  Client client(port_);
  client.send(get("/nowhere"));
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 404u);
  EXPECT_NE(answer->body.find("\"error\":\"not_found\""), std::string::npos) << answer->body;
  EXPECT_TRUE(requests().empty());
  client.send(get("/items/7"));
  const auto next = client.next_response();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "item 7");
}

TEST_F(HttpServerTest, WrongMethodIs405WithTheAllowedMethods) {
  start();
  Client client(port_);
  client.send(post("/items/1", "{}"));
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 405u);
  EXPECT_EQ(answer->header("allow"), "GET");
  EXPECT_TRUE(requests().empty());
}

TEST_F(HttpServerTest, HandlerExceptionIs500AndTheConnectionStaysUsable) {
  start();
  Client client(port_);
  client.send(get("/fail"));
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 500u);
  EXPECT_NE(answer->body.find("\"error\":\"internal_error\""), std::string::npos) << answer->body;
  client.send(get("/items/8"));
  const auto next = client.next_response();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "item 8");
}

TEST_F(HttpServerTest, BodyOfExactlyMaxBodyBytesIsAccepted) {
  cfg_.max_body_bytes = 1000;
  start();
  Client client(port_);
  const std::string body(1000, 'b');
  client.send(post("/echo", body));
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 201u);
  EXPECT_EQ(answer->body, body);
}

TEST_F(HttpServerTest, BodyOverMaxBodyBytesIs413AndTheConnectionCloses) {
  cfg_.max_body_bytes = 1000;
  start();
  Client client(port_);
  client.send(post("/echo", std::string(1001, 'b')));
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 413u);
  EXPECT_NE(answer->body.find("\"error\":\"payload_too_large\""), std::string::npos);
  EXPECT_EQ(answer->header("connection"), "close");
  EXPECT_TRUE(client.wait_closed());
  EXPECT_TRUE(requests().empty());
}

TEST_F(HttpServerTest, HeaderOverMaxHeaderBytesIs431) {
  cfg_.max_header_bytes = 1024;
  start();
  Client client(port_);
  client.send(get("/items/1", "X-Big: " + std::string(2000, 'h') + "\r\n"));
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 431u);
  EXPECT_NE(answer->body.find("\"error\":\"headers_too_large\""), std::string::npos);
  EXPECT_TRUE(client.wait_closed());
  EXPECT_TRUE(requests().empty());
}

TEST_F(HttpServerTest, ChunkFramingOverTheRequestByteBudgetIs413) {
  cfg_.max_header_bytes = 1024;
  cfg_.max_body_bytes = 1000;
  start();
  Client client(port_);
  // A 12-byte body whose chunk extensions take 84 KB: within every per-part limit, over the
  // budget of 2 x 1024 + 2 x 1000 + 65536 = 69584 bytes.
  std::string request =
      "POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 12; ++i)
    request += "1;ext=" + std::string(7000, 'e') + "\r\nx\r\n";
  request += "0\r\n\r\n";
  client.send(request);
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 413u);
  EXPECT_NE(answer->body.find("request exceeds 69584 bytes with its framing"), std::string::npos)
      << answer->body;
  EXPECT_TRUE(client.wait_closed());
  EXPECT_TRUE(requests().empty());
}

TEST_F(HttpServerTest, AmbiguousBodyLengthIs400BeforeTheBodyIsRead) {
  start();
  Client client(port_);
  client.send(
      "POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 400u);
  EXPECT_TRUE(client.wait_closed());
  EXPECT_TRUE(requests().empty());
}

TEST_F(HttpServerTest, KeepAliveAnswersPipelinedRequestsInOrderOnOneConnection) {
  start();
  Client client(port_);
  client.send(get("/items/1") + get("/items/2") + get("/items/3"));
  for (const auto* expected : {"item 1", "item 2", "item 3"}) {
    const auto answer = client.next_response();
    ASSERT_TRUE(answer) << expected;
    EXPECT_EQ(answer->body, expected);
    EXPECT_NE(answer->header("connection"), "close");
  }
  client.send(get("/items/4"));  // still open for more
  const auto fourth = client.next_response();
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->body, "item 4");
  const auto seen = requests();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen.front().peer, seen.back().peer) << "one connection throughout";
}

TEST_F(HttpServerTest, ConnectionCloseEndsTheConnectionAfterTheResponse) {
  start();
  Client client(port_);
  client.send(get("/items/1", "Connection: close\r\n"));
  const auto answer = client.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->body, "item 1");
  EXPECT_EQ(answer->header("connection"), "close");
  EXPECT_TRUE(client.wait_closed());
}

TEST_F(HttpServerTest, RequestTrickledPastIdleTimeoutIsCutOffUnanswered) {
  cfg_.idle_timeout = 300ms;
  start();
  // The request's deadline starts when the connection is served, not at its first byte.
  const auto connecting = Clock::now();
  Client client(port_);
  // A byte every 50 ms: each read makes progress, but the whole request has one deadline.
  const std::string request = get("/items/1");
  std::size_t sent = 0;
  while (sent < request.size() && !client.wait_closed(50ms))
    client.send(request.substr(sent++, 1));
  ASSERT_TRUE(client.wait_closed()) << "sent the whole request: " << sent;
  EXPECT_LT(sent, request.size());
  EXPECT_GE(Clock::now() - connecting, 300ms);
  EXPECT_EQ(client.unread(), "");
  EXPECT_TRUE(requests().empty());
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionClosesAfterIdleTimeout) {
  cfg_.idle_timeout = 300ms;
  start();
  Client client(port_);
  const auto sent = Clock::now();
  client.send(get("/items/1"));
  ASSERT_TRUE(client.next_response());
  ASSERT_TRUE(client.wait_closed(3s));
  EXPECT_GE(Clock::now() - sent, 300ms);
}

TEST_F(HttpServerTest, PeerCapClosesFurtherConnectionsFromTheSameAddress) {
  cfg_.max_connections_per_peer = 2;
  start();
  auto first = std::make_unique<Client>(port_);
  Client second(port_);
  first->send(get("/items/1"));
  second.send(get("/items/2"));
  ASSERT_TRUE(first->next_response());
  ASSERT_TRUE(second.next_response());

  Client third(port_);
  third.send(get("/items/3"));
  ASSERT_TRUE(third.wait_closed());
  EXPECT_EQ(third.unread(), "");
  EXPECT_EQ(requests().size(), 2u);
  EXPECT_EQ(metric("sdoh_http_connections_rejected_total{reason=\"peer_cap\"}"), 1);
  EXPECT_EQ(server_->open_connections(), 2u);

  Client other(port_, "127.0.0.2");  // another peer has a share of its own
  other.send(get("/items/4"));
  const auto answer = other.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->body, "item 4");

  first->close();  // a closed connection gives its place back
  ASSERT_TRUE(eventually([&] { return metric("sdoh_http_connections_open") == 2; }));
  Client fourth(port_);
  fourth.send(get("/items/5"));
  const auto fifth = fourth.next_response();
  ASSERT_TRUE(fifth);
  EXPECT_EQ(fifth->body, "item 5");
}

TEST_F(HttpServerTest, StopClosesIdleConnectionsAndFinishesTheRequestInFlight) {
  start();
  Client idle(port_);
  idle.send(get("/items/1"));
  ASSERT_TRUE(idle.next_response());
  Client busy(port_);
  busy.send(get("/hold"));
  ASSERT_TRUE(eventually([&] { return requests().size() == 2; }));
  EXPECT_EQ(server_->open_connections(), 2u);

  server_->stop();
  EXPECT_TRUE(idle.wait_closed()) << "an idle keep-alive connection closes at once on stop()";
  EXPECT_EQ(idle.unread(), "");
  // The busy connection is still there, waiting for its response.
  EXPECT_TRUE(eventually([&] { return server_->open_connections() == 1; }))
      << server_->open_connections();

  gate_.open();
  const auto answer = busy.next_response();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200u);
  EXPECT_EQ(answer->body, "{\"held\":true}");
  EXPECT_EQ(answer->header("connection"), "close") << "no keep-alive while draining";
  EXPECT_TRUE(busy.wait_closed());
  EXPECT_TRUE(eventually([&] { return server_->open_connections() == 0; }));

  // No new connection is served after stop().
  Client late(port_);
  if (late.connected()) {
    late.send(get("/items/9"));
    EXPECT_TRUE(late.wait_closed());
    EXPECT_EQ(late.unread(), "");
  }
  EXPECT_EQ(requests().size(), 2u);
}

}  // namespace
}  // namespace sdoh::http
