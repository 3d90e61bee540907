// The store's group committer: commits, delivery marks and the waits for them.
#include "adapters/store/sql_store_impl.hpp"

namespace sdoh::store {

Result<std::vector<std::int64_t>> undelivered_of(SqlStore::Impl& s, std::int64_t inbound_id);

namespace {

// The referral's timeline after `row`, in the same transaction (measures/timeline.hpp decides).
Result<void> advance_timeline(SqlStore::Impl& s, const pipeline::ReferralState& row,
                              std::int64_t now) {
  std::optional<measures::ReferralTimeline> before;
  {
    auto& st = s.select_timeline;
    ResetOnExit reset{st};
    st.text(1, row.referral_id);
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kRow) before = timeline_row(st);
  }
  const auto t = measures::advance(before, row, now);
  auto& st = s.upsert_timeline;
  ResetOnExit reset{st};
  st.text(1, t.referral_id)
      .integer(2, t.created_ms)
      .integer(3, t.released_ms)
      .integer(4, t.received_ms)
      .integer(5, t.accepted_ms)
      .integer(6, t.closed_ms)
      .text(7, t.outcome)
      .text(8, t.status)
      .text(9, t.business_status)
      .integer(10, t.sequence)
      .text(11, t.agency)
      .text(12, t.category)
      .text(13, t.clinic)
      .text(14, t.race)
      .text(15, t.ethnicity)
      .text(16, t.language)
      .text(17, t.zip3)
      .integer(18, t.started_ms());
  return st.send();
}

}  // namespace

Result<void> upsert_referral(SqlStore::Impl& s, const pipeline::ReferralState& row,
                             std::int64_t now) {
  auto& st = s.upsert_referral;
  ResetOnExit reset{st};
  st.text(1, row.referral_id)
      .text(2, row.clinic_number_system)
      .text(3, row.clinic_number_value)
      .text(4, row.source_control_id)
      .text(5, row.agency_id)
      .text(6, row.category)
      .text(7, row.status)
      .text(8, row.business_status)
      .integer(9, row.sequence)
      .integer(10, now)
      .integer(11, row.overdue ? 1 : 0)
      .text(12, row.return_to)
      .text(13, row.return_pid)
      .text(14, row.race)
      .text(15, row.ethnicity)
      .text(16, row.language)
      .text(17, row.patient);
  if (auto r = st.send(); !r) return r;
  return advance_timeline(s, row, now);
}

struct CommitOp final : WriteOp {
  pipeline::CommitRequest request;
  pipeline::CommitOutcome outcome;
  std::move_only_function<void(Result<pipeline::CommitOutcome>)> complete;

