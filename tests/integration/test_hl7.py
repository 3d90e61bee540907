"""HL7 v2 over MLLP with the real binary: the shared samples sent with mllp_send (python3-hl7)
and raw MLLP sockets, ACKs checked field by field, events consumed with kcat and validated
against the event schemas."""
import json
import os
import time
import unittest

from harness import (SAMPLES, Gateway, assert_valid_events, consume, hl7_field, mllp_exchange,
                     mllp_expect_silence, mllp_read_frames, parse_metrics, run, wait_for)

HL7 = os.path.join(SAMPLES, "hl7v2")


def sample(name):
    with open(os.path.join(HL7, name), "rb") as f:
        return f.read()


class Hl7Ingest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway().start()

    @classmethod
    def tearDownClass(cls):
        code = cls.gw.stop()
        cls.gw.__exit__(None, None, None)
        assert code == 0

    def screenings(self, expect_at_least=0):
        pairs = consume(self.gw.bootstrap, "sdoh.screening.v1", expect_at_least)
        assert_valid_events([v for _, v in pairs])
        return [(k, json.loads(v)) for k, v in pairs]

    def screening_for(self, control_id, timeout=15):
        """The screening event of one message, waiting for the relay to publish it."""
        deadline = time.monotonic() + timeout
        while True:
            for key, event in self.screenings():
                if event["data"]["source"]["messageId"] == control_id:
                    return key, event
            if time.monotonic() > deadline:
                self.fail("no screening event for " + control_id)
            time.sleep(0.2)

    def dead_letters_for(self, predicate, timeout=15):
        """Dead-letter events matching `predicate`, waiting for the relay to publish one."""
        deadline = time.monotonic() + timeout
        while True:
            found = [d for d in self.dead_letters() if predicate(d)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def dead_letters(self, expect_at_least=0):
        pairs = consume(self.gw.bootstrap, "sdoh.deadletter.v1", expect_at_least)
        assert_valid_events([v for _, v in pairs])
        return [json.loads(v) for _, v in pairs]

    def test_ahc_hrsn_gets_commit_accept_and_a_screening_event(self):
        out = run(["mllp_send", "--loose", "--file", os.path.join(HL7, "oru-r01-ahc-hrsn-positive.hl7"),
                   "--port", str(self.gw.mllp_address[1]), self.gw.mllp_address[0]])
        self.assertEqual(out.returncode, 0, out.stderr)
        ack = out.stdout
        self.assertEqual(hl7_field(ack, "MSA", 1), "CA")  # MSH-15 AL: enhanced mode
        self.assertEqual(hl7_field(ack, "MSA", 2), "A1000001")
        self.assertEqual(hl7_field(ack, "MSH", 5), "EHR")
        self.assertEqual(hl7_field(ack, "MSH", 6), "PEDS_CLINIC_A")
        key, event = self.screening_for("A1000001")
        data = event["data"]
        self.assertEqual(event["type"], "org.sdoh.screening.v1")
        self.assertEqual(key, data["patient"]["pseudonym"])
        self.assertEqual(data["instrument"]["id"], "ahc-hrsn")
        status = {d["category"]: d["status"] for d in data["domains"]}
        self.assertEqual(status["housing-instability"], "positive")
        self.assertEqual(status["food-insecurity"], "positive")
        self.assertEqual(status["transportation-insecurity"], "negative")
        self.assertEqual(status["utility-insecurity"], "negative")
        self.assertEqual(data["equity"]["zip3"], "277")
        self.assertEqual(data["equity"]["race"][0]["code"], "2106-3")
        self.assertEqual(data["equity"]["ethnicity"][0]["code"], "2135-2")
        text = json.dumps(event)
        for phi in ("Garcia", "Sofia", "MRN12345", "8675309", "Elm St", "5551234"):
            self.assertNotIn(phi, text)

    def test_resend_gets_the_same_ack_and_no_new_event(self):
        first = mllp_exchange(self.gw.mllp_address, [sample("oru-r01-hunger-vital-sign-negative.hl7")])[0]
        self.screening_for("B2000017")
        before = [e for _, e in self.screenings(1) if e["data"]["source"]["messageId"] == "B2000017"]
        again = mllp_exchange(self.gw.mllp_address, [sample("oru-r01-hunger-vital-sign-negative.hl7")])[0]
        self.assertEqual(again, first, "a resend is answered with the stored ACK")
        self.assertEqual(hl7_field(first, "MSA", 1), "AA")
        self.gw.wait_drained()  # an event the resend wrongly added would be on Kafka now
        after = [e for _, e in self.screenings(1) if e["data"]["source"]["messageId"] == "B2000017"]
        self.assertEqual(len(before), 1)
        self.assertEqual(len(after), 1)
        self.assertEqual({d["category"]: d["status"] for d in after[0]["data"]["domains"]},
                         {"food-insecurity": "negative"})

    def test_escaped_control_id_is_echoed_as_sent(self):
        ack = mllp_exchange(self.gw.mllp_address, [sample("oru-r01-escapes-crlf-v23.hl7")])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA")
        self.assertEqual(hl7_field(ack, "MSA", 2), "C3\\T\\01")
        self.assertEqual(hl7_field(ack, "MSH", 12), "2.3")
        _, event = self.screening_for("C3&01")
        self.assertEqual({d["category"]: d["status"] for d in event["data"]["domains"]}["food-insecurity"], "positive")

    def test_batch_is_answered_with_a_batch_of_acks(self):
        answer = mllp_exchange(self.gw.mllp_address, [sample("batch-two-screenings.hl7")])[0]
        self.assertTrue(answer.startswith("BHS|"), answer)
        self.assertEqual(hl7_field(answer, "MSA", 2, 1), "B2000101")
        self.assertEqual(hl7_field(answer, "MSA", 2, 2), "B2000102")
        self.assertEqual(hl7_field(answer, "BTS", 1), "2")
        self.screening_for("B2000101")
        self.screening_for("B2000102")

    def test_missing_obx_code_is_ae_naming_obx_1_3_with_a_dead_letter(self):
        ack = mllp_exchange(self.gw.mllp_address, [sample("bad-missing-obx-code.hl7")])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AE")
        self.assertEqual(hl7_field(ack, "MSA", 2), "A1000010")
        self.assertEqual(hl7_field(ack, "ERR", 2), "OBX^1^3")
        self.assertTrue(hl7_field(ack, "ERR", 3).startswith("101^"))
        letters = self.dead_letters_for(lambda d: d["data"]["source"]["messageId"] == "A1000010")
        self.assertEqual(len(letters), 1)
        self.assertEqual(letters[0]["data"]["location"], {"segment": "OBX", "sequence": 1, "field": 3})
        self.assertEqual(letters[0]["data"]["error"]["code"], "101")

    def test_unsupported_type_is_ar_naming_msh_9(self):
        ack = mllp_exchange(self.gw.mllp_address, [sample("bad-unsupported-type.hl7")])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AR")
        self.assertEqual(hl7_field(ack, "ERR", 2), "MSH^1^9")
        self.assertTrue(hl7_field(ack, "ERR", 3).startswith("200^"))
        self.assertTrue(self.dead_letters_for(lambda d: d["data"]["source"]["messageId"] == "A1000009"))

    def test_garbage_gets_ar_and_the_connection_keeps_working(self):
        answers = mllp_exchange(self.gw.mllp_address,
                                [sample("bad-not-hl7.hl7"), sample("oru-r01-hunger-vital-sign-negative.hl7")])
        self.assertEqual(hl7_field(answers[0], "MSA", 1), "AR")
        self.assertEqual(hl7_field(answers[0], "MSA", 2), "")
        self.assertEqual(hl7_field(answers[1], "MSA", 2), "B2000017")
        self.assertTrue(self.dead_letters_for(lambda d: d["data"]["stage"] == "parse"))

    def test_logs_carry_no_phi(self):
        mllp_exchange(self.gw.mllp_address, [sample("ref-i12-home-visiting.hl7"), sample("oru-r01-ahc-hrsn-positive.hl7")])
        log = self.gw.log()
        for phi in ("Garcia", "Sofia", "MRN12345", "8675309", "Elm St", "5551234", "Maria"):
            self.assertNotIn(phi, log)

    def test_enhanced_mode_sends_the_application_ack_as_its_own_message(self):
        import socket
        msg = sample("oru-r01-ahc-hrsn-positive.hl7").replace(b"|AL|NE", b"|AL|AL") \
            .replace(b"|A1000001|", b"|ENH-0001|")
        before = parse_metrics(self.gw.get("/metrics")[1])[0]
        with socket.create_connection(self.gw.mllp_address, timeout=10) as s:
            s.sendall(b"\x0b" + msg + b"\x1c\r")
            accept, app = mllp_read_frames(s, 2)
            # First the accept ACK, then the application ACK as a message of its own.
            self.assertEqual(hl7_field(accept, "MSA", 1), "CA")
            self.assertEqual(hl7_field(accept, "MSA", 2), "ENH-0001")
            self.assertEqual(hl7_field(app, "MSA", 1), "AA")
            self.assertEqual(hl7_field(app, "MSA", 2), "ENH-0001")
            self.assertEqual(hl7_field(app, "MSH", 9), "ACK^R01^ACK")
            self.assertEqual(hl7_field(app, "MSH", 5), "EHR")
            self.assertEqual(hl7_field(app, "MSH", 6), "PEDS_CLINIC_A")
            self.assertEqual((hl7_field(app, "MSH", 15), hl7_field(app, "MSH", 16)), ("NE", "NE"))
            accept_id, app_id = hl7_field(accept, "MSH", 10), hl7_field(app, "MSH", 10)
            self.assertTrue(accept_id and app_id)
            self.assertNotIn(accept_id, ("ENH-0001", app_id))
            self.assertNotEqual(app_id, "ENH-0001")
            self.assertIsNone(hl7_field(app, "ERR", 2))
            # The sender acknowledges our application ACK: consumed, not answered; the
            # connection goes on with the next message, answered in order.
            ack = ("MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ACK^R01^ACK|ENH-ACK-9|P|2.5.1\r"
                   "MSA|AA|%s\r" % app_id).encode()
            s.sendall(b"\x0b" + ack + b"\x1c\r")
            mllp_expect_silence(s, 1.0)
            nxt = sample("oru-r01-hunger-vital-sign-negative.hl7").replace(b"|B2000017|", b"|ENH-0002|")
            s.sendall(b"\x0b" + nxt + b"\x1c\r")
            (reply,) = mllp_read_frames(s, 1)
            self.assertEqual(hl7_field(reply, "MSA", 1), "AA")
            self.assertEqual(hl7_field(reply, "MSA", 2), "ENH-0002")
        # A resend of the committed message, on a new connection, gets both stored answers again.
        with socket.create_connection(self.gw.mllp_address, timeout=10) as s:
            s.sendall(b"\x0b" + msg + b"\x1c\r")
            again = mllp_read_frames(s, 2)
            self.assertEqual(again, [accept, app])
            mllp_expect_silence(s, 0.5)
        self.screening_for("ENH-0001")
        self.screening_for("ENH-0002")
        self.gw.wait_drained()  # an event the resend or the ACK wrongly added would be on Kafka now
        self.assertEqual(
            len([e for _, e in self.screenings(1) if e["data"]["source"]["messageId"] == "ENH-0001"]), 1)
        self.assertEqual(self.dead_letters_for(
            lambda d: d["data"]["source"].get("messageId") in ("ENH-0001", "ENH-ACK-9"), timeout=0), [])
        after = parse_metrics(self.gw.get("/metrics")[1])[0]
        self.assertEqual(after.get("sdoh_hl7_acks_received_total", 0)
                         - before.get("sdoh_hl7_acks_received_total", 0), 1)
        self.assertFalse([k for k in after if k.startswith("sdoh_hl7_messages_total") and 'type="ACK"' in k])
        self.assertEqual(after.get("sdoh_hl7_duplicates_total", 0) - before.get("sdoh_hl7_duplicates_total", 0), 1)

    def test_enhanced_mode_unsupported_type_is_cr_and_no_application_ack(self):
        import socket
        msg = sample("bad-unsupported-type.hl7").replace(b"|P|2.5.1", b"|P|2.5.1|||AL|AL", 1) \
            .replace(b"|A1000009|", b"|ENH-0009|")
        with socket.create_connection(self.gw.mllp_address, timeout=10) as s:
            s.sendall(b"\x0b" + msg + b"\x1c\r")
            (answer,) = mllp_read_frames(s, 1)
            mllp_expect_silence(s, 0.5)
        self.assertEqual(hl7_field(answer, "MSA", 1), "CR")
        self.assertEqual(hl7_field(answer, "MSA", 2), "ENH-0009")
        self.assertEqual(hl7_field(answer, "ERR", 2), "MSH^1^9")
        self.assertTrue(hl7_field(answer, "ERR", 3).startswith("200^"))
        self.assertTrue(self.dead_letters_for(lambda d: d["data"]["source"]["messageId"] == "ENH-0009"))

    def test_unsupported_version_is_ar_203_naming_msh_12_with_mllp_send(self):
        import tempfile
        msg = sample("oru-r01-hunger-vital-sign-negative.hl7").replace(b"|P|2.5.1", b"|P|9.9") \
            .replace(b"|B2000017|", b"|VER-0099|")
        with tempfile.NamedTemporaryFile(suffix=".hl7") as f:
            f.write(msg)
            f.flush()
            out = run(["mllp_send", "--loose", "--file", f.name,
                       "--port", str(self.gw.mllp_address[1]), self.gw.mllp_address[0]])
        self.assertEqual(out.returncode, 0, out.stderr)
        ack = out.stdout
        self.assertEqual(hl7_field(ack, "MSA", 1), "AR")
        self.assertEqual(hl7_field(ack, "MSA", 2), "VER-0099")
        self.assertEqual(hl7_field(ack, "ERR", 2), "MSH^1^12^1^1")
        self.assertTrue(hl7_field(ack, "ERR", 3).startswith("203^"))
        letters = self.dead_letters_for(lambda d: d["data"]["source"]["messageId"] == "VER-0099")
        self.assertEqual(len(letters), 1)
        self.assertEqual(letters[0]["data"]["error"]["code"], "203")
        self.gw.wait_drained()
        self.assertFalse([e for _, e in self.screenings() if e["data"]["source"]["messageId"] == "VER-0099"])

    def test_header_versions_accepted_and_refused(self):
        import socket
        base = sample("oru-r01-hunger-vital-sign-negative.hl7")
        cases = [  # (MSH-12, MSH-15/16 appended, expected MSA-1, ERR-3 code or None)
            (b"2.3", b"", "AA", None),
            (b"2.8.2", b"", "AA", None),
            (b"2.5.1^USA", b"", "AA", None),
            (b"", b"", "AR", "101"),       # MSH-12 is required
            (b"2.2", b"", "AR", "203"),
            (b"9.9", b"|||AL|AL", "CR", "203"),  # enhanced mode: commit reject, no application ACK
        ]
        for n, (version, modes, msa, code) in enumerate(cases):
            with self.subTest(version=version, modes=modes):
                control = b"HDR-%d" % n
                msg = base.replace(b"|P|2.5.1", b"|P|" + version + modes) \
                    .replace(b"|B2000017|", b"|" + control + b"|")
                with socket.create_connection(self.gw.mllp_address, timeout=10) as s:
                    s.sendall(b"\x0b" + msg + b"\x1c\r")
                    (answer,) = mllp_read_frames(s, 1)
                    mllp_expect_silence(s, 0.3)
                self.assertEqual(hl7_field(answer, "MSA", 1), msa, answer)
                self.assertEqual(hl7_field(answer, "MSA", 2), control.decode())
                if code is None:
                    self.assertIsNone(hl7_field(answer, "ERR", 3))
                else:
                    self.assertTrue(hl7_field(answer, "ERR", 3).startswith(code + "^"), answer)
                    self.assertTrue(hl7_field(answer, "ERR", 2).startswith("MSH^1^12"), answer)

    def test_unanswered_obx_is_accepted_and_the_screening_is_published(self):
        # OBX-11 F with OBX-5 empty: a question the family did not answer. Accepted, not refused,
        # and the screening still goes out with the item that was answered.
        msg = sample("oru-r01-hunger-vital-sign-negative.hl7") \
            .replace(b"|B2000017|", b"|UNANS-01|") \
            .replace(b"|LA28398-8^Never true^LN||||||F\rOBX|2", b"|||||||F\rOBX|2")
        self.assertIn(b"|||||||F\rOBX|2", msg)
        ack = mllp_exchange(self.gw.mllp_address, [msg])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
        self.assertIsNone(hl7_field(ack, "ERR", 1))
        _, event = self.screening_for("UNANS-01")
        self.assertEqual([d["category"] for d in event["data"]["domains"]], ["food-insecurity"])

    def test_every_err_names_a_segment_that_was_sent(self):
        # A few refusals end to end; the full table is tests/unit/adapters/hl7v2/
        # pipeline_refusals_test.cpp. ERR-2 must name a segment occurrence of the message sent.
        hvs = sample("oru-r01-hunger-vital-sign-negative.hl7")
        ref = sample("ref-i12-home-visiting.hl7").replace(b"|AL|AL", b"||")

        def without(text, segment):
            return b"\r".join(l for l in text.split(b"\r") if not l.startswith(segment + b"|"))

        cases = [  # (name, message, MSA-1, ERR-3 code, ERR-2)
            ("oru without OBR", without(without(hvs, b"OBX"), b"OBR"), "AE", "100", "PID^1"),
            ("oru OBR without OBX", without(hvs, b"OBX"), "AE", "100", "OBR^1"),
            ("oru OBX-5 not a number", hvs.replace(b"|CWE|88122-7", b"|NM|88122-7"), "AE", "102",
             "OBX^1^5"),
            ("ref without RF1", without(ref, b"RF1"), "AE", "100", "MSH^1"),
            ("unsupported trigger event", hvs.replace(b"ORU^R01^ORU_R01", b"ORU^R30^ORU_R30"), "AR",
             "201", "MSH^1^9^1^2"),
        ]
        for n, (name, msg, msa, code, err2) in enumerate(cases):
            with self.subTest(name):
                msg = msg.replace(b"|B2000017|", b"|ERR2-%d|" % n).replace(b"|A1000003|", b"|ERR2-%d|" % n)
                answer = mllp_exchange(self.gw.mllp_address, [msg])[0]
                self.assertEqual(hl7_field(answer, "MSA", 1), msa, answer)
                self.assertTrue(hl7_field(answer, "ERR", 3).startswith(code + "^"), answer)
                self.assertEqual(hl7_field(answer, "ERR", 2), err2)
                segment, sequence = err2.split("^")[:2]
                sent = [l for l in msg.decode("latin-1").split("\r") if l.startswith(segment + "|")]
                self.assertGreaterEqual(len(sent), int(sequence), "%s was not sent" % err2)
        # The REF^I12 with only the clinic's local RF1 codes, which no table translates:
        # accepted and held (uncategorised), not refused.
        local = without(without(ref, b"OBX"), b"OBR").replace(b"|A1000003|", b"|ERR2-LOCAL|")
        answer = mllp_exchange(self.gw.mllp_address, [local])[0]
        self.assertEqual(hl7_field(answer, "MSA", 1), "AA", answer)
        self.assertIsNone(hl7_field(answer, "ERR", 3), answer)

    def test_metrics_count_messages_by_type_and_ack(self):
        mllp_exchange(self.gw.mllp_address, [sample("bad-unsupported-type.hl7")])
        samples, _, _ = parse_metrics(self.gw.get("/metrics")[1])
        self.assertGreaterEqual(samples['sdoh_hl7_messages_total{type="other",ack="AR"}'], 1)
        self.assertGreaterEqual(samples["sdoh_mllp_frames_total"], 1)
        self.assertIn("sdoh_store_commit_duration_seconds_count", samples)


class Hl7Referrals(unittest.TestCase):
    """REF^I12 and RRI^I12 end to end, and the character-set and time-zone handling, with a
    gateway whose senders are in America/New_York."""

    @classmethod
    def setUpClass(cls):
        # Overdue checks often, so that a test sees them happen.
        cls.gw = Gateway(config="referrals: { overdue_check_interval: 200ms }\n",
                         mllp_config=", hl7: { default_timezone: America/New_York }").start()

    @classmethod
    def tearDownClass(cls):
        code = cls.gw.stop()
        cls.gw.__exit__(None, None, None)
        assert code == 0

    def events(self, topic, expect_at_least=0):
        pairs = consume(self.gw.bootstrap, topic, expect_at_least)
        assert_valid_events([v for _, v in pairs])
        return [(k, json.loads(v)) for k, v in pairs]

    def wait_for(self, topic, predicate, count=1, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            found = [(k, e) for k, e in self.events(topic) if predicate(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def send_file(self, path):
        out = run(["mllp_send", "--loose", "--file", path,
                   "--port", str(self.gw.mllp_address[1]), self.gw.mllp_address[0]])
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_ref_makes_a_referral_and_rri_accepts_it(self):
        ack = self.send_file(os.path.join(HL7, "ref-i12-home-visiting.hl7"))
        self.assertEqual(hl7_field(ack, "MSA", 1), "CA")
        self.assertEqual(hl7_field(ack, "MSA", 2), "A1000003")
        found = self.wait_for("sdoh.referral.v1",
                              lambda e: e["data"]["clinicReferralNumber"]["value"] == "REF-2026-0001")
        self.assertEqual(len(found), 1)
        key, referral = found[0]
        data = referral["data"]
        referral_id = data["referralId"]
        self.assertEqual(key, referral_id)
        self.assertEqual(referral["subject"], referral_id)
        self.assertEqual(referral["type"], "org.sdoh.referral.v1")
        self.assertEqual(data["status"], "requested")
        self.assertEqual(data["category"], "food-insecurity")
        self.assertEqual(data["agency"], {"id": "ehv-durham", "name": "Early Start Home Visiting",
                                          "topic": "sdoh.referral.v1"})
        self.assertEqual(data["priority"], "routine")
        self.assertEqual(data["consent"], {"status": "active", "source": "hl7-con", "date": "2026-11-20"})
        self.assertEqual(data["contact"]["phone"], "+19195551234")
        self.assertEqual(data["contact"]["name"], {"family": "Garcia", "given": ["Sofia"]})
        self.assertEqual(data["contact"]["guardian"]["relationship"]["code"], "MTH")
        self.assertEqual(data["patient"]["zip3"], "277")
        self.assertNotIn("MRN12345", json.dumps(referral))
        # The referral's Task exists at the gateway whatever protocol it came in as.
        status, body = self.gw.get("/fhir/Task/" + referral_id)
        self.assertEqual(status, 200, body)
        task = json.loads(body)
        self.assertEqual((task["status"], task["owner"]["reference"], task["meta"]["versionId"]),
                         ("requested", "Organization/ehv-durham", "1"))
        self.assertNotIn("Garcia", body)
        self.assertNotIn("MRN12345", body)

        ack = self.send_file(os.path.join(HL7, "rri-i12-accepted.hl7"))
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA")
        self.assertEqual(hl7_field(ack, "MSA", 2), "EHV-55")
        statuses = self.wait_for("sdoh.referral-status.v1",
                                 lambda e: e["data"]["referralId"] == referral_id, count=2)
        by_sequence = {e["data"]["sequence"]: (k, e["data"]) for k, e in statuses}
        self.assertEqual(sorted(by_sequence), [1, 2])
        self.assertEqual(by_sequence[1][1]["status"], "requested")
        self.assertIsNone(by_sequence[1][1]["previousStatus"])
        key, accepted = by_sequence[2]
        self.assertEqual(key, referral_id)
        self.assertEqual(accepted["status"], "accepted")
        self.assertEqual(accepted["previousStatus"], "requested")
        self.assertEqual(accepted["reason"], "Family contacted, first visit scheduled")
        self.assertEqual(accepted["updatedBy"], {"role": "agency", "id": "ehv-durham"})
        self.assertEqual(accepted["time"], "2026-11-22T09:00:00-05:00")  # MSH-7 in America/New_York
        self.assertEqual(accepted["category"], "food-insecurity")
        for _, e in statuses:
            for phi in ("Garcia", "Sofia", "MRN12345", "5551234"):
                self.assertNotIn(phi, json.dumps(e))
        status, body = self.gw.get("/fhir/Task/" + referral_id)
        task = json.loads(body)
        self.assertEqual((task["status"], task["meta"]["versionId"]), ("accepted", "2"))
        self.assertEqual(task["statusReason"]["text"], "Family contacted, first visit scheduled")

    def test_rri_for_an_unknown_referral_is_ae_204_with_a_dead_letter(self):
        rri = sample("rri-i12-accepted.hl7").replace(b"REF-2026-0001", b"REF-UNKNOWN-9") \
            .replace(b"MSA|AA|A1000003", b"MSA|AA|X0").replace(b"|EHV-55|", b"|EHV-404|")
        ack = mllp_exchange(self.gw.mllp_address, [rri])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AE")
        self.assertEqual(hl7_field(ack, "ERR", 2), "RF1^1^6")
        self.assertTrue(hl7_field(ack, "ERR", 3).startswith("204^"))
        letters = self.wait_for("sdoh.deadletter.v1",
                                lambda e: e["data"]["source"]["messageId"] == "EHV-404")
        self.assertEqual(len(letters), 1)
        self.assertEqual(letters[0][1]["data"]["stage"], "lifecycle")

    def ref_naming_no_agency(self, control_id, number, edits=()):
        """The sample REF^I12 as a new referral (`number` in RF1-6, `control_id` in MSH-10) without
        its PRD of role RT, so that routing picks the agency; original acknowledgment mode.
        `edits` are (from, to) byte replacements made once each."""
        ref = b"\r".join(seg for seg in sample("ref-i12-home-visiting.hl7").split(b"\r")
                         if not seg.startswith(b"PRD|RT^"))
        ref = ref.replace(b"|A1000003|", b"|" + control_id + b"|").replace(b"|AL|AL", b"||")
        ref = ref.replace(b"REF-2026-0001", number)
        for old, new in edits:
            self.assertIn(old, ref)
            ref = ref.replace(old, new, 1)
        return ref

    def task_for(self, number):
        """The gateway's Task of the referral with this RF1-6 number (GET /fhir/Task?identifier)."""
        status, body = self.gw.get("/fhir/Task?identifier=PEDS_A%7C" + number)
        self.assertEqual(status, 200, body)
        tasks = [e["resource"] for e in json.loads(body).get("entry", [])
                 if e["resource"]["resourceType"] == "Task"]
        self.assertEqual(len(tasks), 1, body)
        return tasks[0]

    def clinic_ref(self, message_type, control_id, number, con=True):
        """The sample REF^I12 (to ehv-durham) as the clinic's `message_type` (REF^I12, REF^I13,
        REF^I14) for referral `number`, control id `control_id`, original acknowledgment mode;
        without its CON segment when `con` is false. Written to a file for mllp_send."""
        ref = sample("ref-i12-home-visiting.hl7")
        if not con:
            ref = b"\r".join(seg for seg in ref.split(b"\r") if not seg.startswith(b"CON|"))
        ref = ref.replace(b"REF^I12^REF_I12", message_type).replace(b"|A1000003|", b"|" + control_id + b"|")
        ref = ref.replace(b"|AL|AL", b"||").replace(b"REF-2026-0001", number)
        path = os.path.join(self.gw.dir, control_id.decode() + ".hl7")
        with open(path, "wb") as f:
            f.write(ref)
        return path

    def statuses_of(self, referral_id, count):
        found = self.wait_for("sdoh.referral-status.v1",
                              lambda e: e["data"]["referralId"] == referral_id, count=count)
        return sorted((e["data"] for _, e in found), key=lambda d: d["sequence"])

    def test_the_clinic_cancels_its_referral_over_ref_i14(self):
        ack = self.send_file(self.clinic_ref(b"REF^I12^REF_I12", b"C14-1", b"REF-I14-0001"))
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA")
        referral_id = self.task_for("REF-I14-0001")["id"]
        ack = self.send_file(self.clinic_ref(b"REF^I14^REF_I12", b"C14-2", b"REF-I14-0001"))
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA")
        self.assertEqual(hl7_field(ack, "MSA", 2), "C14-2")
        statuses = self.statuses_of(referral_id, 2)
        self.assertEqual([(s["sequence"], s["status"]) for s in statuses],
                         [(1, "requested"), (2, "cancelled")])
        self.assertEqual(statuses[1]["previousStatus"], "requested")
        self.assertEqual(statuses[1]["updatedBy"]["role"], "clinic")
        task = self.task_for("REF-I14-0001")
        self.assertEqual((task["status"], task["meta"]["versionId"]), ("cancelled", "2"))
        # Cancelled is final: the agency's acceptance that comes after is refused and kept.
        rri = sample("rri-i12-accepted.hl7").replace(b"REF-2026-0001", b"REF-I14-0001") \
            .replace(b"MSA|AA|A1000003", b"MSA|AA|C14-1").replace(b"|EHV-55|", b"|EHV-C14|")
        ack = mllp_exchange(self.gw.mllp_address, [rri])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AE")
        letters = self.wait_for("sdoh.deadletter.v1",
                                lambda e: e["data"]["source"]["messageId"] == "EHV-C14")
        self.assertEqual(letters[0][1]["data"]["stage"], "lifecycle")
        self.assertEqual(len(self.statuses_of(referral_id, 2)), 2)

    def test_a_ref_i13_with_con_releases_a_referral_waiting_for_consent(self):
        ack = self.send_file(self.clinic_ref(b"REF^I12^REF_I12", b"C13-1", b"REF-I13-0001", con=False))
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA")
        task = self.task_for("REF-I13-0001")
        referral_id = task["id"]
        self.assertEqual(task["businessStatus"]["coding"][0]["code"], "awaiting-consent")
        first = self.wait_for("sdoh.referral.v1", lambda e: e["data"]["referralId"] == referral_id)
        self.assertEqual(first[0][1]["data"]["consent"]["status"], "none")
        self.assertNotIn("contact", first[0][1]["data"])
        # The clinic records the family's consent and sends the referral again as REF^I13 + CON.
        ack = self.send_file(self.clinic_ref(b"REF^I13^REF_I12", b"C13-2", b"REF-I13-0001"))
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA")
        statuses = self.statuses_of(referral_id, 2)
        self.assertEqual([(s["sequence"], s["businessStatus"]) for s in statuses],
                         [(1, "awaiting-consent"), (2, None)])
        self.assertEqual(statuses[1]["updatedBy"], {"role": "gateway", "id": "consent"})
        again = self.wait_for("sdoh.referral.v1", lambda e: e["data"]["referralId"] == referral_id,
                              count=2)
        self.assertEqual(len(again), 2)
        released = [e["data"] for _, e in again if e["data"]["consent"]["status"] == "active"]
        self.assertEqual(len(released), 1)
        self.assertEqual(released[0]["contact"]["phone"], "+19195551234")
        task = self.task_for("REF-I13-0001")
        self.assertNotIn("businessStatus", task)
        self.assertEqual(task["meta"]["versionId"], "2")

    def test_ref_naming_no_agency_is_routed_to_the_agencys_topic(self):
        # Food insecurity, ZIP 27701, a child of 6 months: Durham County WIC, on the referral topic.
        # Educational attainment for the same child (under 3): Early Intervention, on its own topic.
        answers = mllp_exchange(self.gw.mllp_address, [
            self.ref_naming_no_agency(b"ROUTE-1", b"REF-ROUTE-1"),
            self.ref_naming_no_agency(b"ROUTE-2", b"REF-ROUTE-2", [
                (b"food-insecurity^Food insecurity^SDOHCC",
                 b"educational-attainment^Educational attainment^SDOHCC")]),
        ])
        self.assertEqual([hl7_field(a, "MSA", 1) for a in answers], ["AA", "AA"])
        self.assertEqual([hl7_field(a, "ERR", 1) for a in answers], [None, None])
        wic = self.wait_for("sdoh.referral.v1",
                            lambda e: e["data"]["clinicReferralNumber"]["value"] == "REF-ROUTE-1")
        self.assertEqual(len(wic), 1)
        key, event = wic[0]
        self.assertEqual(event["data"]["agency"], {"id": "wic-durham", "name": "Durham County WIC",
                                                   "topic": "sdoh.referral.v1"})
        self.assertEqual(event["data"]["category"], "food-insecurity")
        self.assertEqual(key, event["data"]["referralId"])
        ei = self.wait_for("sdoh.referral.ei-durham",
                           lambda e: e["data"]["clinicReferralNumber"]["value"] == "REF-ROUTE-2")
        self.assertEqual(len(ei), 1)
        self.assertEqual(ei[0][1]["data"]["agency"]["id"], "ei-durham")
        self.assertEqual(ei[0][1]["data"]["agency"]["topic"], "sdoh.referral.ei-durham")
        self.assertEqual(ei[0][1]["data"]["category"], "educational-attainment")
        self.assertNotIn("REF-ROUTE-2", [e["data"]["clinicReferralNumber"]["value"]
                                         for _, e in self.events("sdoh.referral.v1")])
        self.assertEqual(self.task_for("REF-ROUTE-1")["owner"]["reference"], "Organization/wic-durham")
        self.assertEqual(self.task_for("REF-ROUTE-2")["owner"]["reference"], "Organization/ei-durham")

    def test_ref_without_a_county_routes_by_the_county_of_its_zip(self):
        # Food for a child of 6 months in ZIP 27516 (83% of its land in Orange County, in ZIP3
        # 275). Without PID-11.9 the Census crosswalk gives Orange County: Orange's WIC. With
        # Durham's FIPS code in PID-11.9, the sender's county is used as given.
        answers = mllp_exchange(self.gw.mllp_address, [
            self.ref_naming_no_agency(b"COUNTY-1", b"REF-COUNTY-1",
                                      [(b"^NC^27701^USA|", b"^NC^27516^USA|")]),
            self.ref_naming_no_agency(b"COUNTY-2", b"REF-COUNTY-2",
                                      [(b"^NC^27701^USA|", b"^NC^27516^USA^^^37063|")]),
        ])
        self.assertEqual([hl7_field(a, "MSA", 1) for a in answers], ["AA", "AA"])
        by_zip = self.wait_for("sdoh.referral.v1",
                               lambda e: e["data"]["clinicReferralNumber"]["value"] == "REF-COUNTY-1")
        self.assertEqual(len(by_zip), 1)
        self.assertEqual(by_zip[0][1]["data"]["agency"]["id"], "wic-orange")
        self.assertEqual(by_zip[0][1]["data"]["routing"], {"area": "county", "countyBasis": "zip-largest-share"})
        by_address = self.wait_for("sdoh.referral.v1",
                                   lambda e: e["data"]["clinicReferralNumber"]["value"] == "REF-COUNTY-2")
        self.assertEqual(len(by_address), 1)
        self.assertEqual(by_address[0][1]["data"]["agency"]["id"], "wic-durham")
        self.assertEqual(by_address[0][1]["data"]["routing"], {"area": "county", "countyBasis": "address"})

    def test_ref_with_no_route_is_held_and_its_task_says_so(self):
        # No route lists ZIP3 900: accepted, held, reported; no agency gets a referral event.
        ref = self.ref_naming_no_agency(b"HELD-1", b"REF-HELD-1", [(b"^NC^27701^USA|", b"^CA^90001^USA|")])
        ack = mllp_exchange(self.gw.mllp_address, [ref])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
        self.assertEqual(hl7_field(ack, "MSA", 2), "HELD-1")
        self.assertIsNone(hl7_field(ack, "ERR", 1))
        task = self.task_for("REF-HELD-1")
        referral_id = task["id"]
        self.assertEqual((task["status"], task["businessStatus"]["coding"][0]["code"]), ("requested", "no-route"))
        self.assertNotIn("owner", task)
        status, body = self.gw.get("/fhir/Task/" + referral_id)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["businessStatus"]["coding"][0]["code"], "no-route")
        statuses = self.wait_for("sdoh.referral-status.v1", lambda e: e["data"]["referralId"] == referral_id)
        self.assertEqual(len(statuses), 1)
        key, event = statuses[0]
        self.assertEqual(key, referral_id)
        data = event["data"]
        self.assertEqual((data["status"], data["businessStatus"], data["sequence"]), ("requested", "no-route", 1))
        self.assertEqual(data["updatedBy"], {"role": "gateway", "id": "routing"})
        self.assertIsNone(data["agency"])
        self.assertEqual(data["category"], "food-insecurity")
        self.gw.wait_drained()  # a referral event it should not have would be on Kafka now
        for topic in ("sdoh.referral.v1", "sdoh.referral.ei-durham"):
            self.assertNotIn(referral_id, [k for k, _ in self.events(topic)])
        deadline = time.monotonic() + 10
        while True:
            samples, _, _ = parse_metrics(self.gw.get("/metrics")[1])
            if samples.get('sdoh_referrals_held{reason="no-route"}', 0) >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertGreaterEqual(samples['sdoh_referrals_held{reason="no-route"}'], 1)
        self.assertGreaterEqual(
            samples['sdoh_hl7_referral_messages_total{type="REF^I12",outcome="held"}'], 1)
        status, body = self.gw.get("/fhir/Task?business-status=no-route")
        self.assertIn(referral_id, [e["resource"]["id"] for e in json.loads(body)["entry"]
                                    if e["search"]["mode"] == "match"])
        for phi in ("Garcia", "Sofia", "MRN12345", "5551234", "90001"):
            self.assertNotIn(phi, body)
            self.assertNotIn(phi, json.dumps(event))
        # Listed for operations as a dead letter (stage route).
        letters = self.wait_for("sdoh.deadletter.v1", lambda e: e["data"]["source"]["messageId"] == "HELD-1")
        self.assertEqual([e["data"]["stage"] for _, e in letters], ["route"])

        # The clinic corrects the family's address and sends the referral again: released to WIC.
        again = self.ref_naming_no_agency(b"HELD-2", b"REF-HELD-1", [])
        self.assertEqual(hl7_field(mllp_exchange(self.gw.mllp_address, [again])[0], "MSA", 1), "AA")
        referrals = self.wait_for("sdoh.referral.v1", lambda e: e["data"]["referralId"] == referral_id)
        self.assertEqual(len(referrals), 1)
        self.assertEqual(referrals[0][1]["data"]["agency"]["id"], "wic-durham")
        statuses = self.wait_for("sdoh.referral-status.v1", lambda e: e["data"]["referralId"] == referral_id,
                                 count=2)
        self.assertEqual([(e["data"]["sequence"], e["data"]["businessStatus"]) for _, e in statuses],
                         [(1, "no-route"), (2, None)])
        self.assertEqual(self.task_for("REF-HELD-1")["owner"]["reference"], "Organization/wic-durham")

    def test_ref_naming_no_agency_without_rf1_6_is_still_ae_naming_rf1_6(self):
        ref = self.ref_naming_no_agency(b"NORF16-1", b"", [(b"|^PEDS_A|", b"||")])
        ack = mllp_exchange(self.gw.mllp_address, [ref])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AE")
        self.assertEqual(hl7_field(ack, "ERR", 2), "RF1^1^6")
        letters = self.wait_for("sdoh.deadletter.v1",
                                lambda e: e["data"]["source"]["messageId"] == "NORF16-1")
        self.assertEqual(len(letters), 1)

    def test_latin1_and_undeclared_windows_1252_arrive_as_utf8(self):
        def hvs(control_id, msh18, display):
            return (b"MSH|^~\\&|EHR|PEDS_CLINIC_L|SDOH_GW|STATE_EC|20261120103000||ORU^R01|" +
                    control_id + b"|P|2.5.1||||||" + msh18 +
                    b"\rPID|1||L-1^^^PEDS_L^MR||Nu\xf1ez^Jos\xe9\rOBR|1|O1||88121-9^Hunger Vital Sign^LN|||"
                    b"20261120100000\rOBX|1|CWE|88122-7^Food worry^LN||LA28397-0^" + display +
                    b"^LN||||||F\r")
        answers = mllp_exchange(self.gw.mllp_address, [
            hvs(b"L-1", b"8859/1", b"A menudo \xabs\xed\xbb"),
            hvs(b"L-2", b"", b"\x93Often\x94 true"),
            hvs(b"L-3", b"UNICODE UTF-8", b"Often true"),
        ])
        self.assertEqual([hl7_field(a, "MSA", 1) for a in answers], ["AA", "AA", "AE"])
        self.assertEqual(hl7_field(answers[2], "ERR", 2), "PID^1^5^1^1")  # ERL: field repetition 1, component 1
        self.assertTrue(hl7_field(answers[2], "ERR", 3).startswith("102^"))
        found = {e["data"]["source"]["messageId"]: e["data"] for _, e in
                 self.wait_for("sdoh.screening.v1",
                               lambda e: e["data"]["source"]["messageId"] in ("L-1", "L-2"), count=2)}
        self.assertEqual(found["L-1"]["domains"][0]["items"][0]["answer"]["display"], "A menudo \u00abs\u00ed\u00bb")
        self.assertEqual(found["L-2"]["domains"][0]["items"][0]["answer"]["display"], "\u201cOften\u201d true")
        # OBR-7 without an offset, read in the configured zone.
        self.assertEqual(found["L-1"]["performed"], "2026-11-20T10:00:00-05:00")
        samples, _, _ = parse_metrics(self.gw.get("/metrics")[1])
        self.assertGreaterEqual(
            samples['sdoh_hl7_charset_fallbacks_total{declared="none",read_as="windows-1252"}'], 1)


if __name__ == "__main__":
    unittest.main()


class Hl7ReferralsAfterRestart(unittest.TestCase):
    def test_the_agency_answer_finds_a_referral_made_before_a_restart(self):
        with Gateway(mllp_config=", hl7: { default_timezone: America/New_York }") as gw:
            ref = mllp_exchange(gw.mllp_address, [sample("ref-i12-home-visiting.hl7")])[0]
            self.assertEqual(hl7_field(ref, "MSA", 1), "CA")
            gw.wait_drained()  # its events are out; the stop below finishes every queued write
            self.assertEqual(gw.stop(), 0)
            gw.log_file.close()
            gw.start()
            rri = mllp_exchange(gw.mllp_address, [sample("rri-i12-accepted.hl7")])[0]
            self.assertEqual(hl7_field(rri, "MSA", 1), "AA", rri)
            deadline = time.monotonic() + 15
            while True:
                statuses = [json.loads(v)["data"] for _, v in consume(gw.bootstrap, "sdoh.referral-status.v1")]
                accepted = [s for s in statuses if s["status"] == "accepted"]
                if accepted or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            # The embedded broker starts empty after the restart: only the new status event is
            # on it, numbered from the state the store kept.
            self.assertEqual(len(accepted), 1)
            self.assertEqual(accepted[0]["sequence"], 2)
            self.assertEqual(accepted[0]["previousStatus"], "requested")
            self.assertEqual(gw.stop(), 0)


class AgencyIdentity(unittest.TestCase):
    """An agency's RRI^I12 counts as the agency its connection is (the `parties` section), never
    what the message says: a clinic's sender, an unknown sender, or one agency answering for
    another's referral is refused with AR naming MSH-4 (or PRD-7), and the referral is unchanged."""

    PARTIES = ("parties:\n"
               "  ehv-durham: { kind: agency, mllp_senders: [\"AGENCY^EHV-DURHAM\"] }\n"
               "  wic-durham: { kind: agency, mllp_senders: [\"WIC^WIC-DURHAM\"] }\n"
               "  peds_clinic_a: { kind: clinic, mllp_senders: [\"EHR^PEDS_CLINIC_A\"] }\n")

    def rri(self, gw, control_id, sender=b"AGENCY|EHV-DURHAM"):
        msg = sample("rri-i12-accepted.hl7").replace(b"AGENCY|EHV-DURHAM", sender, 1)
        msg = msg.replace(b"|EHV-55|", b"|" + control_id.encode() + b"|", 1)
        [ack] = mllp_exchange(gw.mllp_address, [msg])
        return ack

    def statuses(self, gw, referral_id):
        return [json.loads(v)["data"] for k, v in consume(gw.bootstrap, "sdoh.referral-status.v1")
                if k == referral_id]

    def test_an_agencys_sender_cannot_send_screenings_or_referrals(self):
        with Gateway(config=self.PARTIES, mllp_config=", hl7: { default_timezone: America/New_York }") as gw:
            for name in ("oru-r01-ahc-hrsn-positive.hl7", "ref-i12-home-visiting.hl7"):
                msg = sample(name)
                header = msg.split(b"\r", 1)[0].split(b"|")
                msg = msg.replace(b"|".join(header[2:4]), b"AGENCY|EHV-DURHAM", 1)
                msg = msg.replace(b"|AL|NE|", b"|||", 1).replace(b"|AL|AL", b"||", 1)  # original mode
                [ack] = mllp_exchange(gw.mllp_address, [msg])
                self.assertEqual(hl7_field(ack, "MSA", 1), "AR", ack)
                self.assertEqual(hl7_field(ack, "ERR", 2), "MSH^1^4", ack)
                self.assertIn("is agency ehv-durham", hl7_field(ack, "ERR", 8))
            # The clinic's own sender is accepted.
            [ack] = mllp_exchange(gw.mllp_address, [sample("oru-r01-ahc-hrsn-positive.hl7")])
            self.assertEqual(hl7_field(ack, "MSA", 1), "CA", ack)  # enhanced mode: committed

    def test_only_the_agencys_own_sender_moves_its_referral(self):
        with Gateway(config=self.PARTIES, mllp_config=", hl7: { default_timezone: America/New_York }") as gw:
            ref = mllp_exchange(gw.mllp_address, [sample("ref-i12-home-visiting.hl7")])[0]
            self.assertEqual(hl7_field(ref, "MSA", 1), "CA", ref)
            referral = [json.loads(v) for _, v in consume(gw.bootstrap, "sdoh.referral.v1", 1)]
            rid = referral[0]["data"]["referralId"]

            for control_id, sender, where, says in (
                    ("ID-CLINIC", b"EHR|PEDS_CLINIC_A", "MSH^1^4", "is clinic peds_clinic_a"),
                    ("ID-UNKNOWN", b"ROGUE|SOMEONE", "MSH^1^4", "not the MLLP sender of any agency"),
                    ("ID-OTHER", b"WIC|WIC-DURHAM", "PRD^1^7", "this connection is agency wic-durham")):
                ack = self.rri(gw, control_id, sender)
                self.assertEqual(hl7_field(ack, "MSA", 1), "AR", ack)
                self.assertEqual(hl7_field(ack, "ERR", 2), where, ack)
                self.assertIn(says, hl7_field(ack, "ERR", 8))
            gw.wait_drained()  # a status event any of them wrongly made would be on Kafka now
            self.assertEqual([s["status"] for s in self.statuses(gw, rid)], ["requested"])
            status, body = gw.get("/fhir/Task/" + rid)
            self.assertEqual(json.loads(body)["status"], "requested")

            ack = self.rri(gw, "ID-OWN")
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
            accepted = wait_for(lambda: [s for s in self.statuses(gw, rid) if s["status"] == "accepted"],
                                15, "the agency's own answer")
            self.assertEqual(accepted[0]["updatedBy"], {"role": "agency", "id": "ehv-durham"})
