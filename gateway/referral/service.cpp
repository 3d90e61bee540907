#include "gateway/referral/service.hpp"

#include "gateway/events/event.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::referral {

std::optional<Referral> Referral::from(const pipeline::ReferralState& state) {
  const auto status = mapping::referral_status_from(state.status);
  if (!status) return std::nullopt;
  Referral r;
  r.id = state.referral_id;
  r.status = *status;
  r.business_status = state.business_status;
  r.sequence = state.sequence;
  r.agency_id = state.agency_id;
  r.category = state.category;
  r.stored = state;
  return r;
}

pipeline::ReferralState Referral::state() const {
  auto s = stored;
  s.referral_id = id;
  s.status = std::string(mapping::to_string(status));
  s.business_status = business_status;
  s.sequence = sequence;
  s.agency_id = agency_id;
  s.category = category;
  s.expected_sequence.reset();
  return s;
}

namespace {

Refusal refusal_of(const mapping::TransitionCheck& verdict) {
  Refusal r;
  r.kind = verdict.verdict == mapping::Verdict::kConflict ? Refusal::Kind::kConflict
                                                          : Refusal::Kind::kBusinessRule;
  r.why = verdict.refusal;
  r.field = verdict.field;
  r.message = verdict.message;
  return r;
}

}  // namespace

Change Service::open(Referral r, bool consent_active, Party by, std::string time) const {
  const bool held = r.agency_id.empty();
  const bool uncategorised = held && r.business_status == mapping::kUncategorised;
  const auto first =
      uncategorised ? mapping::LifecycleState{ReferralStatus::kRequested, mapping::kUncategorised}
                    : mapping::initial_state(!held, consent_active);
  r.status = first.status;
  r.business_status = std::string(first.business_status);
  r.sequence = 1;
  // The measures count referrals by the clinic that made them.
  if (by.role == Actor::kClinic && r.stored.clinic.empty()) r.stored.clinic = by.id;
  Change out;
  out.before = r;
  out.before.sequence = 0;  // none yet: its state is written only if no referral has the id
  out.after = r;
  auto& t = out.transition;
  t.referral_id = r.id;
  t.status = r.status;
  t.business_status = r.business_status;
  // A held referral is announced by the gateway's routing (agency null).
  t.updated_by_role = std::string(mapping::to_string(held ? Actor::kGateway : by.role));
  t.updated_by_id = held ? std::string("routing") : (by.id.empty() ? "unknown" : by.id);
  t.time = std::move(time);
  t.sequence = 1;
  t.agency_id = r.agency_id;
  t.category = r.category;
  return out;
}

std::optional<Change> Service::release(const Referral& held, const Referral& after,
                                       const pipeline::ResourceRow* task, std::string task_json,
                                       const std::string& agency_name, mapping::LifecycleState to,
                                       std::string_view received_at) const {
  if (!mapping::check_change(held.lifecycle(), to, Actor::kGateway).allowed()) return std::nullopt;
  Move move;
  move.by = {Actor::kGateway, "routing"};
  move.status = to.status;
  move.business_status = std::string(to.business_status);
  if (task != nullptr) {
    if (!after.agency_id.empty()) task_json = with_owner(task_json, after.agency_id, agency_name);
    move.task_json = with_status(task_json, mapping::to_string(to.status), to.business_status, "")
                         .value_or(task_json);
  }
  auto out = change(after, task, move, to, received_at);
  if (!out) return std::nullopt;
  out->before = held;
  return std::move(*out);
}

std::optional<Change> Service::route(const Referral& held, const pipeline::ResourceRow* task,
                                     const std::string& agency_id, const std::string& agency_name,
                                     bool consent_active, std::string_view received_at) const {
  if (held.status != ReferralStatus::kRequested || held.business_status != mapping::kNoRoute ||
      agency_id.empty())
    return std::nullopt;
  Referral owned = held;
  owned.agency_id = agency_id;
  return release(held, owned, task, task != nullptr ? task->json : std::string(), agency_name,
                 mapping::initial_state(true, consent_active), received_at);
}

std::optional<Change> Service::categorise(const Referral& held, const pipeline::ResourceRow* task,
                                          const std::string& category, const std::string& agency_id,
                                          const std::string& agency_name, bool consent_active,
                                          std::string_view received_at) const {
  if (held.status != ReferralStatus::kRequested ||
      held.business_status != mapping::kUncategorised || category.empty())
    return std::nullopt;
  Referral known = held;
  known.category = category;
  known.agency_id = agency_id;
  const auto to = agency_id.empty()
                      ? mapping::LifecycleState{ReferralStatus::kRequested, mapping::kNoRoute}
                      : mapping::initial_state(true, consent_active);
  return release(held, known, task,
                 task != nullptr ? with_need(task->json, category) : std::string(), agency_name, to,
                 received_at);
}

