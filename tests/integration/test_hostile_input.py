"""Hostile input and overload against the real binary: what an attacker (or one broken sender)
sends must never crash, exhaust or poison the gateway. After every attack the test shows that the
gateway is alive and that a valid message still gets its ACK or 201.

Covers: JSON nested deep enough to overflow a recursive parser (HTTP body and Kafka update record,
before and after a restart), invalid UTF-8 and escaped lone surrogates, bytes after the JSON value,
duplicate member names, unusable HL7 delimiters, two processes on one data directory, and the
outbox backlog bound during a broker outage (RSS bounded, nothing accepted lost)."""
import json
import os
import socket
import subprocess
import time
import unittest

from harness import (BINARY, SAMPLES, Gateway, MockKafka, consume_all, hl7_field, mllp_exchange,
                     mllp_roundtrip, parse_metrics, run, wait_for)

with open(os.path.join(SAMPLES, "fhir", "questionnaireresponse-hunger-vital-sign.json"), "rb") as f:
    QR = f.read()
with open(os.path.join(SAMPLES, "hl7v2", "oru-r01-hunger-vital-sign-negative.hl7"), "rb") as f:
    ORU = f.read().replace(b"\r\n", b"\r").replace(b"\n", b"\r")

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def post_qr(gw, body=QR):
    return gw.request("POST", "/fhir/QuestionnaireResponse", body=body, headers=FHIR_JSON)


def oru(control_id):
    return ORU.replace(b"B2000017", control_id.encode()).replace(b"44120^^^", control_id.encode() + b"^^^")


def metrics(gw):
    status, body = gw.get("/metrics")
    assert status == 200
    return parse_metrics(body)[0]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def diagnostics(body):
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome", body
    return outcome["issue"][0]["diagnostics"]


