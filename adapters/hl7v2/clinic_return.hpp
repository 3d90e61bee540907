#pragma once
// Answers to HL7 clinics about their referrals: an RRI^I12 for each status change, queued with
// the change (pipeline::OutboundMessage) and sent over MLLP to the clinic's configured endpoint
// (mllp.hl7.senders.<sender>.return_address) until the clinic acknowledges it.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/pipeline/outbound_port.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/pipeline/commit_observer.hpp"
#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::hl7v2 {

struct RriContent {
  std::string gateway_id;
  std::string clinic;  ///< the clinic's "MSH-3^MSH-4": receiving application and facility
  std::string control_id;
  std::string timestamp;       ///< HL7 DTM, e.g. 20261125101500+0000
  std::string ref_control_id;  ///< the REF^I12's MSH-10 (MSA-2)
  pipeline::ReferralState referral;
  std::string status;           ///< lifecycle status, e.g. accepted
  std::string business_status;  ///< may be empty
  std::string reason;           ///< may be empty
};

/// The RRI^I12 (HL7 v2.5.1): MSH, MSA (the REF's control id), RF1 (RF1-1 status: table 0283
/// A/R/P/E as the clinic's systems expect, the lifecycle status in its text; RF1-6 the clinic's
/// referral number; RF1-11 the referralId), PRD (the agency), PID (PID-3 as the clinic sent it),
/// NTE (businessStatus and reason). Values are escaped.
std::string build_rri_i12(const RriContent& c);

/// Adds the RRI^I12 answers a commit owes HL7 clinics: one per status event (`changes`, from
/// pipeline::status_events(); sequence >= 2) of a referral whose clinic has a return_address.
/// `lookup` finds a referral's state (return_to, return_pid) when the request does not carry it.
void add_clinic_returns(
    pipeline::CommitRequest& request, const std::vector<mapping::StatusEvent>& changes,
    const config::Hl7Config& hl7, const std::string& gateway_id,
    const std::function<std::optional<pipeline::ReferralState>(const std::string&)>& lookup);

/// Takes part in every commit (pipeline::ObservedCommitPort): queues the RRI^I12 answers the
/// commit owes HL7 clinics in its own transaction, and wakes `sender` once they are stored.
class ClinicReturns final : public pipeline::CommitObserver {
 public:
  using Lookup = std::function<std::optional<pipeline::ReferralState>(const std::string&)>;
  ClinicReturns(const config::Hl7Config& hl7, std::string gateway_id, Lookup lookup,
                std::function<void()> wake_sender)
      : hl7_(hl7),
        gateway_id_(std::move(gateway_id)),
        lookup_(std::move(lookup)),
        wake_sender_(std::move(wake_sender)) {}

  void preparing(pipeline::CommitRequest& request,
                 const std::vector<mapping::StatusEvent>& changes) override {
    add_clinic_returns(request, changes, hl7_, gateway_id_, lookup_);
  }
  void committed(const pipeline::CommitOutcome&, const std::vector<mapping::StatusEvent>&,
                 bool outbound) override {
    if (outbound) wake_sender_();
  }

 private:
  const config::Hl7Config& hl7_;
  std::string gateway_id_;
  Lookup lookup_;
  std::function<void()> wake_sender_;
};

/// Sends queued outbound messages: due ones every `interval` (and when woken), each with an
/// MllpClient (mllp_client.hpp; TLS when the sender's return_ca_file is set, checking the chain
/// and that the certificate names the return_address host; one connection kept per clinic); an
/// AA/CA answer ends it, an AR/CR gives it up (logged, counted), no answer or AE/CE is tried
/// again with exponential backoff (net/backoff.hpp: 1 s doubling to 5 min, up to a quarter
/// less at random). Logs carry codes and kinds, never the clinic's error text. Its own thread.
class ClinicReturnSender {
 public:
  ClinicReturnSender(pipeline::OutboundQueue& store, const config::Hl7Config& hl7,
                     metrics::Registry& registry,
                     std::chrono::milliseconds interval = std::chrono::milliseconds(500));
  ~ClinicReturnSender();
  void start();
  void wake();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::hl7v2