std::expected<Change, Refusal> Service::reroute(const Referral& current,
                                                const pipeline::ResourceRow* task, Party clinic,
                                                const std::string& agency_id,
                                                const std::string& agency_name, bool consent_active,
                                                std::string_view received_at) const {
  if (current.status != ReferralStatus::kRequested) {
    return std::unexpected(Refusal{
        Refusal::Kind::kConflict, mapping::Refusal::kNotInTable, mapping::LifecycleField::kStatus,
        "a referral that is " + std::string(mapping::to_string(current.status)) +
            " is no longer re-routed: only while no agency has received it"});
  }
  if (current.business_status == mapping::kNoRoute) {
    if (auto routed = route(current, task, agency_id, agency_name, consent_active, received_at))
      return std::move(*routed);
  }
  Change out;
  out.before = current;
  out.after = current;
  if (agency_id == current.agency_id || agency_id.empty()) {
    out.unchanged = true;
    return out;
  }
  const auto to = mapping::initial_state(true, consent_active);
  out.after.agency_id = agency_id;
  out.after.business_status = std::string(to.business_status);
  out.after.sequence = current.sequence + 1;
  if (task != nullptr) {
    auto json = with_status(with_owner(task->json, agency_id, agency_name),
                            mapping::to_string(to.status), to.business_status, "");
    if (!json) {
      return std::unexpected(Refusal{
          Refusal::Kind::kTaskUnreadable, mapping::Refusal::kNone, mapping::LifecycleField::kStatus,
          "the referral's Task cannot be updated: " + json.error().message});
    }
    out.task = task_version(task->id, *json, task->version + 1, received_at, task->source);
  }
  auto& t = out.transition;
  t.referral_id = current.id;
  t.status = to.status;
  t.previous = current.status;
  t.business_status = out.after.business_status;
  t.updated_by_role = std::string(mapping::to_string(clinic.role));
  t.updated_by_id = clinic.id;
  t.time = std::string(received_at);
  t.sequence = out.after.sequence;
  t.agency_id = agency_id;
  t.category = current.category;
  return out;
}

pipeline::OutboxEvent Service::referral_event(const std::string& referral_id, int sequence,
                                              std::string topic, std::string data,
                                              std::string_view received_at,
                                              std::string_view revision) const {
  events::Event e;
  e.type = events::EventType::kReferral;
  e.id =
      events::event_id(revision.empty() ? "referral|" + referral_id
                                        : "referral|" + referral_id + "|" + std::string(revision),
                       sequence);
  e.source = events::event_source(settings_.gateway_id);
  e.subject = referral_id;
  e.time = std::string(received_at);
  e.topic = std::move(topic);
  e.key = referral_id;
  e.data = std::move(data);
  return {e.id, std::string(events::type_name(e.type)), e.topic, e.key, e.envelope()};
}

std::expected<Change, Refusal> Service::transition(const Referral& current,
                                                   const pipeline::ResourceRow* task,
                                                   const Move& move,
                                                   std::string_view received_at) const {
  if (move.by.role == Actor::kAgency && move.by.id != current.agency_id) {
    // Also for a referral held without an agency: an agency learns nothing about referrals that
    // are not its own.
    return std::unexpected(Refusal{Refusal::Kind::kForbidden, mapping::Refusal::kWrongActor,
                                   mapping::LifecycleField::kStatus,
                                   "the referral is owned by another agency"});
  }
  // A code that does not go with the new status does not follow the referral into it.
  const auto to = mapping::carry_over(current.lifecycle(), {move.status, move.business_status});
  const auto verdict = mapping::check_change(current.lifecycle(), to, move.by.role);
  if (!verdict.allowed()) return std::unexpected(refusal_of(verdict));
  return change(current, task, move, to, received_at);
}

std::expected<Change, Refusal> Service::cancel(const Referral& current,
                                               const pipeline::ResourceRow* task, Party clinic,
                                               std::string reason,
                                               std::string_view received_at) const {
  Move move;
  move.by = std::move(clinic);
  move.status = ReferralStatus::kCancelled;
  move.business_status = current.business_status;  // carried over only if it goes with it
  move.reason = std::move(reason);
  return transition(current, task, move, received_at);
}

