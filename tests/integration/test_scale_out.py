"""Several gateways on one PostgreSQL database (issue 20's "Tests (a real PostgreSQL)"): two real
gateway processes share a throwaway cluster (pg_cluster.py) and one mock Kafka cluster
(tools/mock_kafka.cpp), behind one address: a TCP round-robin in the test, for MLLP and for HTTP,
that gives each new connection to the next gateway (and skips one that refuses it, as an L4
balancer's health check would). Every test counts by event id what was sent, answered and
published, and prints its figures."""
import collections
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import SAMPLES, Gateway, MockKafka, consume_all, hl7_field, mllp_roundtrip, parse_metrics, wait_for
from pg_cluster import PgCluster
from test_fhir import AGENCY_TOKEN, CLIENTS, CLINIC_TOKEN, ENV

with open(os.path.join(SAMPLES, "hl7v2", "oru-r01-hunger-vital-sign-negative.hl7"), "rb") as f:
    HL7_TEMPLATE = f.read().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
with open(os.path.join(SAMPLES, "fhir", "questionnaireresponse-hunger-vital-sign.json")) as f:
    QR_TEMPLATE = json.load(f)
with open(os.path.join(SAMPLES, "fhir", "bundle-transaction-screening-consent-referral.json")) as f:
    REFERRAL_BUNDLE = f.read()

POSITIVE = ("AA", "CA")
LEASE_SECONDS = 2.0
# The relay's lease on outbox buckets is short here, so that a takeover is quick to see.
STORE = "store: { url: \"%s\", lease: 2s }\n"
# Several partitions, so that the events spread over the relay's buckets (keyed by pseudonym).
PARTITIONS = 6


def hl7_message(control_id):
    """The negative Hunger Vital Sign sample as a new message: `control_id` in MSH-10 and as the
    child's MRN, so that one message is one child (its events spread over the partitions)."""
    return HL7_TEMPLATE.replace(b"B2000017", control_id.encode()).replace(
        b"44120^^^", control_id.encode() + b"^^^")


def qr_body(identifier):
    qr = dict(QR_TEMPLATE, identifier=dict(QR_TEMPLATE["identifier"], value=identifier))
    qr.pop("id", None)
    return json.dumps(qr).encode()


class RoundRobin:
    """A TCP balancer: each new connection goes to the next backend; one that refuses the
    connection is skipped. Remembers which backend took each client connection (by the client's
    port) and how many each took."""

    def __init__(self, backends):
        self.backends = list(backends)
        self.lock = threading.Lock()
        self.turn = 0
        self.taken = collections.Counter()
        self.by_client_port = {}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.address = self.sock.getsockname()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "http://%s:%d" % self.address

    def _accept(self):
        while True:
            try:
                client, peer = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client, peer), daemon=True).start()

    def _connect(self, client, peer):
        with self.lock:
            start = self.turn
            self.turn = (self.turn + 1) % len(self.backends)
        for i in range(len(self.backends)):
            index = (start + i) % len(self.backends)
            try:
                backend = socket.create_connection(self.backends[index], timeout=2)
            except OSError:
                continue
            backend.settimeout(None)
            with self.lock:
                self.taken[index] += 1
                self.by_client_port[peer[1]] = index
            done = threading.Semaphore(0)
            threading.Thread(target=self._pump, args=(client, backend, done), daemon=True).start()
            threading.Thread(target=self._pump, args=(backend, client, done), daemon=True).start()
            threading.Thread(target=self._close_both, args=(client, backend, done), daemon=True).start()
            return
        client.close()

    @staticmethod
    def _pump(src, dst, done):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        done.release()

    @staticmethod
    def _close_both(client, backend, done):
        done.acquire()
        done.acquire()
        client.close()
        backend.close()

    def backend_of(self, client_port):
        with self.lock:
            return self.by_client_port.get(client_port)

    def close(self):
        self.sock.close()