  // The request's resource versions and referral states. A version that is not the successor
  // of the stored one fails the whole request (kConflict): the savepoint undoes it.
  Result<void> write_state(SqlStore::Impl& s, std::int64_t received) {
    auto step = [](Statement& st) -> Result<void> {
      ResetOnExit reset{st};
      return st.send();  // no result read: PostgreSQL pipelines them
    };
    for (const auto& w : request.resources) {
      std::int64_t current = 0;
      {
        auto& st = s.resource_version;
        ResetOnExit reset{st};
        st.text(1, w.type).text(2, w.id);
        auto r = st.step();
        if (!r) return fail(r.error());
        if (*r == kRow) current = st.column_int(0);
      }
      // The messages name the resource and versions only, never its content (PHI).
      if (current != w.expected_version) {
        return fail(Error::conflict(w.expected_version == 0
                                        ? w.type + "/" + w.id + " already exists"
                                        : w.type + "/" + w.id + " is at version " +
                                              std::to_string(current) + ", not " +
                                              std::to_string(w.expected_version)));
      }
      if (w.version <= current) {
        return fail(Error::internal(w.type + "/" + w.id + " version " + std::to_string(w.version) +
                                    " does not follow version " + std::to_string(current)));
      }
      s.upsert_resource.text(1, w.type).text(2, w.id).integer(3, w.version);
      s.upsert_resource.text(4, w.last_updated).integer(5, received).text(6, w.source);
      if (auto r = step(s.upsert_resource); !r) return r;
      s.insert_history.text(1, w.type).text(2, w.id).integer(3, w.version);
      s.insert_history.text(4, w.last_updated).integer(5, received).blob(6, w.json);
      if (auto r = step(s.insert_history); !r) return r;
      if (current > 0) {
        s.delete_identifiers.text(1, w.type).text(2, w.id);
        if (auto r = step(s.delete_identifiers); !r) return r;
        s.delete_search.text(1, w.type).text(2, w.id);
        if (auto r = step(s.delete_search); !r) return r;
      }
      for (const auto& [system, value] : w.identifiers) {
        s.insert_identifier.text(1, w.type).text(2, system).text(3, value).text(4, w.id);
        if (auto r = step(s.insert_identifier); !r) return r;
      }
      for (const auto& [name, value] : w.search) {
        s.insert_search.text(1, w.type).text(2, w.id).text(3, name).text(4, value);
        if (auto r = step(s.insert_search); !r) return r;
      }
    }
    for (const auto& row : request.referrals) {
      if (row.expected_sequence) {
        // Optimistic locking: the referral must still be where its change was decided from.
        std::int64_t current = 0;
        {
          auto& st = s.referral_sequence;
          ResetOnExit reset{st};
          st.text(1, row.referral_id);
          auto r = st.step();
          if (!r) return fail(r.error());
          if (*r == kRow) current = st.column_int(0);
        }
        if (current != *row.expected_sequence) {
          return fail(Error::conflict("referral " + row.referral_id + " is at sequence " +
                                      std::to_string(current) + ", not " +
                                      std::to_string(*row.expected_sequence)));
        }
      }
      if (auto r = upsert_referral(s, row, received); !r) return r;
    }
    for (const auto& o : request.outbound) {
      auto& st = s.insert_outbound;
      st.text(1, o.destination).text(2, o.referral_id).blob(3, o.message).integer(4, received);
      if (auto r = step(st); !r) return r;
    }
    if (!request.outbound.empty()) s.outbound_added = true;
    for (const auto& n : request.notices) {
      // Every Subscription of the owning agency, whatever its status (an error or off one keeps
      // its notifications until it is active again), numbered per Subscription.
      s.count_subscription_event.text(1, n.agency_id);
      if (auto r = step(s.count_subscription_event); !r) return r;
      auto& st = s.insert_notification;
      st.text(1, n.agency_id).text(2, n.referral_id).integer(3, n.sequence).text(4, n.status);
      st.blob(5, n.task_json).integer(6, received);
      if (auto r = step(st); !r) return r;
    }
    return {};
  }

  Result<void> insert_events(SqlStore::Impl& s, std::int64_t received) {
    for (const auto& e : request.events) {
      auto& st = s.insert_outbox;
      ResetOnExit reset{st};
      st.text(1, e.event_id).integer(2, outcome.inbound_id).text(3, e.type).text(4, e.topic);
      st.text(5, e.key).blob(6, e.value).integer(7, received).integer(8, relay_bucket(e.key));
      auto inserted = s.step_insert_event(e.event_id);
      if (!inserted) return fail(inserted.error());
      if (*inserted) {  // new (a replayed event's resend adds none)
        const auto seq = **inserted;
        const auto bytes = static_cast<std::int64_t>(e.value.size());
        if (auto r = s.add_pending(seq, bytes); !r) return r;
        outcome.undelivered.push_back(seq);
        pending_bytes += bytes;
      }
    }
    pending_undelivered = static_cast<std::int64_t>(outcome.undelivered.size());
    return {};
  }