std::optional<Change> Service::consent(const Referral& current, const pipeline::ResourceRow* task,
                                       bool active, std::string_view received_at) const {
  if (current.status != ReferralStatus::kRequested || current.agency_id.empty())
    return std::nullopt;
  const std::string_view from_code = active ? mapping::kAwaitingConsent : "";
  const std::string_view to_code = active ? "" : mapping::kAwaitingConsent;
  if (current.business_status != from_code) return std::nullopt;
  Move move;
  move.by = {Actor::kGateway, "consent"};
  move.status = ReferralStatus::kRequested;
  move.business_status = std::string(to_code);
  const mapping::LifecycleState to{ReferralStatus::kRequested, to_code};
  if (!mapping::check_change(current.lifecycle(), to, Actor::kGateway).allowed())
    return std::nullopt;
  auto out = change(current, task, move, to, received_at);
  if (!out) return std::nullopt;
  return std::move(*out);
}

std::optional<Change> Service::overdue(const Referral& current, const pipeline::ResourceRow* task,
                                       mapping::Clock::time_point waiting_since,
                                       std::chrono::milliseconds sla,
                                       mapping::Clock::time_point now,
                                       std::string_view received_at) const {
  if (!mapping::overdue_due(current.lifecycle(), waiting_since, sla, now)) return std::nullopt;
  const auto alert = mapping::overdue_alert();
  Move move;
  move.by = {Actor::kGateway, "overdue"};
  move.status = alert.status;
  move.business_status = std::string(alert.business_status);
  auto out = transition(current, task, move, received_at);
  if (!out) return std::nullopt;
  out->after.stored.overdue = true;  // its one overdue event: never raised again
  return std::move(*out);
}

std::expected<Change, Refusal> Service::change(const Referral& current,
                                               const pipeline::ResourceRow* task, const Move& move,
                                               mapping::LifecycleState to,
                                               std::string_view received_at) const {
  Change out;
  out.before = current;
  out.after = current;
  const std::string business_status(to.business_status);
  out.unchanged = to == current.lifecycle();

  // The Task's next version: as the party wrote it (its businessStatus as the gateway keeps
  // codes), or the stored one edited. A repeat with nothing to add leaves the Task alone.
  if (task != nullptr) {
    std::optional<std::string> json;
    if (move.task_json) {
      json = *move.task_json;
      if (!out.unchanged || business_status != move.business_status)
        json = with_business_status(*json, business_status);
    } else if (!out.unchanged || !move.note.empty()) {
      auto edited = with_status(task->json, mapping::to_string(to.status), business_status,
                                move.reason, move.note, move.note.empty() ? "" : received_at);
      if (!edited) {
        return std::unexpected(
            Refusal{Refusal::Kind::kTaskUnreadable, mapping::Refusal::kNone,
                    mapping::LifecycleField::kStatus,
                    "the referral's Task cannot be updated: " + edited.error().message});
      }
      json = std::move(*edited);
    }
    // Who may see it as its sender stays the clinic that sent the referral.
    if (json)
      out.task = task_version(task->id, *json, task->version + 1, received_at, task->source);
  }
  if (out.unchanged) return out;

  auto& t = out.transition;
  t.referral_id = current.id;
  t.status = to.status;
  t.previous = current.status;
  t.business_status = business_status;
  t.reason = move.reason;
  t.updated_by_role = std::string(mapping::to_string(move.by.role));
  t.updated_by_id = move.by.id;
  t.time = move.time.empty() ? std::string(received_at) : move.time;
  t.sequence = current.sequence + 1;
  t.agency_id = current.agency_id;
  t.category = current.category;

  out.after.status = to.status;
  out.after.business_status = business_status;
  out.after.sequence = t.sequence;
  return out;
}

pipeline::OutboxEvent Service::status_event(const mapping::ReferralTransition& t,
                                            std::string_view received_at) const {
  events::Event e;
  e.type = events::EventType::kReferralStatus;
  e.id = events::event_id("referral-status|" + t.referral_id, t.sequence);
  e.source = events::event_source(settings_.gateway_id);
  e.subject = t.referral_id;
  e.time = std::string(received_at);
  e.topic = settings_.status_topic;
  e.key = t.referral_id;
  e.data = mapping::referral_status_data(t);
  return {e.id, std::string(events::type_name(e.type)), e.topic, e.key, e.envelope()};
}

void Service::add_to(pipeline::CommitRequest& commit, const Change& change,
                     std::string_view received_at) const {
  if (change.task) commit.resources.push_back(*change.task);
  if (change.unchanged) return;
  commit.events.push_back(status_event(change.transition, received_at));
  auto state = change.after.state();
  state.expected_sequence = change.before.sequence;
  commit.referrals.push_back(std::move(state));
}

}  // namespace sdoh::referral
