"""The delivery promise under faults, with the real binary and librdkafka's Kafka-protocol broker
in its own process (tools/mock_kafka.cpp): brokers down in the middle of a load, kill -9 of the
gateway, brokers answering with retriable errors, and a store that cannot write. Every test
counts by event id what was sent, ACKed and published, and prints the figures."""
import json
import os
import resource
import signal
import socket
import threading
import time
import unittest

from harness import SAMPLES, Gateway, MockKafka, consume_all, hl7_field, mllp_exchange, mllp_roundtrip, parse_metrics, run

with open(os.path.join(SAMPLES, "hl7v2", "oru-r01-hunger-vital-sign-negative.hl7"), "rb") as f:
    TEMPLATE = f.read().replace(b"\r\n", b"\r").replace(b"\n", b"\r")

POSITIVE = ("AA", "CA")
# librdkafka's mock broker keeps at most 5 MB per partition (older messages are dropped): the
# fault tests use enough partitions to keep every event they count.
PARTITIONS = 8


def message(control_id):
    # One child per message, so the events spread over the partitions (keyed by pseudonym).
    return TEMPLATE.replace(b"B2000017", control_id.encode()).replace(b"44120^^^", control_id.encode() + b"^^^")


class Load:
    """`connections` MLLP senders, each sending its share of `total` messages one at a time and
    waiting for each ACK (as a clinic's interface engine does), at most `rate` messages/s in all.
    Records the ACK code of every control id; a connection that breaks reconnects and goes on
    with the next message (the unanswered one counts as sent, not ACKed)."""

    def __init__(self, address, prefix, total, connections=4, rate=None):
        self.address, self.prefix, self.total = address, prefix, total
        self.connections, self.rate = connections, rate
        self.acks = {}  # control id -> MSA-1 (None: no answer)
        self.lock = threading.Lock()
        self.threads = []
        self.started = None

    def start(self):
        self.started = time.monotonic()
        for c in range(self.connections):
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _run(self, c):
        ids = ["%s-%05d" % (self.prefix, i) for i in range(c, self.total, self.connections)]
        sock = None
        for n, control_id in enumerate(ids):
            if self.rate:
                due = self.started + (n * self.connections + c) / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            code = None
            try:
                if sock is None:
                    sock = socket.create_connection(self.address, timeout=30)
                ack = mllp_roundtrip(sock, message(control_id))
                code = hl7_field(ack, "MSA", 1) if ack else None
                if hl7_field(ack, "MSA", 2) != control_id:
                    code = "MISMATCH"
            except OSError:
                if sock is not None:
                    sock.close()
                sock = None
            with self.lock:
                self.acks[control_id] = code
        if sock is not None:
            sock.close()

    def wait(self, timeout=300):
        for t in self.threads:
            t.join(timeout)
        return self

    @property
    def acked(self):
        with self.lock:
            return {k for k, v in self.acks.items() if v in POSITIVE}

    @property
    def answered(self):
        with self.lock:
            return len([v for v in self.acks.values() if v is not None])


def published_by_message(bootstrap, prefix):
    """The screening events on Kafka of this test's messages: control id -> [event ids]."""
    found = {}
    for ce_id, value in consume_all(bootstrap, "sdoh.screening.v1"):
        event = json.loads(value)
        control_id = event["data"]["source"]["messageId"]
        if control_id.startswith(prefix + "-"):
            assert ce_id == event["id"], "the ce_id header carries the event id"
            found.setdefault(control_id, []).append(event["id"])
    return found