class HostileJson(unittest.TestCase):
    """One gateway; each attack then a valid QuestionnaireResponse that must get 201."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def assert_alive(self):
        status, body = self.gw.get("/healthz")
        self.assertEqual(status, 200)
        status, body = post_qr(self.gw)
        self.assertIn(status, (200, 201), body)

    def assert_refused(self, body, *expected):
        status, answer = post_qr(self.gw, body)
        self.assertEqual(status, 400, answer)
        text = diagnostics(answer)
        for e in expected:
            self.assertIn(e, text)
        self.assert_alive()
        return text

    def test_110000_open_brackets_are_refused_not_a_crash(self):
        # 110 KB of '[' overflowed the recursive parser's stack: segfault, every connection lost.
        self.assert_refused(b"[" * 110_000, "nested deeper than 64 levels", "at byte offset 64")

    def test_150000_nested_objects_are_refused_not_a_crash(self):
        self.assert_refused(b'{"a":' * 150_000, "nested deeper than 64 levels")

    def test_invalid_utf8_is_refused_naming_the_byte_offset(self):
        body = QR.rstrip()[:-1] + b', "text": "caf\xed\xa0\x80"}'
        text = self.assert_refused(body, "invalid UTF-8 at byte offset")
        offset = int(text.rsplit(" ", 1)[1])
        bad = body.index(b"\xed\xa0\x80")
        self.assertTrue(bad <= offset <= bad + 3, "offset %d names the bad bytes at %d" % (offset, bad))

    def test_an_escaped_lone_surrogate_is_refused(self):
        self.assert_refused(QR.rstrip()[:-1] + b', "text": "\\udc00"}', "not valid UTF-8")

    def test_bytes_after_the_json_value_are_refused(self):
        self.assert_refused(QR.rstrip() + b"\x00garbage", "unexpected bytes after the JSON value")

    def test_duplicate_member_names_are_refused(self):
        body = QR.rstrip()[:-1] + b', "status": "amended"}'
        self.assert_refused(body, 'duplicate member name "status"')

    def test_each_refusal_is_a_dead_letter_with_valid_json_on_kafka(self):
        before = metrics(self.gw).get("sdoh_dead_letters_stored", 0)
        self.assert_refused(QR.rstrip()[:-1] + b', "text": "\xff"}', "invalid UTF-8")
        wait_for(lambda: metrics(self.gw).get("sdoh_dead_letters_stored", 0) == before + 1, 10,
                 "the dead letter")
        events = wait_for(lambda: [v for _, v in consume_all(self.gw.bootstrap, "sdoh.deadletter.v1")
                                   if "invalid UTF-8" in v], 15, "the dead-letter event")
        for value in events:
            json.loads(value)  # strict: the raw bytes are never copied into an event
            value.encode("utf-8")


class PoisonUpdateRecord(unittest.TestCase):
    """A record on the agency update topic that crashed the parser crashed the gateway again at
    every restart (its offset was never committed). Now it is a dead letter and the consumer
    moves on, before and after a restart. The broker is a process of its own, so the record is
    still there when the gateway comes back."""

    def produce(self, bootstrap, key, value):
        out = run(["kcat", "-b", bootstrap, "-P", "-t", "sdoh.referral-updates.v1", "-k", key],
                  input=value.decode("latin-1"))
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_a_deeply_nested_record_is_dead_lettered_and_its_offset_committed(self):
        with MockKafka(partitions=1) as kafka:
            config = "{ brokers: \"%s\", metadata_interval: 500ms, flush_timeout: 2s }" % kafka.bootstrap
            gw = Gateway(kafka=config)
            try:
                gw.start()
                self.produce(kafka.bootstrap, "poison-1", b"[" * 110_000)
                self.produce(kafka.bootstrap, "poison-2", b'{"a":' * 150_000)
                wait_for(lambda: metrics(gw).get('sdoh_kafka_updates_total{outcome="dead_lettered"}') == 2,
                         30, "both records dead-lettered")
                wait_for(lambda: metrics(gw).get("sdoh_kafka_updates_lag") == 0, 30,
                         "the offsets committed")
                self.assertEqual(metrics(gw).get("sdoh_dead_letters_stored"), 2)
                stages = [json.loads(v)["data"]["stage"]
                          for _, v in consume_all(kafka.bootstrap, "sdoh.deadletter.v1")]
                self.assertEqual(stages.count("parse"), 2, stages)
                self.assertEqual(gw.stop(), 0)

                # Restarted: the records are not handed over again, the process stays up.
                gw.log_file.close()
                gw.start()
                wait_for(lambda: metrics(gw).get("sdoh_kafka_updates_lag") == 0, 30,
                         "the consumer caught up")
                m = metrics(gw)
                self.assertEqual(m.get('sdoh_kafka_updates_total{outcome="dead_lettered"}', 0), 0)
                self.assertEqual(m.get("sdoh_dead_letters_stored"), 2)
                self.assertIsNone(gw.proc.poll())
                status, body = post_qr(gw)
                self.assertEqual(status, 201, body)
                self.assertEqual(gw.stop(), 0)
            finally:
                gw.__exit__(None, None, None)


class Hl7Delimiters(unittest.TestCase):
    def test_unusable_field_separators_get_ar_with_err_102_naming_msh1(self):
        with Gateway() as gw:
            for sep in (b"\x00", b"\xff", b"\x0b", b"A"):
                msh = oru("SEP-%02X" % sep[0]).replace(b"|", sep)
                with socket.create_connection(gw.mllp_address, timeout=10) as s:
                    s.sendall(b"\x0b" + msh + b"\x1c\r")
                    data = b""
                    while not data.endswith(b"\x1c\r"):
                        chunk = s.recv(65536)
                        self.assertTrue(chunk, "the gateway answered")
                        data += chunk
                self.assertTrue(data.startswith(b"\x0b"))
                # The start block only at the frame's start: never inside the answer.
                self.assertEqual(data.count(b"\x0b"), 1, data)
                ack = data[1:-2].decode()
                self.assertEqual(hl7_field(ack, "MSA", 1), "AR", ack)
                self.assertEqual(hl7_field(ack, "ERR", 2), "MSH^1^1", ack)
                self.assertEqual(hl7_field(ack, "ERR", 3).split("^")[0], "102", ack)
            [ack] = mllp_exchange(gw.mllp_address, [oru("SEP-OK")])
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)

    def test_repeated_encoding_characters_get_ar_naming_msh2(self):
        with Gateway() as gw:
            [ack] = mllp_exchange(gw.mllp_address, [oru("ENC-DUP").replace(b"^~\\&", b"^^\\&", 1)])
            self.assertEqual(hl7_field(ack, "MSA", 1), "AR", ack)
            self.assertEqual(hl7_field(ack, "ERR", 2), "MSH^1^2", ack)
            self.assertEqual(hl7_field(ack, "ERR", 3).split("^")[0], "102", ack)
            [ack] = mllp_exchange(gw.mllp_address, [oru("ENC-OK")])
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)


class DataDirectoryLock(unittest.TestCase):
    def test_a_second_gateway_on_the_same_data_dir_refuses_to_start(self):
        with Gateway() as first:
            with open(first.config_path) as f:
                second = Gateway(base_config=f.read())
            try:
                second.log_file = open(second.log_path, "w")
                proc = subprocess.Popen([BINARY, "--config", second.config_path],
                                        stdout=second.log_file, stderr=subprocess.STDOUT, cwd=second.dir)
                code = proc.wait(timeout=30)
                self.assertEqual(code, 1)
                refusal = [e for e in second.log_events() if e.get("event") == "gateway.startup_failed"]
                self.assertTrue(refusal, second.log())
                self.assertEqual(refusal[0]["component"], "data_dir")
                self.assertIn("in use by another sdoh-gateway (pid %d)" % first.proc.pid,
                              refusal[0]["reason"])
            finally:
                second.__exit__(None, None, None)
            # The first one never noticed.
            status, body = post_qr(first)
            self.assertEqual(status, 201, body)
            self.assertEqual(first.stop(), 0)


class BacklogBound(unittest.TestCase):
    """Every broker down: the outbox fills up to store.max_backlog_events, then new work is
    refused at once (HTTP 503 + Retry-After, MLLP AE with ERR 207) and /readyz says why. Memory
    stays bounded while the refusals go on; once Kafka is back the backlog drains, every accepted
    message is published exactly once, and new messages are accepted again."""

    LIMIT = 300

    def test_a_full_backlog_refuses_new_work_and_loses_nothing(self):
        with MockKafka(partitions=4) as kafka:
            config = "{ brokers: \"%s\", metadata_interval: 500ms, flush_timeout: 2s }" % kafka.bootstrap
            with Gateway(config="store: { max_backlog_events: %d }\n" % self.LIMIT,
                         kafka=config) as gw:
                kafka.command("down")
                accepted, refused_at = [], None
                with socket.create_connection(gw.mllp_address, timeout=30) as s:
                    for i in range(self.LIMIT * 2):
                        control_id = "BL-%05d" % i
                        ack = mllp_roundtrip(s, oru(control_id))
                        code = hl7_field(ack, "MSA", 1)
                        if code == "AA":
                            accepted.append(control_id)
                            continue
                        self.assertIn(code, ("AE", "CE"), ack)
                        self.assertEqual(hl7_field(ack, "ERR", 3).split("^")[0], "207", ack)
                        self.assertIn("try again later", hl7_field(ack, "ERR", 8))
                        refused_at = i
                        break
                # Each screening is one event: the limit is reached after exactly LIMIT messages.
                self.assertEqual(refused_at, self.LIMIT)
                self.assertEqual(len(accepted), self.LIMIT)

                status, body = gw.get("/readyz")
                self.assertEqual(status, 503)
                backlog = json.loads(body)["checks"]["backlog"]
                self.assertFalse(backlog["ok"])
                self.assertIn("store.max_backlog_events", backlog["detail"])

                out = gw.curl("-i", "-X", "POST", gw.http_url + "/fhir/QuestionnaireResponse",
                              "-H", "Content-Type: application/fhir+json", "--data-binary",
                              "@" + os.path.join(SAMPLES, "fhir", "questionnaireresponse-hunger-vital-sign.json"))
                self.assertIn("HTTP/1.1 503", out.stdout)
                self.assertIn("Retry-After:", out.stdout)

                # Refusals cost no memory: 3,000 more attempts leave RSS where it was.
                before = rss_kib(gw.proc.pid)
                with socket.create_connection(gw.mllp_address, timeout=30) as s:
                    for i in range(3000):
                        ack = mllp_roundtrip(s, oru("BR-%05d" % i))
                        self.assertIn(hl7_field(ack, "MSA", 1), ("AE", "CE"))
                after = rss_kib(gw.proc.pid)
                print("\n[backlog] limit=%d accepted=%d RSS before/after 3000 refusals: %d/%d KiB"
                      % (self.LIMIT, len(accepted), before, after), flush=True)
                self.assertLess(after - before, 8 * 1024, "RSS grew by more than 8 MiB")

                kafka.command("up")
                wait_for(lambda: metrics(gw).get("sdoh_outbox_undelivered_events") == 0, 120,
                         "the backlog to drain")
                published = {}
                for ce_id, value in consume_all(kafka.bootstrap, "sdoh.screening.v1"):
                    control_id = json.loads(value)["data"]["source"]["messageId"]
                    if control_id.startswith("BL-") or control_id.startswith("BR-"):
                        published.setdefault(control_id, []).append(ce_id)
                self.assertEqual(sorted(published), sorted(accepted), "exactly what was ACKed")
                self.assertTrue(all(len(v) == 1 for v in published.values()), "none twice")

                gw.wait_ready(10)
                [ack] = mllp_exchange(gw.mllp_address, [oru("BL-AFTER")])
                self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
                status, body = post_qr(gw)
                self.assertEqual(status, 201, body)
                self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    unittest.main()
