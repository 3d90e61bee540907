#pragma once
// An outbound MLLP client: sends one HL7 v2 message to a peer's MLLP listener (a clinic's
// interface engine) and reads its acknowledgment, as a typed outcome. For RRI^I12 answers about
// referrals; the caller owns the schedule (no retry loop in here; net/backoff.hpp for delays).
//
// Per send, every wait has a deadline: resolve + connect + TLS handshake within
// `connect_timeout`, writing the message + reading the whole answer within `answer_timeout`
// (except that a host name's lookup already under way lasts as long as the system resolver lets
// it: getaddrinfo cannot be interrupted; configure IP addresses where that matters). An
// answer counts only when it is an HL7 message with MSA-1 in table 0008 and MSA-2 echoing the
// message's MSH-10 as sent: anything else is a transport error and the connection is closed, so
// a stray answer is never credited to the next message (FIELD-NOTES). One answer is read per
// message: send with MSH-16 NE (an enhanced-mode peer then sends only its accept ACK).
//
// Connections are kept for reuse, one idle connection per endpoint, closed when idle longer than
// `idle_timeout`. A reused connection the peer had closed meanwhile (an error before any answer
// byte) is replaced by a new one and the message sent once more; receivers dedupe on MSH-10.
//
// Nothing of a message or an answer is logged (they carry PHI); outcomes carry the peer's
// error text for the caller, which must not log it either unless it knows it is PHI-free.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "adapters/hl7v2/ack.hpp"
#include "gateway/core/result.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sdoh::hl7v2 {

/// Where to send: host and port, and TLS when `tls` is set (the server's certificate must chain
/// to the context's CAs and name `host`).
struct MllpEndpoint {
  std::string host;
  std::string port;
  std::shared_ptr<boost::asio::ssl::context> tls;  ///< net::make_client_tls_context; null: TCP

  /// "host:port", "[v6-address]:port"; errors name `key_path`.
  static Result<MllpEndpoint> parse(std::string_view address, const std::string& key_path);
  /// "host:port" for logs and errors.
  std::string name() const;
};

struct MllpClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};  ///< resolve, connect, TLS handshake
  std::chrono::milliseconds answer_timeout{30'000};   ///< write the message, read the answer
  std::chrono::milliseconds idle_timeout{60'000};     ///< a kept connection older is not reused
  std::size_t max_answer_bytes = 1024 * 1024;         ///< a longer answer is a transport error
};

/// Why no acknowledgment was had. Every one may pass: the caller retries later.
enum class MllpTransportError {
  kResolve,         ///< the host name does not resolve
  kConnect,         ///< refused, unreachable, reset while connecting
  kConnectTimeout,  ///< no connection (or TLS handshake) within connect_timeout
  kTls,             ///< the TLS handshake failed (certificate not trusted or not for this host)
  kSend,            ///< writing the message failed
  kClosed,          ///< the peer closed the connection before a whole answer
  kAnswerTimeout,   ///< no whole answer within answer_timeout
  kAnswerTooLarge,  ///< the answer passed max_answer_bytes
  kNotAnAck,        ///< the answer is not HL7 with an MSA whose MSA-1 is in table 0008
  kWrongMessage,    ///< the answer's MSA-2 names another message
  kInvalidMessage,  ///< what we were asked to send is not an HL7 message (a caller's bug)
};
std::string_view to_string(MllpTransportError e);

/// What became of one send.
struct MllpSendOutcome {
  enum class Status {
    kAccepted,        ///< AA or CA: the peer has it
    kRejected,        ///< AE, AR, CE or CR: the peer answered and refused it
    kTransportError,  ///< no acknowledgment (see `error`)
  };
  Status status = Status::kTransportError;
  std::optional<AckCode> code;              ///< MSA-1, when answered
  std::optional<MllpTransportError> error;  ///< for kTransportError
  /// kRejected: the peer's reason (ERR-8, else ERR-3 text, else MSA-3); kTransportError: what
  /// happened, without message content. May hold the peer's words: not for logs as is.
  std::string text;
  std::string error_code;  ///< kRejected: ERR-3.1 (HL7 table 0357), when given

  bool accepted() const { return status == Status::kAccepted; }
  /// HL7 table 0008: AR and CR say the message itself is unacceptable (sending it again gets
  /// the same answer); AE, CE and transport errors may pass.
  bool final_rejection() const {
    return status == Status::kRejected && (code == AckCode::kAR || code == AckCode::kCR);
  }
};

/// Counters, read with stats(). Monotonic.
struct MllpClientStats {
  std::uint64_t connections_opened = 0;
  std::uint64_t connections_reused = 0;
  std::uint64_t stale_reconnects = 0;  ///< reused connections found closed and replaced
  std::uint64_t sent = 0;              ///< sends that got an answer (accepted or rejected)
  std::uint64_t transport_errors = 0;
};

class MllpClient {
 public:
  /// Connections run on `executor`. The client must outlive every send() it started.
  explicit MllpClient(boost::asio::any_io_executor executor, MllpClientOptions options = {});
  ~MllpClient();
  MllpClient(const MllpClient&) = delete;
  MllpClient& operator=(const MllpClient&) = delete;

  /// Sends `message` (one HL7 message, unframed) and waits for its acknowledgment: at most
  /// connect_timeout + answer_timeout, twice that when a stale kept connection is replaced.
  /// Thread-safe; concurrent sends to one endpoint use separate connections.
  boost::asio::awaitable<MllpSendOutcome> send(const MllpEndpoint& endpoint, std::string message);

  /// Closes every kept connection (e.g. before shutdown). Thread-safe.
  void close_idle();
  std::size_t idle_connections() const;
  MllpClientStats stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sdoh::hl7v2