  Result<void> replay(SqlStore::Impl& s, std::int64_t received) {
    auto dl = replayable_dead_letter(*s.conn, request.replay_of);
    if (!dl) return fail(dl.error());
    if (request.dead_letter) {
      return fail(Error::invalid("still rejected: " + request.dead_letter->error_text + " (" +
                                 request.dead_letter->location + ")"));
    }
    outcome.status = pipeline::CommitStatus::kCommitted;
    outcome.inbound_id = dl->inbound_id;
    outcome.answer_code = request.inbound.answer_code;
    {
      // Later resends of the message get the answer it has now.
      Statement st;
      if (auto r =
              st.prepare(*s.conn, "UPDATE inbound SET answer_code = ?1, answer = ?2 WHERE id = ?3");
          !r) {
        return r;
      }
      st.text(1, request.inbound.answer_code)
          .blob(2, request.inbound.answer)
          .integer(3, dl->inbound_id);
      if (auto r = st.step(); !r) return fail(r.error());
    }
    if (auto r = insert_events(s, received); !r) return r;
    if (auto r = write_state(s, received); !r) return r;
    pending_dead_letters = -1;  // one fewer waiting for an operator
    if (auto r = append_audit(s, request.audit, received); !r) return r;
    audited = static_cast<std::int64_t>(request.audit.size());
    return mark_replayed(*s.conn, request.replay_of, received,
                         "replayed: " + std::to_string(outcome.undelivered.size()) + " event(s)");
  }

  Result<void> execute(SqlStore::Impl& s) override {
    const auto& in = request.inbound;
    const auto received = s.now();
    if (!request.replay_of.empty()) return replay(s, received);
    // A resend: answer as the first time, add nothing.
    auto duplicate = [&](std::int64_t id, std::string answer_code,
                         std::string answer) -> Result<void> {
      outcome.status = pipeline::CommitStatus::kDuplicate;
      outcome.inbound_id = id;
      outcome.answer_code = std::move(answer_code);
      outcome.answer = std::move(answer);
      auto pending = undelivered_of(s, outcome.inbound_id);
      if (!pending) return fail(pending.error());
      outcome.undelivered = std::move(*pending);
      return {};
    };
    if (s.unique_keys && !in.dedupe_key.empty()) {
      auto seen = s.find_inbound(in.protocol, in.sender, in.dedupe_key);
      if (!seen) return fail(seen.error());
      if (*seen) return duplicate((*seen)->id, (*seen)->answer_code, (*seen)->answer);
    }
    std::int64_t inbound_id = 0;
    {
      auto& st = s.insert_inbound;
      ResetOnExit reset{st};
      st.text(1, in.protocol)
          .text(2, in.sender)
          .text_or_null(3, in.dedupe_key)
          .text(4, in.message_type);
      st.integer(5, received).text(6, in.answer_code).blob(7, in.answer).blob(8, in.payload);
      auto r = st.step();
      if (!r) return fail(r.error());
      // RETURNING id: a row when inserted; on PostgreSQL none for a resend (the dedupe key's
      // unique index).
      if (*r == kRow) inbound_id = st.column_int(0);
    }
    if (inbound_id == 0) {
      auto& st = s.select_inbound;
      ResetOnExit reset{st};
      st.text(1, in.protocol).text(2, in.sender).text(3, in.dedupe_key);
      auto r = st.step();
      if (!r) return fail(r.error());
      if (*r != kRow) return fail(Error::internal("duplicate inbound row vanished"));
      return duplicate(st.column_int(0), st.column_text(1), st.column_text(2));
    }
    s.inbound_added(in.protocol, in.sender, in.dedupe_key, inbound_id);
    outcome.status = pipeline::CommitStatus::kCommitted;
    outcome.inbound_id = inbound_id;
    outcome.answer_code = in.answer_code;
    if (auto r = insert_events(s, received); !r) return r;
    if (request.dead_letter) {
      const auto& d = *request.dead_letter;
      auto& st = s.insert_dead_letter;
      ResetOnExit reset{st};
      st.text(1, d.dead_letter_id).integer(2, outcome.inbound_id).integer(3, received);
      st.text(4, d.stage).text(5, d.error_code).text(6, d.error_text).text(7, d.location);
      if (auto r = st.send(); !r) return r;
    }
    pending_dead_letters = request.dead_letter ? 1 : 0;
    if (auto r = write_state(s, received); !r) return r;
    // The audit records of the change, in its transaction (a resend above changed nothing).
    if (auto r = append_audit(s, request.audit, received); !r) return r;
    audited = static_cast<std::int64_t>(request.audit.size());
    return {};
  }

