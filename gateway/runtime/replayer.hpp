#pragma once
// An operator's replay of a dead letter (/admin/dead-letters/{id}/replay): the stored message is
// read again by the adapter it came through, and every commit it makes is the replay of that
// dead letter (pipeline::ReplayPort) — once.
#include "adapters/fhir/api.hpp"
#include "adapters/hl7v2/pipeline.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/runtime/admin.hpp"

namespace sdoh::runtime {

/// Replays FHIR messages through `fhir_api` and HL7 messages through a pipeline like the live one
/// (`hl7_options`), committing through `commits`. Everything must outlive the replayer.
MessageReplayer message_replayer(fhir::Api& fhir_api, const mapping::ScreeningMapper& mapper,
                                 const hl7v2::Hl7PipelineOptions& hl7_options,
                                 pipeline::CommitPort& commits);

}  // namespace sdoh::runtime
