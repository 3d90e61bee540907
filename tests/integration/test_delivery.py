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

from harness import SAMPLES, Gateway, MockKafka, consume_all, hl7_field, mllp_roundtrip, parse_metrics

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