  // Each event key's lock: a key's events get their sequence numbers in commit order across
  // gateways. Each resource's and referral's it writes (write_state reads, then writes them), and
  // the Subscriptions' of each agency it notifies.
  // The audit chain's, when the commit appends to it.
  void add_locks(std::vector<std::int64_t>& keys) const override {
    for (const auto& e : request.events)
      keys.push_back(sql::key_lock(e.key));
    for (const auto& w : request.resources)
      keys.push_back(sql::resource_lock(w.type, w.id));
    for (const auto& row : request.referrals)
      keys.push_back(sql::referral_lock(row.referral_id));
    for (const auto& n : request.notices)
      keys.push_back(sql::subscriptions_lock(n.agency_id));
    if (!request.audit.empty()) keys.push_back(sql::kAuditChainLock);
  }

  void finish(Result<void> result) override {
    store->commits_in_flight.fetch_sub(1);
    if (result) {
      store->undelivered.fetch_add(pending_undelivered);
      store->undelivered_bytes.fetch_add(pending_bytes);
      store->dead_letters.fetch_add(pending_dead_letters);
      if (audited > 0 && store->audit_records != nullptr)
        store->audit_records->inc(static_cast<std::uint64_t>(audited));
      (outcome.status == pipeline::CommitStatus::kDuplicate ? store->commits_duplicate
                                                            : store->commits_ok)
          ->inc();
      complete(std::move(outcome));
    } else {
      if (result.error().kind == ErrorKind::kUnavailable) store->commits_failed->inc();
      complete(fail(result.error()));
    }
  }

  SqlStore::Impl* store = nullptr;
  std::int64_t pending_undelivered = 0;
  std::int64_t pending_bytes = 0;
  std::int64_t pending_dead_letters = 0;
  std::int64_t audited = 0;
};

Result<std::vector<std::int64_t>> undelivered_of(SqlStore::Impl& s, std::int64_t inbound_id) {
  Statement st;
  if (auto r = st.prepare(*s.conn,
                          "SELECT o.seq FROM outbox o JOIN outbox_pending p ON p.seq = o.seq "
                          "WHERE o.inbound_id = ?1 ORDER BY o.seq");
      !r) {
    return fail(r.error());
  }
  st.integer(1, inbound_id);
  std::vector<std::int64_t> seqs;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kDone) return seqs;
    seqs.push_back(st.column_int(0));
  }
}

struct MarkDeliveredOp final : WriteOp {
  std::vector<DeliveredEvent> events;
  std::int64_t marked = 0;
  std::int64_t marked_bytes = 0;
  bool needs_durability() const override { return false; }  // Kafka has them already

  Result<void> execute(SqlStore::Impl& s) override {
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> highest;
    for (const auto& e : events) {
      auto left = s.remove_pending(e.seq);
      if (!left) return fail(left.error());
      if (*left) {  // it was pending until now
        ++marked;
        marked_bytes += **left;
      }
      if (e.partition >= 0 && e.offset >= 0) {
        auto& h = highest[{e.topic, e.partition}];
        h = std::max(h, e.offset);
      }
    }
    for (const auto& [where, offset] : highest) {
      auto& st = s.upsert_offset;
      ResetOnExit reset{st};
      st.text(1, where.first).integer(2, where.second).integer(3, offset);
      if (auto r = st.send(); !r) return r;
    }
    return {};
  }
  void finish(Result<void> result) override {
    if (!result) {
      // Not recorded (the store is failing): retried with the next transaction. Should the
      // process die first, the restart reconciliation finds them in Kafka.
      store->retry_marks.insert(store->retry_marks.end(), events.begin(), events.end());
      return;
    }
    store->undelivered.fetch_sub(marked);
    store->undelivered_bytes.fetch_sub(marked_bytes);
    for (const auto& e : events)
      store->settle(e.seq, std::nullopt);
  }
  SqlStore::Impl* store = nullptr;
};

std::unique_ptr<WriteOp> SqlStore::Impl::make_retry_marks_op() {
  auto op = std::make_unique<MarkDeliveredOp>();
  op->store = this;
  op->events.swap(retry_marks);
  return op;
}

