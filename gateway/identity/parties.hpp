#pragma once
// Who a connection is (the `parties` config section): the party that an MLLP connection
// proves to be, never what a message says about itself. Pure: callers hand in what the
// connection showed (source address, verified client certificate) and what the message names.
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::identity {

/// What an MLLP connection showed.
struct ConnectionIdentity {
  std::string address;      ///< the real client "ip:port" (after PROXY v2)
  std::string tls_subject;  ///< the verified client certificate's subject, else empty
};

class Parties {
 public:
  /// `dev_mode`: a message's MSH-3^MSH-4 alone names its party; otherwise the connection must
  /// prove it (certificate subject or source address).
  Parties(std::vector<config::PartyConfig> parties, bool dev_mode)
      : parties_(std::move(parties)), dev_mode_(dev_mode) {}

  /// The agency whose connection sends a message naming MSH-3 `application` and MSH-4
  /// `facility`. An empty id (dev mode with no parties configured at all): nobody is known, the
  /// message's own content names its agency, as in a first try-out. Refusals (kUnsupported, at
  /// MSH-4, for an AR): a sender no agency party has, a clinic's sender, a connection that is
  /// not the named agency's (production).
  Result<std::string> mllp_agency(const ConnectionIdentity& connection,
                                  std::string_view application, std::string_view facility) const;

  /// The clinic whose connection sends a screening or referral naming MSH-3 `application` and
  /// MSH-4 `facility`; empty in dev mode for a sender no party has (a first try-out). Refusals
  /// (kUnsupported, at MSH-4, for an AR): an agency's sender; in production, a sender no clinic
  /// party has, or a connection that is not the named clinic's (its certificate or source
  /// address proves another party, or none).
  Result<std::string> mllp_clinic(const ConnectionIdentity& connection,
                                  std::string_view application, std::string_view facility) const;

  /// The party a connection proves to be (its verified certificate subject, else its source
  /// address, as a party names them); empty when it proves none.
  std::string connection_party(const ConnectionIdentity& connection) const;

  const config::PartyConfig* find(std::string_view id) const;
  bool empty() const { return parties_.empty(); }

 private:
  const config::PartyConfig* by_sender(std::string_view application,
                                       std::string_view facility) const;
  std::vector<config::PartyConfig> parties_;
  bool dev_mode_ = true;
};

/// Whether a verified certificate `subject` ("/C=US/O=Early Start/CN=ehv-durham") is the one a
/// party names: the whole one-line subject, or its CN when the party names only a CN.
bool certificate_matches(std::string_view subject, std::string_view expected);

/// Whether a connection proves to be `party`: its verified certificate subject is the one the
/// party names, or its source address is in the party's networks.
bool proves(const config::PartyConfig& party, const ConnectionIdentity& connection);

}  // namespace sdoh::identity