def wait_drained(gw, timeout=120):
    """Seconds until the outbox is empty (every committed event acknowledged by Kafka)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status, body = gw.get("/metrics")
        if status == 200 and parse_metrics(body)[0].get("sdoh_outbox_undelivered_events") == 0:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError("the outbox did not drain in %ss:\n%s" % (timeout, gw.log()[-4000:]))


def report(name, sent, acked, found, drain_seconds):
    published = sum(len(v) for v in found.values())
    lost = len([c for c in acked if c not in found])
    duplicated = sum(len(v) - 1 for v in found.values() if len(v) > 1)
    print("\n[%s] sent=%d acked=%d published=%d lost=%d duplicated=%d drain=%.1fs"
          % (name, sent, len(acked), published, lost, duplicated, drain_seconds), flush=True)
    return lost, duplicated


def kafka_config(bootstrap):
    return "{ brokers: \"%s\", metadata_interval: 500ms, flush_timeout: 2s }" % bootstrap


class BrokerOutage(unittest.TestCase):
    def test_all_brokers_down_for_20s_in_the_middle_of_5000_messages(self):
        with MockKafka(partitions=PARTITIONS) as kafka, Gateway(kafka=kafka_config(kafka.bootstrap)) as gw:
            load = Load(gw.mllp_address, "OUT", 5000, connections=4, rate=200).start()
            time.sleep(5)
            kafka.command("down")
            down_at = time.monotonic()
            time.sleep(20)
            # While every broker is down the gateway goes on ACKing: the events wait, durable.
            status, body = gw.get("/metrics")
            backlog = parse_metrics(body)[0]["sdoh_outbox_undelivered_events"]
            kafka.command("up")
            outage = time.monotonic() - down_at
            load.wait()
            drain = wait_drained(gw)
            found = published_by_message(kafka.bootstrap, "OUT")
            lost, duplicated = report("brokers down %.0fs" % outage, load.total, load.acked, found, drain)
            self.assertGreater(backlog, 0, "events were committed while every broker was down")
            self.assertEqual(len(load.acked), load.total, "the store was fine: every message is ACKed")
            self.assertEqual(lost, 0)
            self.assertEqual(duplicated, 0)
            self.assertEqual(set(found), load.acked)
            self.assertEqual(gw.stop(), 0)


class KillNine(unittest.TestCase):
    def test_kill_9_in_the_middle_of_a_load_then_restart(self):
        with MockKafka(partitions=PARTITIONS) as kafka, Gateway(kafka=kafka_config(kafka.bootstrap)) as gw:
            load = Load(gw.mllp_address, "K9", 3000, connections=8).start()
            deadline = time.monotonic() + 30
            while load.answered < 800 and time.monotonic() < deadline:
                time.sleep(0.01)
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait()
            load.wait()
            acked = load.acked
            self.assertGreater(len(acked), 500)
            self.assertLess(len(acked), load.total, "the kill came in the middle of the load")
            os.remove(os.path.join(gw.data_dir, "runtime.json"))  # left behind by kill -9
            gw.log_file.close()
            gw.start()
            drain = wait_drained(gw)
            found = published_by_message(kafka.bootstrap, "K9")
            lost, duplicated = report("kill -9", len(load.acks), acked, found, drain)
            self.assertEqual(lost, 0, "every ACKed message is published after the restart")
            self.assertEqual(duplicated, 0, "none twice")
            # Messages cut off by the kill were either committed (published once) or not at all.
            self.assertTrue(set(found) <= set(load.acks))
            reconciled = [e for e in gw.log_events() if e.get("event") == "relay.reconciled"]
            self.assertTrue(reconciled, "the restart reconciled the outbox with the topics")
            print("[kill -9] restart: %d undelivered in the outbox, %d of them found already in Kafka"
                  % (reconciled[0]["undelivered"], reconciled[0]["already_in_kafka"]), flush=True)
            self.assertEqual(gw.stop(), 0)


class RetriableErrors(unittest.TestCase):
    def test_not_enough_replicas_and_request_timed_out_are_retried(self):
        # librdkafka 2.0's mock broker checks produce sequence numbers only for transactional
        # producers, so it accepts a batch sent behind a failed one that a real broker would
        # refuse as out of order; one request in flight keeps the mock's order what a broker's is.
        props = "{ brokers: \"%s\", metadata_interval: 500ms, flush_timeout: 2s, " \
                "properties: { max.in.flight.requests.per.connection: \"1\", debug: msg } }"
        with MockKafka(partitions=PARTITIONS) as kafka, Gateway(kafka=props % kafka.bootstrap) as gw:
            kafka.command("errors Produce 40 NOT_ENOUGH_REPLICAS")
            kafka.command("errors Produce 40 REQUEST_TIMED_OUT")
            load = Load(gw.mllp_address, "RE", 1000, connections=4).start().wait()
            drain = wait_drained(gw)
            found = published_by_message(kafka.bootstrap, "RE")
            lost, duplicated = report("retriable errors", load.total, load.acked, found, drain)
            self.assertEqual(len(load.acked), load.total)
            self.assertEqual(lost, 0)
            self.assertEqual(duplicated, 0)
            # The errors were served and retried by the idempotent producer (librdkafka's
            # message debug log, which the gateway writes as kafka.client records).
            failed = [e["detail"] for e in gw.log_events()
                      if e.get("event") == "kafka.client" and "encountered error" in e.get("detail", "")]
            print("[retriable errors] produce requests that failed and were retried: %d" % len(failed))
            self.assertTrue(any("Not enough in-sync replicas" in d for d in failed), failed[:3])
            self.assertTrue(any("Request timed out" in d for d in failed), failed[:3])
            self.assertEqual(gw.stop(), 0)


    def test_a_fatal_producer_error_replaces_the_producer_and_dead_letters_nothing(self):
        # An idempotent producer whose sequence the broker refuses (OUT_OF_ORDER_SEQUENCE_NUMBER)
        # has a fatal error: librdkafka refuses every produce() from then on. The gateway replaces
        # the producer, reconciles, and publishes every event once; /readyz is 503 meanwhile.
        with MockKafka(partitions=PARTITIONS) as kafka, Gateway(kafka=kafka_config(kafka.bootstrap)) as gw:
            before = Load(gw.mllp_address, "FA", 200, connections=4).start().wait()
            wait_drained(gw)
            not_ready = []
            watching = threading.Event()

            def watch():
                while not watching.is_set():
                    status, body = gw.get("/readyz")
                    if status == 503 and "fatal error" in body:
                        not_ready.append(body)
                    time.sleep(0.02)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            kafka.command("errors Produce 1 OUT_OF_ORDER_SEQUENCE_NUMBER")
            load = Load(gw.mllp_address, "FB", 800, connections=4).start().wait()
            drain = wait_drained(gw)
            watching.set()
            watcher.join()
            found = published_by_message(kafka.bootstrap, "FA")
            found.update(published_by_message(kafka.bootstrap, "FB"))
            acked = before.acked | load.acked
            lost, duplicated = report("fatal producer error", before.total + load.total, acked, found, drain)
            self.assertEqual(len(acked), before.total + load.total)
            self.assertEqual(lost, 0)
            self.assertEqual(duplicated, 0)
            metrics = parse_metrics(gw.get("/metrics")[1])[0]
            self.assertGreaterEqual(metrics.get("sdoh_kafka_producer_recreated_total", 0), 1)
            self.assertEqual(metrics.get('sdoh_relay_events_total{outcome="dead-lettered"}', 0), 0)
            self.assertEqual(metrics.get("sdoh_dead_letters_stored", 0), 0)
            events = [e.get("event") for e in gw.log_events()]
            self.assertIn("kafka.fatal_error", events)
            self.assertIn("kafka.producer_recreated", events)
            self.assertTrue(not_ready, "/readyz stayed 200 while the producer was broken")
            self.assertEqual(gw.get("/readyz")[0], 200)
            self.assertEqual(gw.stop(), 0)


class UnwritableStore(unittest.TestCase):
    def test_no_positive_ack_while_the_store_cannot_write(self):
        with Gateway() as gw:
            before = Load(gw.mllp_address, "UW1", 50, connections=2).start().wait()
            self.assertEqual(len(before.acked), 50)
            # Every write beyond byte 1 of any file now fails (EFBIG), as on a full disk.
            resource.prlimit(gw.proc.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
            try:
                during = Load(gw.mllp_address, "UW2", 200, connections=4).start().wait()
                status, body = gw.get("/readyz")
                ready = json.loads(body)
            finally:
                resource.prlimit(gw.proc.pid, resource.RLIMIT_FSIZE,
                                 (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            codes = {}
            for code in during.acks.values():
                codes[code] = codes.get(code, 0) + 1
            print("\n[unwritable store] sent=%d positive=%d answers=%r" % (during.total, len(during.acked), codes),
                  flush=True)
            self.assertEqual(len(during.acked), 0, "no positive ACK while the store cannot write")
            self.assertEqual(codes.get("AE", 0), during.total, "every message got AE, to be resent")
            self.assertEqual(status, 503)
            self.assertFalse(ready["checks"]["store"]["ok"])
            # Writable again: it recovers without a restart, and the resends are accepted.
            again = Load(gw.mllp_address, "UW2", 200, connections=4).start().wait()
            self.assertEqual(len(again.acked), 200)
            drain = wait_drained(gw)
            found = published_by_message(gw.bootstrap, "UW2")
            lost, duplicated = report("unwritable store, then resent", again.total, again.acked, found, drain)
            self.assertEqual((lost, duplicated), (0, 0))
            self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    unittest.main()


TOKEN = "it-admin-token-0123456789abcdef"
DEADLETTERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "deadletters")


def deadletters(gw, *args):
    return run([DEADLETTERS, "--url", gw.http_url, *args], env=dict(os.environ, SDOH_ADMIN_TOKEN=TOKEN))


class DeadLetterReplay(unittest.TestCase):
    def test_refused_event_is_dead_lettered_then_replayed_once_after_the_fix(self):
        admin = "admin: { token: { env: SDOH_ADMIN_TOKEN } }\n"
        env = {"SDOH_ADMIN_TOKEN": TOKEN}
        with MockKafka(partitions=PARTITIONS) as kafka:
            small = ("{ brokers: \"%s\", metadata_interval: 500ms, "
                     "properties: { message.max.bytes: \"1200\" } }" % kafka.bootstrap)
            with Gateway(admin, env=env, kafka=small) as gw:
                ack = mllp_exchange(gw.mllp_address, [message("DL-1")])[0]
                self.assertEqual(hl7_field(ack, "MSA", 1), "AA", "committed: the sender is done")
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    listed = json.loads(deadletters(gw, "--json", "list").stdout)
                    if listed["deadLetters"]:
                        break
                    time.sleep(0.2)
                [dl] = listed["deadLetters"]
                self.assertEqual(dl["stage"], "publish")
                self.assertEqual(dl["kind"], "refused-event")
                self.assertEqual(dl["error"]["code"], "too-long")
                self.assertEqual(dl["source"]["messageId"], "DL-1")
                self.assertNotIn("payload", dl, "bytes only on request")
                # Without the token: refused.
                status, _ = gw.get("/admin/dead-letters")
                self.assertEqual(status, 401)
                notices = [json.loads(v) for _, v in consume_all(kafka.bootstrap, "sdoh.deadletter.v1")]
                self.assertIn(dl["deadLetterId"], [n["data"]["deadLetterId"] for n in notices])
                self.assertEqual(published_by_message(kafka.bootstrap, "DL"), {})
                self.assertEqual(gw.stop(), 0)
                # The operator raises the limit and restarts, then replays.
                with open(gw.config_path) as f:
                    config = f.read().replace('message.max.bytes: "1200"', 'message.max.bytes: "1000000"')
                with open(gw.config_path, "w") as f:
                    f.write(config)
                gw.log_file.close()
                gw.start()
                out = deadletters(gw, "replay", dl["deadLetterId"])
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                self.assertIn("requeued", out.stdout)
                again = deadletters(gw, "replay", dl["deadLetterId"])
                self.assertEqual(again.returncode, 1, "a second replay is refused")
                self.assertIn("already replayed", again.stdout)
                wait_drained(gw)
                found = published_by_message(kafka.bootstrap, "DL")
                self.assertEqual({k: len(v) for k, v in found.items()}, {"DL-1": 1})
                self.assertEqual(json.loads(deadletters(gw, "--json", "list").stdout)["waiting"], 0)
                self.assertEqual(gw.stop(), 0)

    def test_rejected_message_replayed_unfixed_stays_a_dead_letter(self):
        with Gateway("admin: { token: { env: SDOH_ADMIN_TOKEN } }\n", env={"SDOH_ADMIN_TOKEN": TOKEN}) as gw:
            with open(os.path.join(SAMPLES, "hl7v2", "bad-missing-obx-code.hl7"), "rb") as f:
                ack = mllp_exchange(gw.mllp_address, [f.read()])[0]
            self.assertEqual(hl7_field(ack, "MSA", 1), "AE")
            [dl] = json.loads(deadletters(gw, "--json", "list").stdout)["deadLetters"]
            self.assertEqual(dl["kind"], "rejected-message")
            shown = json.loads(deadletters(gw, "--json", "show", dl["deadLetterId"], "--payload").stdout)
            self.assertTrue(shown["payload"].startswith("MSH|"))
            out = deadletters(gw, "replay", dl["deadLetterId"])
            self.assertEqual(out.returncode, 1)
            self.assertIn("still rejected", out.stdout + out.stderr)
            self.assertEqual(json.loads(deadletters(gw, "--json", "list").stdout)["waiting"], 1)
            self.assertEqual(gw.stop(), 0)


class DeliveredAck(unittest.TestCase):
    def test_positive_ack_only_after_kafka_acknowledged(self):
        with MockKafka(partitions=PARTITIONS) as kafka, \
                Gateway("delivery: { ack: delivered, delivered_timeout: 2s }\n",
                        kafka=kafka_config(kafka.bootstrap)) as gw:
            ack = mllp_exchange(gw.mllp_address, [message("DA-1")])[0]
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA")
            self.assertEqual(len(published_by_message(kafka.bootstrap, "DA").get("DA-1", [])), 1,
                             "in Kafka by the time the ACK arrived")
            kafka.command("down")
            started = time.monotonic()
            ack = mllp_exchange(gw.mllp_address, [message("DA-2")])[0]
            waited = time.monotonic() - started
            self.assertEqual(hl7_field(ack, "MSA", 1), "AE", "Kafka is down: no positive answer")
            self.assertIn("Kafka", hl7_field(ack, "ERR", 8))
            self.assertGreaterEqual(waited, 1.5)
            kafka.command("up")
            # The resend is answered positively once the committed events are delivered.
            deadline = time.monotonic() + 30
            while True:
                ack = mllp_exchange(gw.mllp_address, [message("DA-2")])[0]
                if hl7_field(ack, "MSA", 1) == "AA" or time.monotonic() > deadline:
                    break
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA")
            found = published_by_message(kafka.bootstrap, "DA")
            self.assertEqual({k: len(v) for k, v in found.items()}, {"DA-1": 1, "DA-2": 1})
            self.assertEqual(gw.stop(), 0)