asio::awaitable<Result<pipeline::CommitOutcome>> SqlStore::commit(pipeline::CommitRequest request) {
  auto* impl = impl_.get();
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable),
                                          void(Result<pipeline::CommitOutcome>)>(
      [impl, &request](auto handler) {
        if (auto why = impl->overloaded()) {
          // Refused before it is queued: the sender retries later, nothing is held in memory.
          impl->commits_refused->inc();
          auto ex = asio::get_associated_executor(handler);
          asio::post(ex, [h = std::move(handler), e = Error::unavailable(*why)]() mutable {
            std::move(h)(fail(std::move(e)));
          });
          return;
        }
        impl->commits_in_flight.fetch_add(1);
        auto op = std::make_unique<CommitOp>();
        op->store = impl;
        op->request = std::move(request);
        op->complete = [h = std::move(handler)](Result<pipeline::CommitOutcome> r) mutable {
          // Back to the committing coroutine's own executor (its connection's strand, or the
          // store executor), with the rest of its group.
          auto ex = asio::get_associated_executor(h);
          SqlStore::Impl::complete_on(
              ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
        };
        impl->enqueue(std::move(op));
      },
      asio::use_awaitable);
}

void SqlStore::mark_delivered(std::vector<DeliveredEvent> events) {
  auto op = std::make_unique<MarkDeliveredOp>();
  op->store = impl_.get();
  op->events = std::move(events);
  impl_->enqueue(std::move(op));
}

asio::awaitable<Result<void>> SqlStore::await_delivered(std::vector<std::int64_t> seqs,
                                                        std::chrono::milliseconds timeout) {
  if (seqs.empty()) co_return Result<void>{};
  auto* impl = impl_.get();
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result<void>)>(
      [impl, &seqs, timeout](auto handler) {
        auto ex = asio::get_associated_executor(handler);
        auto waiter = std::make_shared<DeliveryWaiter>();
        waiter->remaining.insert(seqs.begin(), seqs.end());
        waiter->complete = [ex, h = std::move(handler)](Result<void> r) mutable {
          asio::post(
              ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
        };
        auto timer = std::make_shared<asio::steady_timer>(ex, timeout);
        waiter->cancel_timer = [ex, timer] { asio::post(ex, [timer] { timer->cancel(); }); };
        {
          std::lock_guard lock(impl->waiters_mutex);
          for (auto seq : seqs)
            impl->waiters[seq] = waiter;
        }
        timer->async_wait([impl, waiter, seqs, timeout](const boost::system::error_code& ec) {
          if (ec) return;
          {
            std::lock_guard lock(impl->waiters_mutex);
            for (auto seq : seqs) {
              auto it = impl->waiters.find(seq);
              if (it != impl->waiters.end() && it->second == waiter) impl->waiters.erase(it);
            }
          }
          waiter->fail_with(Error::unavailable(
              "Kafka has not acknowledged the message's events within " +
              std::to_string(timeout.count()) + " ms; they are committed and will be delivered"));
        });
        // Several gateways: another may publish them; the writer asks the database until then.
        if (impl->shared_database()) impl->enqueue(impl->make_delivery_poll_op());
        // Deliveries acknowledged before the waiter was registered.
        std::vector<std::int64_t> done;
        {
          std::lock_guard lock(impl->reader_mutex);
          Statement st;
          if (st.prepare(*impl->reader_conn, kDeliveryStateSql)) {
            for (auto seq : seqs) {
              ResetOnExit reset{st};
              st.integer(1, seq);
              if (auto r = st.step(); r && *r == kRow) {
                if (st.column_int(0) != 0) done.push_back(seq);
                if (st.column_int(1) != 0) done.push_back(-seq);
              }
            }
          }
        }
        for (auto seq : done) {
          impl->settle(seq < 0 ? -seq : seq,
                       seq < 0 ? std::optional<Error>(Error::unavailable(
                                     "Kafka refused an event of this message; see dead letters"))
                               : std::nullopt);
        }
      },
      asio::use_awaitable);
}

}  // namespace sdoh::store
