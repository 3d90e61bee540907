#include "adapters/hl7v2/mllp_client.hpp"

#include <array>
#include <atomic>
#include <charconv>
#include <expected>
#include <map>
#include <mutex>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "adapters/hl7v2/message.hpp"
#include "adapters/hl7v2/mllp_framer.hpp"
#include "adapters/net/tls.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::hl7v2 {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using tcp_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
using Clock = std::chrono::steady_clock;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::string_view to_string(MllpTransportError e) {
  switch (e) {
    case MllpTransportError::kResolve:
      return "resolve";
    case MllpTransportError::kConnect:
      return "connect";
    case MllpTransportError::kConnectTimeout:
      return "connect-timeout";
    case MllpTransportError::kTls:
      return "tls";
    case MllpTransportError::kSend:
      return "send";
    case MllpTransportError::kClosed:
      return "closed";
    case MllpTransportError::kAnswerTimeout:
      return "answer-timeout";
    case MllpTransportError::kAnswerTooLarge:
      return "answer-too-large";
    case MllpTransportError::kNotAnAck:
      return "not-an-ack";
    case MllpTransportError::kWrongMessage:
      return "wrong-message";
    case MllpTransportError::kInvalidMessage:
      return "invalid-message";
  }
  return "unknown";
}

Result<MllpEndpoint> MllpEndpoint::parse(std::string_view address, const std::string& key_path) {
  MllpEndpoint ep;
  std::string_view port;
  if (address.starts_with('[')) {
    const auto close = address.find(']');
    if (close == std::string_view::npos || address.substr(close + 1).size() < 2 ||
        address[close + 1] != ':') {
      return fail(Error::config(
          key_path, "\"" + std::string(address) + "\" is not [address]:port (e.g. [::1]:2575)"));
    }
    ep.host = std::string(address.substr(1, close - 1));
    port = address.substr(close + 2);
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos || colon == 0 ||
        address.substr(0, colon).find(':') != std::string_view::npos) {
      return fail(Error::config(key_path, "\"" + std::string(address) +
                                              "\" is not host:port (e.g. clinic.example:2575)"));
    }
    ep.host = std::string(address.substr(0, colon));
    port = address.substr(colon + 1);
  }
  unsigned number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (ec != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535) {
    return fail(Error::config(
        key_path, "the port of \"" + std::string(address) + "\" is not a number from 1 to 65535"));
  }
  ep.port = std::string(port);
  return ep;
}

std::string MllpEndpoint::name() const {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + port : host + ":" + port;
}

namespace {

struct Failure {
  MllpTransportError error;
  std::string text;
};

// One connection. Used by one send at a time: the pool hands it out and takes it back.
struct Connection {
  Connection(asio::any_io_executor ex, std::shared_ptr<asio::ssl::context> ctx,
             std::size_t max_answer_bytes)
      : context(std::move(ctx)), framer(max_answer_bytes) {
    if (context) {
      tls = std::make_unique<tls_stream>(ex, *context);
    } else {
      plain = std::make_unique<tcp_stream>(ex);
    }
  }
  tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void close() {
    boost::system::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }

  std::shared_ptr<asio::ssl::context> context;  // outlives `tls`, which refers to it
  std::unique_ptr<tls_stream> tls;
  std::unique_ptr<tcp_stream> plain;
  MllpFramer framer;
  Clock::time_point idle_since{};
};

bool is_timeout(const boost::system::error_code& ec) {
  return ec == beast::error::timeout || ec == asio::error::timed_out;
}

bool is_closed(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated ||
         ec == asio::error::connection_aborted;
}

std::optional<AckCode> ack_code(std::string_view msa1) {
  if (msa1 == "AA") return AckCode::kAA;
  if (msa1 == "AE") return AckCode::kAE;
  if (msa1 == "AR") return AckCode::kAR;
  if (msa1 == "CA") return AckCode::kCA;
  if (msa1 == "CE") return AckCode::kCE;
  if (msa1 == "CR") return AckCode::kCR;
  return std::nullopt;
}

MllpSendOutcome transport_error(MllpTransportError e, std::string text) {
  MllpSendOutcome out;
  out.status = MllpSendOutcome::Status::kTransportError;
  out.error = e;
  out.text = std::move(text);
  return out;
}

// The answer in HL7 terms. `control_id` is the sent message's MSH-10, decoded.
MllpSendOutcome read_answer(const std::string& frame, const std::string& control_id) {
  auto ack = Message::parse(frame);
  // The parser's reasons are not repeated: they may quote the answer's bytes.
  if (!ack) return transport_error(MllpTransportError::kNotAnAck, "the answer is not HL7 v2");
  const auto* msa = ack->segment("MSA");
  if (msa == nullptr)
    return transport_error(MllpTransportError::kNotAnAck, "the answer has no MSA segment");
  const auto code = ack_code(msa->raw(1, 1, 1));
  if (!code) {
    return transport_error(MllpTransportError::kNotAnAck,
                           "MSA-1 of the answer is not an acknowledgment code of HL7 table 0008");
  }
  // HL7 v2.5.1 2.15.8.2: MSA-2 names the message acknowledged. Control ids are not PHI.
  if (const auto acknowledged = ack->get("MSA-2"); acknowledged != control_id) {
    return transport_error(
        MllpTransportError::kWrongMessage,
        "the answer acknowledges message \"" + acknowledged + "\", not \"" + control_id + "\"");
  }
  MllpSendOutcome out;
  out.code = code;
  if (*code == AckCode::kAA || *code == AckCode::kCA) {
    out.status = MllpSendOutcome::Status::kAccepted;
    return out;
  }
  out.status = MllpSendOutcome::Status::kRejected;
  out.error_code = ack->get("ERR-3.1");
  out.text = ack->get("ERR-8");
  if (out.text.empty()) out.text = ack->get("ERR-3.2");
  if (out.text.empty()) out.text = ack->get("MSA-3");
  return out;
}

struct Exchanged {
  std::optional<Failure> failure;
  std::string frame;
  bool answer_bytes = false;  // any byte arrived after the message was written
};

template <class Stream>
asio::awaitable<Exchanged> exchange_on(Stream& stream, Connection& c, const std::string& framed,
                                       std::chrono::milliseconds timeout) {
  Exchanged out;
  c.lowest().expires_after(timeout);
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(framed), kUseTuple);
  (void)written;
  if (wec) {
    out.failure =
        Failure{is_timeout(wec) ? MllpTransportError::kAnswerTimeout : MllpTransportError::kSend,
                "sending failed: " + wec.message()};
    co_return out;
  }
  std::array<char, 8 * 1024> chunk{};
  for (;;) {
    const auto event = c.framer.next(out.frame);
    if (event == MllpFramer::Event::kFrame) break;
    if (event == MllpFramer::Event::kTooLarge) {
      out.failure = Failure{MllpTransportError::kAnswerTooLarge,
                            "the answer is longer than the limit of max_answer_bytes"};
      co_return out;
    }
    auto [rec, n] = co_await stream.async_read_some(asio::buffer(chunk), kUseTuple);
    if (n > 0) {
      out.answer_bytes = true;
      c.framer.feed(std::string_view(chunk.data(), n));
    }
    if (rec) {
      if (is_timeout(rec)) {
        out.failure = Failure{MllpTransportError::kAnswerTimeout,
                              "no whole answer within " + std::to_string(timeout.count()) + " ms"};
      } else {
        out.failure = Failure{MllpTransportError::kClosed,
                              is_closed(rec) ? "the peer closed the connection before answering"
                                             : "reading the answer failed: " + rec.message()};
      }
      co_return out;
    }
  }
  c.lowest().expires_never();
  co_return out;
}

}  // namespace

struct MllpClient::Impl {
  Impl(asio::any_io_executor ex, MllpClientOptions o) : executor(std::move(ex)), options(o) {}

  asio::any_io_executor executor;
  const MllpClientOptions options;
  mutable std::mutex mutex;
  std::map<std::string, std::unique_ptr<Connection>> idle;  // guarded by `mutex`
  std::atomic<std::uint64_t> opened{0}, reused{0}, stale{0}, sent{0}, transport_errors{0};

  static std::string key_of(const MllpEndpoint& ep) {
    // One TLS context is one trust configuration: connections are not shared across contexts.
    return ep.name() + "|" + std::to_string(reinterpret_cast<std::uintptr_t>(ep.tls.get()));
  }

  std::unique_ptr<Connection> take(const std::string& key) {
    std::unique_ptr<Connection> c;
    {
      std::lock_guard lock(mutex);
      auto it = idle.find(key);
      if (it == idle.end()) return nullptr;
      c = std::move(it->second);
      idle.erase(it);
    }
    if (Clock::now() - c->idle_since > options.idle_timeout) {
      c->close();
      return nullptr;
    }
    return c;
  }

  void keep(const std::string& key, std::unique_ptr<Connection> c) {
    c->idle_since = Clock::now();
    std::lock_guard lock(mutex);
    auto& slot = idle[key];
    if (slot) {
      slot->close();  // one kept per endpoint: the newer one stays
    }
    slot = std::move(c);
  }