class MllpLoad:
    """`senders` MLLP clients through the balancer, each sending its share of `total` messages
    one at a time and waiting for each ACK, on a new connection every `per_connection` messages
    (so that every sender's messages spread over both gateways). An unanswered message counts
    as sent, not ACKed, and the sender goes on with the next on a new connection. Records each
    control id's MSA-1 and which gateway answered it."""

    def __init__(self, proxy, prefix, total, senders=6, per_connection=5, pause=0.0):
        self.proxy, self.prefix, self.total = proxy, prefix, total
        self.senders, self.per_connection, self.pause = senders, per_connection, pause
        self.acks = {}  # control id -> MSA-1 (None: no answer)
        self.answered_by = {}  # control id -> backend index
        self.answered_at = {}  # control id -> monotonic time of the answer
        self.lock = threading.Lock()
        self.threads = []
        self.stop = threading.Event()

    def start(self):
        for c in range(self.senders):
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _run(self, c):
        sock, sent_on_sock = None, 0
        for control_id in ["%s-%05d" % (self.prefix, i) for i in range(c, self.total, self.senders)]:
            if self.stop.is_set():
                break
            code, backend = None, None
            try:
                if sock is None or sent_on_sock >= self.per_connection:
                    if sock is not None:
                        sock.close()
                    sock, sent_on_sock = socket.create_connection(self.proxy.address, timeout=30), 0
                sent_on_sock += 1
                ack = mllp_roundtrip(sock, hl7_message(control_id))
                if ack:
                    code = hl7_field(ack, "MSA", 1)
                    if hl7_field(ack, "MSA", 2) != control_id:
                        code = "MISMATCH"
                    backend = self.proxy.backend_of(sock.getsockname()[1])
                else:
                    sock.close()
                    sock = None
            except OSError:
                if sock is not None:
                    sock.close()
                sock = None
            with self.lock:
                self.acks[control_id] = code
                self.answered_by[control_id] = backend
                self.answered_at[control_id] = time.monotonic()
            if self.pause:
                time.sleep(self.pause)
        if sock is not None:
            sock.close()

    def wait(self, timeout=120):
        for t in self.threads:
            t.join(timeout)
        return self

    def codes(self):
        with self.lock:
            return dict(self.acks)

    @property
    def acked(self):
        with self.lock:
            return {k for k, v in self.acks.items() if v in POSITIVE}


