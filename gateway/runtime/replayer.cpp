#include "gateway/runtime/replayer.hpp"

#include "gateway/metrics/registry.hpp"
#include "gateway/pipeline/replay_port.hpp"

namespace sdoh::runtime {

namespace asio = boost::asio;

MessageReplayer message_replayer(fhir::Api& fhir_api, const mapping::ScreeningMapper& mapper,
                                 const hl7v2::Hl7PipelineOptions& hl7_options,
                                 pipeline::CommitPort& commits) {
  return [&fhir_api, &mapper, &hl7_options, &commits](
             const pipeline::DeadLetterInfo& d) -> asio::awaitable<Result<pipeline::ReplayResult>> {
    // Every commit of the re-read message is the replay of this dead letter.
    pipeline::ReplayPort port(commits, d.dead_letter_id);
    if (d.protocol == "fhir") {
      std::string sender = d.sender;
      std::string message_type = d.message_type;
      std::string payload = d.payload;
      std::string earlier_answer = d.answer;
      auto outcome = co_await fhir_api.replay(std::move(sender), std::move(message_type),
                                              std::move(payload), std::move(earlier_answer), port);
      if (!outcome) co_return fail(outcome.error());
    } else if (d.protocol == "hl7v2") {
      metrics::Registry replay_metrics;  // replays are counted by the admin log, not as traffic
      hl7v2::Hl7Pipeline replayer(mapper, port, hl7_options, replay_metrics);
      // Named locals: GCC 12 mishandles temporaries inside co_await expressions.
      const pipeline::Peer peer{"admin-replay", ""};
      std::string payload = d.payload;
      auto answer = co_await replayer.handle(std::move(payload), peer);
      (void)answer;
    } else {
      co_return fail(Error::unsupported("replaying " + d.protocol + " messages is not supported"));
    }
    const auto& replayed = port.result();
    if (!replayed) co_return fail(replayed.error());
    co_return pipeline::ReplayResult{replayed->dead_letter_id, replayed->outcome, replayed->events};
  };
}

}  // namespace sdoh::runtime