  asio::awaitable<std::expected<std::unique_ptr<Connection>, Failure>> connect(
      const MllpEndpoint& ep) {
    const auto deadline = Clock::now() + options.connect_timeout;
    // The resolver has no deadline of its own: a timer cancels it. Shared, because the timer's
    // handler may run after this frame is gone.
    auto resolver = std::make_shared<tcp::resolver>(executor);
    asio::steady_timer timer(executor);
    timer.expires_at(deadline);
    timer.async_wait([resolver](const boost::system::error_code& ec) {
      if (!ec) resolver->cancel();
    });
    auto [rec, results] = co_await resolver->async_resolve(ep.host, ep.port, kUseTuple);
    timer.cancel();
    if (rec) {
      if (rec == asio::error::operation_aborted) {
        co_return std::unexpected(
            Failure{MllpTransportError::kConnectTimeout, "resolving " + ep.host + " timed out"});
      }
      co_return std::unexpected(Failure{MllpTransportError::kResolve,
                                        "cannot resolve " + ep.host + ": " + rec.message()});
    }
    auto c = std::make_unique<Connection>(executor, ep.tls, options.max_answer_bytes);
    c->lowest().expires_at(deadline);
    auto [cec, endpoint] = co_await c->lowest().async_connect(results, kUseTuple);
    (void)endpoint;
    if (cec) {
      if (is_timeout(cec)) {
        co_return std::unexpected(Failure{MllpTransportError::kConnectTimeout,
                                          "no connection to " + ep.name() + " within " +
                                              std::to_string(options.connect_timeout.count()) +
                                              " ms"});
      }
      co_return std::unexpected(Failure{MllpTransportError::kConnect,
                                        "cannot connect to " + ep.name() + ": " + cec.message()});
    }
    boost::system::error_code nodelay_ec;
    c->lowest().socket().set_option(tcp::no_delay(true), nodelay_ec);  // small frames, no batching
    if (c->tls) {
      if (auto named = net::set_client_peer_name(c->tls->native_handle(), ep.host); !named) {
        co_return std::unexpected(Failure{MllpTransportError::kTls, named.error().message});
      }
      auto [hec] = co_await c->tls->async_handshake(asio::ssl::stream_base::client, kUseTuple);
      if (hec) {
        if (is_timeout(hec)) {
          co_return std::unexpected(
              Failure{MllpTransportError::kConnectTimeout,
                      "the TLS handshake with " + ep.name() + " did not finish in time"});
        }
        co_return std::unexpected(
            Failure{MllpTransportError::kTls,
                    "the TLS handshake with " + ep.name() + " failed: " + hec.message()});
      }
    }
    c->lowest().expires_never();
    opened.fetch_add(1);
    co_return c;
  }

  asio::awaitable<Exchanged> exchange(Connection& c, const std::string& framed) {
    if (c.tls) co_return co_await exchange_on(*c.tls, c, framed, options.answer_timeout);
    co_return co_await exchange_on(*c.plain, c, framed, options.answer_timeout);
  }

  MllpSendOutcome failed(const MllpEndpoint& ep, Failure f) {
    transport_errors.fetch_add(1);
    // The endpoint and the kind of failure only: never the message or the answer.
    log::debug("mllp_client.failed", {{"destination", ep.name()},
                                      {"error", std::string(to_string(f.error))},
                                      {"reason", f.text}});
    return transport_error(f.error, std::move(f.text));
  }
};

MllpClient::MllpClient(asio::any_io_executor executor, MllpClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), options)) {}

MllpClient::~MllpClient() {
  close_idle();
}

asio::awaitable<MllpSendOutcome> MllpClient::send(const MllpEndpoint& endpoint,
                                                  std::string message) {
  auto impl = impl_;
  const MllpEndpoint ep = endpoint;  // the caller's may not outlive a suspension
  std::string control_id;
  {
    auto parsed = Message::parse(message);
    if (!parsed || parsed->get("MSH-10").empty()) {
      co_return impl->failed(ep, Failure{MllpTransportError::kInvalidMessage,
                                         "the message to send is not HL7 v2 with an MSH-10"});
    }
    control_id = parsed->get("MSH-10");
  }
  const auto framed = mllp_frame(message);
  const auto key = Impl::key_of(ep);
  auto connection = impl->take(key);
  bool reused = connection != nullptr;
  for (;;) {
    if (!connection) {
      auto made = co_await impl->connect(ep);
      if (!made) co_return impl->failed(ep, std::move(made.error()));
      connection = std::move(*made);
    } else {
      impl->reused.fetch_add(1);
    }
    auto exchanged = co_await impl->exchange(*connection, framed);
    if (exchanged.failure) {
      connection->close();
      connection.reset();
      const auto e = exchanged.failure->error;
      if (reused && !exchanged.answer_bytes &&
          (e == MllpTransportError::kSend || e == MllpTransportError::kClosed)) {
        // A kept connection the peer had closed while it was idle: the message never got there.
        impl->stale.fetch_add(1);
        reused = false;
        continue;
      }
      co_return impl->failed(ep, std::move(*exchanged.failure));
    }
    auto outcome = read_answer(exchanged.frame, control_id);
    if (outcome.status == MllpSendOutcome::Status::kTransportError) {
      connection->close();
      co_return impl->failed(ep, Failure{*outcome.error, std::move(outcome.text)});
    }
    impl->sent.fetch_add(1);
    // Bytes past the answer were not asked for: such a connection is not trusted with another
    // message.
    if (connection->framer.buffered() == 0) {
      impl->keep(key, std::move(connection));
    } else {
      connection->close();
    }
    co_return outcome;
  }
}

void MllpClient::close_idle() {
  std::map<std::string, std::unique_ptr<Connection>> closing;
  {
    std::lock_guard lock(impl_->mutex);
    closing.swap(impl_->idle);
  }
  for (auto& [key, c] : closing)
    c->close();
}

std::size_t MllpClient::idle_connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->idle.size();
}

MllpClientStats MllpClient::stats() const {
  return {impl_->opened.load(), impl_->reused.load(), impl_->stale.load(), impl_->sent.load(),
          impl_->transport_errors.load()};
}

}  // namespace sdoh::hl7v2
