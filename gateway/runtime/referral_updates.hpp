#pragma once
// Agencies' updates from Kafka (org.sdoh.referral.update.v1) applied to their referrals: the
// envelope and data checked against schemas/events, the referral and its Task found, the
// change checked by the referral lifecycle and committed (new Task version, status event,
// referral state) — or refused and dead-lettered (stage validate or lifecycle). Runs on the
// update consumer's thread.
#include <functional>
#include <map>

#include "adapters/fhir/error.hpp"
#include "adapters/kafka/update_consumer.hpp"
#include "gateway/config/config.hpp"
#include "gateway/events/schema_catalog.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/referral_port.hpp"
#include "gateway/pipeline/resource_port.hpp"
#include "gateway/pipeline/store_executor.hpp"
#include "gateway/referral/service.hpp"

namespace sdoh::runtime {

class ReferralUpdates {
 public:
  /// Reads referrals and Tasks from `store`, commits through `commits`. `topic_owners` maps each
  /// agency's update topic to the agency (routing): an update on it is that agency's, whatever
  /// its payload says; a topic without an owner (the shared development topic) lets the
  /// payload's data.agency.id speak.
  ReferralUpdates(const pipeline::ReferralRepository& referrals,
                  const pipeline::ResourceReader& resources, pipeline::CommitPort& commits,
                  pipeline::StoreExecutor& store_threads, const events::SchemaCatalog& schemas,
                  std::string gateway_id, config::KafkaTopics topics,
                  std::map<std::string, std::string> topic_owners = {})
      : referrals_(referrals),
        resources_(resources),
        commits_(commits),
        store_threads_(store_threads),
        schemas_(schemas),
        gateway_id_(std::move(gateway_id)),
        topics_(std::move(topics)),
        topic_owners_(std::move(topic_owners)),
        service_({gateway_id_, topics_.referral_status}) {}

  /// Never throws and never leaves a record unanswered: a record that cannot be parsed,
  /// validated or processed (even one that makes the handling throw) is dead-lettered, so one
  /// poison record cannot stop the partition, before or after a restart. kRetry only when the
  /// store cannot take the answer now.
  kafka::UpdateDisposition handle(const kafka::UpdateRecord& record);

 private:
  /// What names the record in its dead letter: the CloudEvent id (else its place in Kafka) and
  /// the agency it claims.
  struct RecordIdentity {
    std::string key;
    std::string agency;
    std::string received_at;
  };
  kafka::UpdateDisposition apply(const kafka::UpdateRecord& record, RecordIdentity& who);
  kafka::UpdateDisposition refuse(const kafka::UpdateRecord& record, const RecordIdentity& who,
                                  fhir::Problem problem, std::string_view stage);
  Result<pipeline::CommitOutcome> commit(pipeline::CommitRequest request);

  const pipeline::ReferralRepository& referrals_;
  const pipeline::ResourceReader& resources_;
  pipeline::CommitPort& commits_;
  pipeline::StoreExecutor& store_threads_;  // commits from the consumer's thread wait on it
  const events::SchemaCatalog& schemas_;
  std::string gateway_id_;
  config::KafkaTopics topics_;
  std::map<std::string, std::string> topic_owners_;  // update topic → agency id
  referral::Service service_;
};

}  // namespace sdoh::runtime