def http_call(url, method="GET", body=None, token=CLINIC_TOKEN, headers=None, timeout=30):
    """One request on a new connection: (status, headers, body text); status None when the
    connection broke."""
    h = {"Accept": "application/fhir+json", "Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = "application/fhir+json"
    h.update(headers or {})
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()
    except (OSError, urllib.error.URLError):
        return None, {}, ""


class FhirLoad:
    """`senders` FHIR clients through the balancer (a new connection per request, so the
    requests alternate between the gateways), each POSTing its share of `total`
    QuestionnaireResponses with identifiers <prefix>-<n>. Records each identifier's status."""

    def __init__(self, proxy, prefix, total, senders=3, pause=0.0):
        self.proxy, self.prefix, self.total, self.senders, self.pause = proxy, prefix, total, senders, pause
        self.statuses = {}
        self.lock = threading.Lock()
        self.threads = []
        self.stop = threading.Event()

    def start(self):
        for c in range(self.senders):
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _run(self, c):
        for i in range(c, self.total, self.senders):
            if self.stop.is_set():
                break
            identifier = "%s-%05d" % (self.prefix, i)
            status, _, _ = http_call(self.proxy.url + "/fhir/QuestionnaireResponse", "POST",
                                     qr_body(identifier))
            with self.lock:
                self.statuses[identifier] = status
            if self.pause:
                time.sleep(self.pause)

    def wait(self, timeout=120):
        for t in self.threads:
            t.join(timeout)
        return self

    @property
    def acked(self):
        with self.lock:
            return {k for k, v in self.statuses.items() if v in (200, 201)}


def screenings(bootstrap, prefix):
    """This test's screening events on Kafka: message id (an MLLP control id or a
    QuestionnaireResponse identifier with the test's prefix) -> [event ids], and every event
    id's count."""
    by_message, by_event = {}, collections.Counter()
    for ce_id, value in consume_all(bootstrap, "sdoh.screening.v1"):
        event = json.loads(value)
        assert ce_id == event["id"], "the ce_id header carries the event id"
        message_id = event["data"]["source"]["messageId"]
        found = re.search(r"(?:^|\|)(%s-[0-9]+)$" % re.escape(prefix), message_id)
        if found:
            by_message.setdefault(found.group(1), []).append(event["id"])
            by_event[event["id"]] += 1
    return by_message, by_event


def parse_ts(ts):
    """A log line's "ts" (RFC 3339, UTC, milliseconds) as seconds since the epoch."""
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def undelivered(gw):
    status, body = gw.get("/metrics")
    if status != 200:
        return None
    return parse_metrics(body)[0].get("sdoh_outbox_undelivered_events")


class TwoGateways(unittest.TestCase):
    """A PostgreSQL cluster, a mock Kafka cluster, two gateways on both and a balancer for each
    protocol, per test class."""

    @classmethod
    def setUpClass(cls):
        cls.pg = PgCluster().start()
        cls.kafka = MockKafka(partitions=PARTITIONS)
        cls.url = cls.pg.create_database(cls.__name__)
        cls.gateways = []
        try:
            for name in ("gw-a", "gw-b"):
                cls.gateways.append(cls.make_gateway(name))
        except Exception:
            cls.tearDownClass()
            raise
        cls.mllp = RoundRobin([gw.mllp_address for gw in cls.gateways])
        cls.http = RoundRobin([cls.http_address(gw) for gw in cls.gateways])

    KAFKA_PROPERTIES = ""

    @classmethod
    def make_gateway(cls, name):
        kafka = "{ brokers: \"%s\", metadata_interval: 500ms, flush_timeout: 2s%s }" % (
            cls.kafka.bootstrap, cls.KAFKA_PROPERTIES)
        config = "gateway_id: %s\n" % name + STORE % cls.url + CLIENTS
        return Gateway(config=config, env=ENV, kafka=kafka).start(timeout=30)

    @staticmethod
    def http_address(gw):
        host, port = gw.http_url.split("//", 1)[1].rsplit(":", 1)
        return host, int(port)

    @classmethod
    def tearDownClass(cls):
        for proxy in ("mllp", "http"):
            if hasattr(cls, proxy):
                getattr(cls, proxy).close()
        for gw in cls.gateways:
            gw.__exit__(None, None, None)
        cls.kafka.close()
        cls.pg.stop()

    def wait_drained(self, timeout=60):
        """Until the outbox (one, in the database) is empty as every live gateway sees it."""
        live = [gw for gw in self.gateways if gw.proc.poll() is None]
        wait_for(lambda: all(undelivered(gw) == 0 for gw in live), timeout,
                 "the shared outbox to drain:\n" + "\n".join(gw.log()[-2000:] for gw in live))

    def assert_exactly_once(self, acked, by_message, by_event, sent=None):
        lost = sorted(m for m in acked if m not in by_message)
        twice = {m: ids for m, ids in by_message.items() if len(ids) > 1}
        repeated = {e: n for e, n in by_event.items() if n > 1}
        self.assertEqual(lost, [], "every ACKed message is on Kafka")
        self.assertEqual(twice, {}, "each message has one event")
        self.assertEqual(repeated, {}, "each event id is on Kafka once")
        if sent is not None:
            self.assertTrue(set(by_message) <= set(sent), "only messages that were sent")


class TwoGatewaysBehindOneAddress(TwoGateways):
    def test_mllp_and_fhir_load_spread_over_both_is_published_exactly_once(self):
        started = time.monotonic()
        hl7 = MllpLoad(self.mllp, "RR", 600, senders=8).start()
        fhir = FhirLoad(self.http, "QR-RR", 200, senders=4).start()
        hl7.wait()
        fhir.wait()
        elapsed = time.monotonic() - started
        self.wait_drained()
        hl7_found, hl7_events = screenings(self.kafka.bootstrap, "RR")
        fhir_found, fhir_events = screenings(self.kafka.bootstrap, "QR-RR")
        by_gateway = collections.Counter(hl7.answered_by.values())
        print("\n[two gateways] mllp sent=%d acked=%d (gw-a %d, gw-b %d) published=%d; fhir sent=%d "
              "created=%d published=%d; %.1fs; connections mllp %s http %s"
              % (hl7.total, len(hl7.acked), by_gateway[0], by_gateway[1],
                 sum(len(v) for v in hl7_found.values()), fhir.total, len(fhir.acked),
                 sum(len(v) for v in fhir_found.values()), elapsed,
                 dict(self.mllp.taken), dict(self.http.taken)), flush=True)
        self.assertEqual(len(hl7.acked), hl7.total, hl7.codes())
        self.assertEqual(len(fhir.acked), fhir.total, fhir.statuses)
        self.assertGreater(by_gateway[0], hl7.total // 4, "both gateways took MLLP load")
        self.assertGreater(by_gateway[1], hl7.total // 4, "both gateways took MLLP load")
        self.assertGreater(min(self.http.taken[0], self.http.taken[1]), fhir.total // 4,
                           "both gateways took FHIR load")
        self.assert_exactly_once(hl7.acked, hl7_found, hl7_events)
        self.assert_exactly_once(fhir.acked, fhir_found, fhir_events)


class IdenticalResends(TwoGateways):
    def at_once(self, count, call):
        """`count` calls of `call` started together; their results in order."""
        barrier = threading.Barrier(count)
        results = [None] * count

        def one(i):
            barrier.wait()
            results[i] = call(i)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    def test_8_identical_hl7_resends_over_both_gateways_give_one_event(self):
        frame = hl7_message("SAME-00001")

        def send(_):
            with socket.create_connection(self.mllp.address, timeout=30) as s:
                ack = mllp_roundtrip(s, frame)
                return ack, self.mllp.backend_of(s.getsockname()[1])

        answers = self.at_once(8, send)
        self.assertEqual({b for _, b in answers}, {0, 1}, "the resends went to both gateways")
        for ack, _ in answers:
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
            self.assertEqual(hl7_field(ack, "MSA", 2), "SAME-00001", ack)
        self.assertEqual(len({ack for ack, _ in answers}), 1,
                         "every resend gets the same answer: %r" % answers)
        self.wait_drained()  # an event a resend wrongly added would be on Kafka now
        found, by_event = screenings(self.kafka.bootstrap, "SAME")
        print("\n[identical resends, MLLP] 8 sent, answers from gateways %s, events %s"
              % (collections.Counter(b for _, b in answers), found), flush=True)
        self.assertEqual(len(found.get("SAME-00001", [])), 1, found)
        self.assertEqual(max(by_event.values()), 1)

    def test_8_identical_conditional_creates_over_both_gateways_give_one_resource(self):
        identifier = "QR-SAME-00001"
        system = QR_TEMPLATE["identifier"]["system"]
        body = qr_body(identifier)
        condition = "identifier=%s|%s" % (system, identifier)

        def create(_):
            return http_call(self.http.url + "/fhir/QuestionnaireResponse", "POST", body,
                             headers={"If-None-Exist": condition})

        answers = self.at_once(8, create)
        statuses = [a[0] for a in answers]
        self.assertTrue(all(s in (200, 201) for s in statuses), answers)
        locations = {re.sub(r"^https?://[^/]+", "", a[1].get("Location", "")).split("/_history")[0]
                     for a in answers}
        self.assertEqual(len(locations), 1, locations)
        self.assertRegex(locations.pop(), r"^/fhir/QuestionnaireResponse/[A-Za-z0-9.-]+$")
        self.assertGreaterEqual(min(self.http.taken[0], self.http.taken[1]), 4,
                                "the creates went to both gateways")
        self.wait_drained()
        found, by_event = screenings(self.kafka.bootstrap, "QR-SAME")
        print("\n[identical resends, FHIR] 8 conditional creates: statuses %s, events %s"
              % (collections.Counter(statuses), found), flush=True)
        self.assertEqual(len(found.get(identifier, [])), 1, found)
        self.assertEqual(max(by_event.values()), 1)
        # One resource: the store has one QuestionnaireResponse of that identifier.
        count = self.pg.psql("SELECT count(DISTINCT id) FROM resource_history "
                             "WHERE type = 'QuestionnaireResponse' "
                             "AND convert_from(json, 'UTF8') LIKE '%%%s%%'" % identifier,
                             self.url.rsplit("/", 1)[1])
        self.assertEqual(count, "1")


class KillNineOneGateway(TwoGateways):
    def test_kill_9_one_gateway_mid_load_and_the_other_takes_over_its_relay(self):
        # About 250 messages/s, for some 6 seconds.
        load = MllpLoad(self.mllp, "K9", 1500, senders=6, pause=0.02).start()
        wait_for(lambda: len(load.acked) >= 300, 60, "300 ACKs")
        # The victim is the gateway that holds most of the relay's buckets (its lease owner
        # names its process), so that there is a relay to take over.
        owners = collections.Counter(self.pg.psql("SELECT owner FROM relay_leases",
                                                  self.url.rsplit("/", 1)[1]).split())
        pids = [gw.proc.pid for gw in self.gateways]
        held = [sum(n for o, n in owners.items() if ":%d:" % pid in o) for pid in pids]
        victim_index = 0 if held[0] >= held[1] else 1
        victim = self.gateways[victim_index]
        # Kafka stops acknowledging for a moment, so that at the kill every bucket (the victim's
        # too) holds events that were ACKed and not yet published: the takeover has work to do.
        self.kafka.command("down")
        down_at = time.monotonic()
        time.sleep(1.0)
        victim.proc.send_signal(signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()
        victim.proc.wait()
        self.kafka.command("up")
        # An ACK read just before the kill may be recorded just after it: half a second's grace.
        acked_before_kill = {c for c in load.acked if load.answered_at[c] < killed_at + 0.5}
        by_victim = {c for c in acked_before_kill if load.answered_by[c] == victim_index}
        unpublished = {c for c in acked_before_kill if load.answered_at[c] > down_at}

        # The time from the kill until every message ACKed before it is on Kafka.
        def all_published():
            found, _ = screenings(self.kafka.bootstrap, "K9")
            return set(found) >= acked_before_kill
        wait_for(all_published, 30, "the messages ACKed before the kill on Kafka")
        takeover = time.monotonic() - killed_at
        load.wait()
        self.wait_drained()
        acked = load.acked
        found, by_event = screenings(self.kafka.bootstrap, "K9")
        survivor = self.gateways[1 - victim_index]
        taken = [e for e in survivor.log_events() if e.get("event") == "store.relay_leases_taken"
                 and parse_ts(e["ts"]) > killed_wall]
        leases_taken = parse_ts(taken[0]["ts"]) - killed_wall if taken else None
        after_kill = collections.Counter(load.answered_by[c] for c in acked - acked_before_kill)
        print("\n[kill -9] relay buckets held %s; sent=%d acked=%d (before the kill %d, %d of them by "
              "the killed gateway, %d while Kafka was down; after it %s) published=%d; every ACK of "
              "before the kill on Kafka %.2fs after it, the survivor's leases taken %s after it "
              "(lease %.0fs)"
              % (held, len(load.codes()), len(acked), len(acked_before_kill), len(by_victim),
                 len(unpublished), dict(after_kill), sum(len(v) for v in found.values()), takeover,
                 "%.2fs" % leases_taken if leases_taken is not None else "never", LEASE_SECONDS),
              flush=True)
        self.assertIsNotNone(leases_taken, "the survivor logs that it took the buckets over")
        # The holder renews every lease/3 and the others look as often: a dead holder's buckets
        # are taken at most lease + lease/3 after its last renewal.
        self.assertLess(leases_taken, LEASE_SECONDS * 4 / 3 + 0.5, "the survivor takes the buckets "
                        "over within the lease")
        self.assertGreater(len(unpublished), 50, "the kill left ACKed events unpublished")
        self.assertGreater(held[victim_index], 0, "the killed gateway held relay buckets")
        self.assertGreater(len(by_victim), 100, "the killed gateway had ACKed messages")
        self.assertGreater(len(acked - acked_before_kill), 300, "the survivor went on ACKing")
        self.assertEqual(set(after_kill), {1 - victim_index}, "only the survivor ACKs after the kill")
        self.assert_exactly_once(acked, found, by_event, load.codes())
        # The margin: the producer's reconnection after Kafka's outage and the survivor's
        # reconciliation of the buckets it took.
        self.assertLess(takeover, LEASE_SECONDS + 3.0,
                        "every event ACKed before the kill is on Kafka within the lease and a margin")


class ConcurrentUpdates(TwoGateways):
    ROUNDS = 6
    # librdkafka 2.0's mock group coordinator sometimes loses a member's SyncGroup when the second
    # gateway joins; the group forms again only once that member's session expires (45s by
    # default): a short session keeps the wait short.
    KAFKA_PROPERTIES = ", properties: { session.timeout.ms: \"6000\", heartbeat.interval.ms: \"1000\" }"

    def new_referral(self, n):
        bundle = REFERRAL_BUNDLE.replace("BUNDLE-A-0002", "BUNDLE-RACE-%d" % n) \
            .replace("QR-A-0002", "QR-RACE-%d" % n).replace("REF-2026-0002", "REF-RACE-%d" % n)
        status, _, body = http_call(self.http.url + "/fhir", "POST", bundle.encode())
        self.assertEqual(status, 200, body)
        return next(e["response"]["location"] for e in json.loads(body)["entry"]
                    if e["response"]["location"].startswith("Task/")).split("/")[1]

    def test_the_agencys_update_and_the_clinics_cancel_race_on_two_gateways(self):
        outcomes, refusals = collections.Counter(), collections.Counter()
        tasks = {}
        for n in range(self.ROUNDS):
            task_id = self.new_referral(n)
            # The agency rejects, the clinic cancels: both end the referral, so one of them wins
            # whatever the order, and the other is refused. Each on its own gateway, alternating.
            agency_gw, clinic_gw = (self.gateways if n % 2 == 0 else self.gateways[::-1])
            reject = json.dumps([
                {"op": "replace", "path": "/status", "value": "rejected"},
                {"op": "add", "path": "/statusReason", "value": {"text": "No capacity"}}]).encode()
            cancel = json.dumps([
                {"op": "replace", "path": "/status", "value": "cancelled"},
                {"op": "add", "path": "/statusReason", "value": {"text": "Family moved"}}]).encode()
            barrier = threading.Barrier(2)
            answers = {}

            def patch(who, gw, token, body):
                barrier.wait()
                answers[who] = http_call(gw.http_url + "/fhir/Task/" + task_id, "PATCH", body, token=token,
                                         headers={"Content-Type": "application/json-patch+json"})

            threads = [threading.Thread(target=patch, args=("agency", agency_gw, AGENCY_TOKEN, reject)),
                       threading.Thread(target=patch, args=("clinic", clinic_gw, CLINIC_TOKEN, cancel))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            statuses = {who: a[0] for who, a in answers.items()}
            winners = [who for who, s in statuses.items() if s == 200]
            self.assertEqual(len(winners), 1, answers)
            loser = "clinic" if winners[0] == "agency" else "agency"
            self.assertEqual(statuses[loser], 409, answers[loser])
            # Refused either at the commit (the version it read is gone) or by the lifecycle
            # (it read the winner's final state): the latter is also a dead letter.
            lost_at = "commit" if "changed while" in answers[loser][2] else "lifecycle"
            outcomes[winners[0]] += 1
            refusals[lost_at] += 1
            tasks[task_id] = "rejected" if winners[0] == "agency" else "cancelled"

        self.wait_drained()
        letters = self.dead_letters()
        lifecycle_letters = [d for d in letters if d["stage"] == "lifecycle"
                             and d["source"]["messageType"].startswith("Task-")]
        print("\n[concurrent updates] %d races on two gateways, won by %s; the other refused at %s"
              % (self.ROUNDS, dict(outcomes), dict(refusals)), flush=True)
        self.assertEqual(len(lifecycle_letters), refusals["lifecycle"], letters)
        self.assert_histories(tasks)

    def test_the_agencys_update_on_kafka_and_the_clinics_cancel_race(self):
        # The agencies' update topic is read by one consumer group across both gateways: each
        # update is applied by one of them. The clinic's cancel goes through the balancer, a
        # little later each round, so that the two meet at different points (before, during and
        # after the update's commit).
        def assigned():
            return [re.search(r": ([0-9]+) partition\(s\) assigned", gw.get("/readyz")[1]) for gw in self.gateways]
        try:
            wait_for(lambda: all(a and a.group(1) != "0" for a in assigned()), 30,
                     "both update consumers to have partitions")
        except AssertionError:
            print([a and a.group(0) for a in assigned()], [
                [l for l in gw.log().splitlines() if "kafka.updates" in l or "consumer" in l][-5:]
                for gw in self.gateways])
            raise
        finals, letters_expected = {}, {}
        for n in range(self.ROUNDS):
            task_id = self.new_referral(100 + n)
            update_id = "race-update-%d" % n
            event = {"specversion": "1.0", "id": update_id, "source": "urn:sdoh-agency:ehv-durham",
                     "type": "org.sdoh.referral.update.v1", "subject": task_id,
                     "time": "2026-11-25T10:00:00Z", "datacontenttype": "application/json",
                     "dataschema": "urn:sdoh:schema:referral-update:v1",
                     "data": {"referralId": task_id, "status": "rejected", "businessStatus": "no-capacity",
                              "reason": "No capacity", "agency": {"id": "ehv-durham"},
                              "time": "2026-11-25T10:00:00Z"}}
            cancel = json.dumps([
                {"op": "replace", "path": "/status", "value": "cancelled"},
                {"op": "add", "path": "/statusReason", "value": {"text": "Family moved"}}]).encode()
            producer = subprocess.Popen(["kcat", "-b", self.kafka.bootstrap, "-P", "-t",
                                         "sdoh.referral-updates.v1", "-k", task_id],
                                        stdin=subprocess.PIPE, text=True)
            producer.communicate(json.dumps(event) + "\n", timeout=30)
            self.assertEqual(producer.returncode, 0)
            time.sleep(0.1 + 0.08 * n)  # the consumer applies an update some 0.2-0.5s after it
            status, _, body = http_call(self.http.url + "/fhir/Task/" + task_id, "PATCH", cancel,
                                        headers={"Content-Type": "application/json-patch+json"})
            self.assertIn(status, (200, 409), body)
            if status == 200:
                finals[task_id] = "cancelled"
                letters_expected[update_id] = task_id  # the agency's update is refused, kept
            else:
                finals[task_id] = "rejected"

        def settled():
            for task_id, final in finals.items():
                got = http_call(self.http.url + "/fhir/Task/" + task_id)
                if got[0] != 200 or json.loads(got[2])["status"] != final:
                    return False
            return True
        wait_for(settled, 30, "every referral in its final state")
        wait_for(lambda: {d["source"]["messageId"] for d in self.dead_letters()} >= set(letters_expected),
                 30, "the refused updates' dead letters")
        self.wait_drained()
        letters = [d for d in self.dead_letters() if d["source"]["messageId"].startswith("race-update-")]
        print("\n[concurrent updates, Kafka] %d races: %s" % (
            self.ROUNDS, dict(collections.Counter(finals.values()))), flush=True)
        self.assertEqual(sorted(d["source"]["messageId"] for d in letters), sorted(letters_expected),
                         "one dead letter for each update that lost, none for those that won")
        self.assertTrue(all(d["stage"] == "lifecycle" for d in letters), letters)
        self.assert_histories(finals)

    def dead_letters(self):
        return [json.loads(v)["data"] for _, v in consume_all(self.kafka.bootstrap, "sdoh.deadletter.v1")]

    def assert_histories(self, finals):
        """Each referral: two Task versions (requested, then the winner's) and two status events
        with sequences 1 and 2."""
        status_events = collections.defaultdict(list)
        for _, value in consume_all(self.kafka.bootstrap, "sdoh.referral-status.v1"):
            event = json.loads(value)
            if event["data"]["referralId"] in finals:
                status_events[event["data"]["referralId"]].append(event["data"])
        for task_id, final in finals.items():
            status, _, body = http_call(self.http.url + "/fhir/Task/%s/_history" % task_id)
            self.assertEqual(status, 200, body)
            history = [(e["resource"]["meta"]["versionId"], e["resource"]["status"])
                       for e in json.loads(body)["entry"]]
            self.assertEqual(history, [("2", final), ("1", "requested")])
            events = sorted(status_events[task_id], key=lambda d: d["sequence"])
            self.assertEqual([(d["sequence"], d["previousStatus"], d["status"]) for d in events],
                             [(1, None, "requested"), (2, "requested", final)], events)


class DatabaseRestart(TwoGateways):
    def test_database_down_mid_load_gives_negative_answers_and_loses_nothing_acked(self):
        hl7 = MllpLoad(self.mllp, "DB", 100000, senders=4, pause=0.02).start()
        fhir = FhirLoad(self.http, "QR-DB", 100000, senders=2, pause=0.05).start()
        wait_for(lambda: len(hl7.acked) >= 100 and len(fhir.acked) >= 20, 60, "ACKs before the outage")
        self.pg.stop_server()
        stopped_at = time.monotonic()
        # While it is down: the gateways say they are not ready, and senders get negative answers.
        not_ready = {}
        for i, gw in enumerate(self.gateways):
            not_ready[i] = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(gw.get("/readyz")), 20,
                                    "gw %d to be not ready" % i)
        time.sleep(2)
        negative_hl7 = {c: v for c, v in hl7.codes().items() if v in ("AE", "AR", "CE", "CR")}
        negative_fhir = {k: v for k, v in fhir.statuses.items() if v == 503}
        self.pg.start_server()
        restarted_at = time.monotonic()
        outage = restarted_at - stopped_at
        acked_before = len(hl7.acked) + len(fhir.acked)
        wait_for(lambda: len(hl7.acked) + len(fhir.acked) >= acked_before + 100, 60,
                 "ACKs after the database is back")
        for gw in self.gateways:
            gw.wait_ready(30)
        hl7.stop.set()
        fhir.stop.set()
        hl7.wait()
        fhir.wait()
        self.wait_drained()
        hl7_found, hl7_events = screenings(self.kafka.bootstrap, "DB")
        fhir_found, fhir_events = screenings(self.kafka.bootstrap, "QR-DB")
        print("\n[database restart] down %.1fs; mllp sent=%d acked=%d negative=%d (%s); fhir sent=%d "
              "created=%d 503=%d; published %d + %d"
              % (outage, len(hl7.codes()), len(hl7.acked), len(negative_hl7),
                 dict(collections.Counter(negative_hl7.values())), len(fhir.statuses), len(fhir.acked),
                 len(negative_fhir), sum(len(v) for v in hl7_found.values()),
                 sum(len(v) for v in fhir_found.values())), flush=True)
        for i, (status, body) in not_ready.items():
            self.assertIn("store", body, "gw %d's /readyz names the store: %s" % (i, body))
        self.assertTrue(negative_hl7, "MLLP senders got negative ACKs while the database was down")
        self.assertTrue(negative_fhir, "FHIR senders got 503 while the database was down")
        after = {hl7.answered_by[c] for c in hl7.acked if hl7.answered_at[c] > restarted_at}
        self.assertEqual(after, {0, 1}, "both gateways ACK again once the database is back")
        self.assert_exactly_once(hl7.acked, hl7_found, hl7_events, hl7.codes())
        self.assert_exactly_once(fhir.acked, fhir_found, fhir_events, fhir.statuses)


class ReadOnlyStandby(unittest.TestCase):
    """/readyz reports the database's replication role: a gateway whose store.url names a
    read-only standby (a streaming replica of the primary) is not ready, and says why."""

    def test_a_gateway_on_a_standby_is_not_ready_and_says_so(self):
        with PgCluster() as pg:
            url = pg.create_database("standby_test")
            kafka = "{ brokers: \"\", metadata_interval: 500ms }"
            with Gateway(config=STORE % url + CLIENTS, env=ENV, kafka=kafka) as gw:
                status, body = gw.get("/readyz")
                self.assertEqual(status, 200, body)
                self.assertIn("PostgreSQL primary", json.loads(body)["checks"]["store"]["detail"])
            standby = pg.start_standby()
            try:
                replica_url = url.replace(":%d/" % pg.port, ":%d/" % standby.port)
                replica = Gateway(config=STORE % replica_url + CLIENTS, env=ENV, kafka=kafka)
                try:
                    replica.start(wait_ready=False, timeout=30)
                    wait_for(lambda: replica.get("/readyz")[0] == 503, 15,
                             "/readyz to say not ready on a standby:\n" + replica.log()[-2000:])
                    status, body = replica.get("/readyz")
                    store = json.loads(body)["checks"]["store"]
                    self.assertFalse(store["ok"], body)
                    self.assertIn("read-only standby", store["detail"])
                finally:
                    replica.__exit__(None, None, None)
            finally:
                standby.stop()


if __name__ == "__main__":
    unittest.main()
