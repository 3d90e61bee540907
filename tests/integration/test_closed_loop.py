"""A referral's whole journey through the real gateway: a clinic refers over FHIR, the agency
moves the referral through its lifecycle by FHIR PATCH and by its update topic on Kafka (kcat),
illegal moves are refused, and the status events appear in order on Kafka."""
import json
import re
import socket
import sqlite3
import threading
import time
import unittest
import uuid

import os

import shutil
import tempfile

from harness import (SAMPLES, SCHEMAS, Gateway, MockKafka, gateway_topics, assert_valid_events, consume, consume_all, wait_for,
                     hl7_field, run)
from test_fhir import AGENCY_TOKEN, CLIENTS, CLINIC_TOKEN, ENV, FhirClient, sample_path


def publish_update(bootstrap, referral_id, status, business_status=None, reason=None,
                   agency="ehv-durham", event_id=None, note=None, topic="sdoh.referral-updates.v1"):
    """An agency's update on Kafka: on the shared development topic by default, or on an agency's
    own update topic (`topic`), whose owner is who the gateway takes it to be from."""
    event = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "urn:sdoh-agency:" + agency,
        "type": "org.sdoh.referral.update.v1",
        "subject": referral_id,
        "time": "2026-11-25T10:00:00Z",
        "datacontenttype": "application/json",
        "dataschema": "urn:sdoh:schema:referral-update:v1",
        "data": {"referralId": referral_id, "status": status, "businessStatus": business_status,
                 "reason": reason, "agency": {"id": agency}, "time": "2026-11-25T10:00:00Z"},
    }
    if note:
        event["data"]["note"] = note
    out = run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-k", referral_id],
              input=json.dumps(event) + "\n")
    assert out.returncode == 0, out.stderr
    return event["id"]


class MllpReceiver:
    """A clinic's MLLP endpoint: keeps every message it gets; answers the first one AE (so the
    gateway must send it again) and the others AA."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\x1c\r" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if b"\x1c\r" not in buf:
                    continue
                message = buf[buf.index(b"\x0b") + 1:buf.index(b"\x1c\r")].decode()
                with self.lock:
                    self.messages.append(message)
                    first = len(self.messages) == 1
                control = message.split("\r")[0].split("|")[9]
                code = "AE" if first else "AA"
                ack = "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|x|20261125||ACK^I12^ACK|R%d|P|2.5.1\rMSA|%s|%s\r" % (
                    len(self.messages), code, control)
                conn.sendall(b"\x0b" + ack.encode() + b"\x1c\r")

    def received(self):
        with self.lock:
            return list(self.messages)


RECEIVER = MllpReceiver()
BUSINESS_STATUS = "urn:sdoh:codesystem:referral-business-status"

# The Early Intervention agency, which has a topic of its own, as a FHIR client.
EI_TOKEN = "ei-durham-token-0123456789abcdef"
EI_CLIENT = "    ei-durham: { token: { env: EI_TOKEN }, party: ei-durham }\n"

# Short SLA so that an unanswered referral turns overdue within the test.
TIMING = "referrals: { default_sla: 4s, overdue_check_interval: 200ms }\nmeasures: { min_cell: 1 }\n"


class ClosedLoop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The shipped routing, with the home-visiting agency on the test's short default SLA.
        cls.schemas = tempfile.mkdtemp(prefix="sdoh-schemas-")
        shutil.copytree(SCHEMAS, cls.schemas, dirs_exist_ok=True)
        routing_file = os.path.join(cls.schemas, "routing", "routing.json")
        with open(routing_file) as f:
            routing = json.load(f)
        for agency in routing["agencies"]:
            if agency["id"] in ("ehv-durham", "ccrr-durham"):
                agency.pop("sla", None)
        with open(routing_file, "w") as f:
            json.dump(routing, f)
        cls.gw = Gateway(config=CLIENTS.replace("  clients:\n", "  clients:\n" + EI_CLIENT) + TIMING, env=dict(ENV, EI_TOKEN=EI_TOKEN),
                         schemas=cls.schemas,
                         mllp_config=(", hl7: { default_timezone: America/New_York, senders: "
                                      "{ \"EHR^PEDS_CLINIC_A\": { return_address: \"127.0.0.1:%d\" } } }"
                                      % RECEIVER.port)).start()
        cls.clinic = FhirClient(cls.gw, CLINIC_TOKEN)
        cls.agency = FhirClient(cls.gw, AGENCY_TOKEN)
        cls.early_intervention = FhirClient(cls.gw, EI_TOKEN)

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        shutil.rmtree(cls.schemas, ignore_errors=True)

    def wait_for_status(self, task_id, status, timeout=20):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.clinic.call("GET", "/fhir/Task/" + task_id).json()
            if last.get("status") == status:
                return last
            time.sleep(0.2)
        self.fail("Task %s is %s, not %s" % (task_id, last and last.get("status"), status))

    def test_referral_journey_over_fhir_and_kafka(self):
        r = self.clinic.call("POST", "/fhir",
                             body_file=sample_path("bundle-transaction-screening-consent-referral.json"))
        self.assertEqual(r.status, 200, r)
        task_id = next(e["response"]["location"] for e in r.json()["entry"]
                       if e["response"]["location"].startswith("Task/")).split("/")[1]

        # The agency receives it by FHIR PATCH, then reports progress on its Kafka topic.
        received = self.agency.call("PATCH", "/fhir/Task/" + task_id,
                                    body='[{"op":"replace","path":"/status","value":"received"}]',
                                    content_type="application/json-patch+json")
        self.assertEqual(received.status, 200, received)
        publish_update(self.gw.bootstrap, task_id, "accepted", "family-contacted",
                       note="First visit on Monday")
        accepted = self.wait_for_status(task_id, "accepted")
        self.assertEqual(accepted["note"][-1]["text"], "First visit on Monday")
        dup_id = publish_update(self.gw.bootstrap, task_id, "in-progress", "enrolled")
        self.wait_for_status(task_id, "in-progress")
        publish_update(self.gw.bootstrap, task_id, "in-progress", "enrolled", event_id=dup_id)  # resend
        # Illegal: back to requested; and an agency that does not own the referral.
        publish_update(self.gw.bootstrap, task_id, "requested")
        publish_update(self.gw.bootstrap, task_id, "completed", agency="wic-east")
        publish_update(self.gw.bootstrap, task_id, "completed", "enrolled")
        final = self.wait_for_status(task_id, "completed")
        self.assertEqual(final["businessStatus"]["coding"][0],
                         {"system": BUSINESS_STATUS, "code": "enrolled", "display": "Enrolled"})

        statuses = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1", 5)
                    if k == task_id]
        self.assertEqual([(s["data"]["previousStatus"], s["data"]["status"]) for s in statuses],
                         [(None, "requested"), ("requested", "received"), ("received", "accepted"),
                          ("accepted", "in-progress"), ("in-progress", "completed")])
        self.assertEqual([s["data"]["sequence"] for s in statuses], [1, 2, 3, 4, 5])
        self.assertEqual(statuses[2]["data"]["updatedBy"], {"role": "agency", "id": "ehv-durham"})
        assert_valid_events([json.dumps(s) for s in statuses])

        # This journey's two refusals (other tests of the class refuse updates from other agencies).
        def journey_refusals():
            dead = [json.loads(v) for _, v in consume(self.gw.bootstrap, "sdoh.deadletter.v1")]
            return [d for d in dead if d["data"]["source"]["protocol"] == "kafka"
                    and d["data"]["source"]["sender"] in ("agency:ehv-durham", "agency:wic-east")]
        wait_for(lambda: len(journey_refusals()) >= 2, 20, "the journey's two refused updates")
        self.gw.wait_drained()  # a third, wrongly made, would be on Kafka now
        refused = journey_refusals()
        self.assertEqual(len(refused), 2, refused)
        self.assertTrue(all(d["data"]["stage"] == "lifecycle" for d in refused), refused)
        assert_valid_events([json.dumps(d) for d in refused])

        history = self.clinic.call("GET", "/fhir/Task/%s/_history" % task_id).json()
        self.assertEqual([e["resource"]["status"] for e in history["entry"]],
                         ["completed", "in-progress", "accepted", "received", "requested"])

        # The measures: time to accept and complete, outcomes by the family's groups (this gateway
        # shows groups of any size, measures.min_cell 1). The update is applied by the consumer's
        # thread: wait for its commit, with a deadline.
        completed = r'sdoh_referrals\{status="completed",agency="ehv-durham",category="food-insecurity"\} [1-9]'
        metrics = wait_for(lambda: (lambda m: m if re.search(completed, m) else None)(self.gw.get("/metrics")[1]),
                           30, "the referral counts to show the completed referral")
        self.assertRegex(metrics, r'sdoh_referral_time_to_accept_seconds_count\{agency="ehv-durham"\} [1-9]')
        self.assertRegex(metrics, r'sdoh_referral_time_to_complete_seconds_count\{agency="ehv-durham"\} [1-9]')
        self.assertRegex(metrics, r'sdoh_referrals\{status="completed",agency="ehv-durham",category="food-insecurity"\} [1-9]')
        closed = [l for l in metrics.splitlines()
                  if l.startswith('sdoh_referrals_closed{outcome="completed",dimension="race"')]
        self.assertTrue(closed and not closed[0].endswith(" 0"), closed)
        self.assertNotIn('group="unknown"', closed[0])


    def screening_bundle(self, n, mrn, with_consent=True):
        """The shared transaction as a screening only: Patient (MRN `mrn`), the AHC HRSN
        QuestionnaireResponse in which the family asks for help finding work and with school
        (96780-2, 96782-8), and, `with_consent`, a Consent for any agency. No ServiceRequest:
        the gateway opens the referrals from the answers."""
        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            bundle = json.load(f)
        bundle["id"] = "tx-screening-%d" % n
        bundle["identifier"]["value"] = "BUNDLE-SCREENING-%d" % n
        entries = []
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Patient":
                for ident in r["identifier"]:
                    if ident["value"] == "MRN12345":
                        ident["value"] = mrn
                entry["request"]["ifNoneExist"] = entry["request"]["ifNoneExist"].replace("MRN12345", mrn)
            if r["resourceType"] == "QuestionnaireResponse":
                r["identifier"]["value"] = "QR-SCREENING-%d" % n
                r["item"].append({"linkId": "/96780-2", "answer": [{"valueCoding": {
                    "system": "http://loinc.org", "code": "LA31981-6", "display": "Yes, help finding work"}}]})
                r["item"].append({"linkId": "/96782-8", "answer": [{"valueCoding": {
                    "system": "http://loinc.org", "code": "LA33-6", "display": "Yes"}}]})
            if r["resourceType"] == "Consent":
                if not with_consent:
                    continue
                r["provision"].pop("actor")  # the family agrees to share with any agency
            if r["resourceType"] in ("ServiceRequest", "Task"):
                continue
            entries.append(entry)
        bundle["entry"] = entries
        path = os.path.join(self.gw.dir, "screening-%d.json" % n)
        with open(path, "w") as f:
            json.dump(bundle, f)
        r = self.clinic.call("POST", "/fhir", body_file=path)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def referral_on(self, topic, patient_pseudonym, category, count=1):
        """The referral events on `topic` for this child and need (waits for `count`)."""
        deadline = time.monotonic() + 15
        found = []
        while time.monotonic() < deadline:
            found = [json.loads(v) for _, v in consume(self.gw.bootstrap, topic)]
            found = [e for e in found if e["data"]["patient"]["pseudonym"] == patient_pseudonym
                     and e["data"]["category"] == category]
            if len(found) >= count:
                break
            time.sleep(0.2)
        self.assertEqual(len(found), count, found)
        return found

    def statuses_of(self, referral_id, count, timeout=20):
        deadline = time.monotonic() + timeout
        found = []
        while time.monotonic() < deadline:
            found = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1")
                     if k == referral_id]
            if len(found) >= count:
                break
            time.sleep(0.3)
        return found

    def test_updates_sent_as_cloudevents_sdks_send_them(self):
        """An agency's updates from an independent client (confluent-kafka, librdkafka's Python
        binding): binary mode with ce_* headers and a W3C traceparent, structured mode without
        the optional attributes, and a refusal that names the missing property."""
        from confluent_kafka import Producer

        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            bundle = json.load(f)
        bundle["identifier"]["value"] = "CE-BUNDLE-" + uuid.uuid4().hex[:12]
        for entry in bundle["entry"]:  # a new screening and referral, not a resend
            if entry["resource"]["resourceType"] == "ServiceRequest":
                entry["resource"]["identifier"][0]["value"] = "CE-" + uuid.uuid4().hex[:12]
            if entry["resource"]["resourceType"] == "QuestionnaireResponse":
                entry["resource"]["identifier"]["value"] = "CE-QR-" + uuid.uuid4().hex[:12]
        path = os.path.join(self.gw.dir, "ce-bundle.json")
        with open(path, "w") as f:
            json.dump(bundle, f)
        clinic_trace = "00-%s-%s-01" % (uuid.uuid4().hex, uuid.uuid4().hex[:16])
        r = self.clinic.call("POST", "/fhir", body_file=path, headers=["traceparent: " + clinic_trace])
        self.assertEqual(r.status, 200, r)
        # The clinic's own Task (the response's entries follow the request's).
        at = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Task")
        task_id = r.json()["entry"][at]["response"]["location"].split("/")[1]

        producer = Producer({"bootstrap.servers": self.gw.bootstrap})
        trace = "00-%s-%s-01" % (uuid.uuid4().hex, uuid.uuid4().hex[:16])

        def binary(data, **attrs):
            headers = [("ce_specversion", "1.0"), ("ce_id", str(uuid.uuid4())),
                       ("ce_source", "urn:sdoh-agency:ehv-durham"),
                       ("ce_type", "org.sdoh.referral.update.v1"), ("content-type", "application/json")]
            headers += [("ce_" + k, v) for k, v in attrs.items()]
            producer.produce("sdoh.referral-updates.v1", key=task_id, value=json.dumps(data), headers=headers)
            producer.flush(10)

        update = {"referralId": task_id, "status": "accepted", "businessStatus": "family-contacted",
                  "reason": None, "agency": {"id": "ehv-durham"}}
        binary(update, traceparent=trace)
        self.wait_for_status(task_id, "accepted")
        # Structured mode with only what CloudEvents 1.0 requires, and an extension of its own.
        structured = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "urn:sdoh-agency:ehv-durham",
                      "type": "org.sdoh.referral.update.v1", "partitionkey": task_id,
                      "data": dict(update, status="in-progress", businessStatus="enrolled")}
        producer.produce("sdoh.referral-updates.v1", key=task_id, value=json.dumps(structured),
                         headers=[("content-type", "application/cloudevents+json")])
        producer.flush(10)
        self.wait_for_status(task_id, "in-progress")
        # reason left out: refused, naming it.
        incomplete = dict(update, status="completed", businessStatus="enrolled")
        del incomplete["reason"]
        binary(incomplete)
        wait_for(lambda: any(e.get("event") == "kafka.update_refused" and
                             "data.reason: required" in e.get("reason", "")
                             for e in self.gw.log_events()), 20, "the refusal naming data.reason")
        self.assertEqual(self.clinic.call("GET", "/fhir/Task/" + task_id).json()["status"], "in-progress")
        statuses = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1", 3)
                    if k == task_id]
        self.assertEqual([s["data"]["status"] for s in statuses], ["requested", "accepted", "in-progress"])
        # Each trace goes on with the events its request caused: the clinic's HTTP request's with
        # the referral's first status event and its referral event, the agency's update's with
        # the status event it caused.
        self.assertEqual([s.get("traceparent") for s in statuses], [clinic_trace, trace, None])
        referrals = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral.v1", 1)]
        self.assertEqual([e.get("traceparent") for e in referrals if e["data"]["referralId"] == task_id],
                         [clinic_trace])
        assert_valid_events([json.dumps(s) for s in statuses])

    def test_an_agency_topic_carries_only_that_agencys_updates(self):
        # A housing referral, routed to the legal-aid agency.
        task_id = self.referral_without_agency(7, "housing-instability")
        task = self.clinic.call("GET", "/fhir/Task/" + task_id).json()
        self.assertEqual(task["owner"]["reference"], "Organization/legal-aid-triangle")
        before = self.gw.metric("sdoh_dead_letters_stored")
        # WIC writes on its own topic about legal aid's referral, once naming itself and once
        # pretending to be legal aid: both refused, the referral untouched.
        publish_update(self.gw.bootstrap, task_id, "received", agency="wic-durham",
                       topic="sdoh.referral-updates.wic-durham")
        publish_update(self.gw.bootstrap, task_id, "received", agency="legal-aid-triangle",
                       topic="sdoh.referral-updates.wic-durham")
        wait_for(lambda: self.gw.metric("sdoh_dead_letters_stored") >= before + 2, 20,
                 "both updates dead-lettered")
        self.assertEqual(self.clinic.call("GET", "/fhir/Task/" + task_id).json()["status"], "requested")
        refused = [json.loads(v)["data"] for _, v in consume(self.gw.bootstrap, "sdoh.deadletter.v1")]
        refused = [d for d in refused if d["source"].get("protocol") == "kafka"
                   and d["source"].get("sender") == "agency:wic-durham"]
        self.assertTrue(any("owned by another agency" in d["error"]["text"] for d in refused), refused)
        self.assertTrue(any("came on agency wic-durham's topic but names agency legal-aid-triangle"
                            in d["error"]["text"] for d in refused), refused)
        # Legal aid on its own topic: applied, as legal aid.
        publish_update(self.gw.bootstrap, task_id, "received", agency="legal-aid-triangle",
                       topic="sdoh.referral-updates.legal-aid-triangle")
        self.wait_for_status(task_id, "received")
        statuses = [json.loads(v)["data"] for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1")
                    if k == task_id]
        self.assertEqual(statuses[-1]["updatedBy"], {"role": "agency", "id": "legal-aid-triangle"})

    def test_screening_with_assistance_requested_refers_to_the_routed_agencies(self):
        self.screening_bundle(1, "MRN-ASSIST-1")
        screening = [json.loads(v) for _, v in consume(self.gw.bootstrap, "sdoh.screening.v1")]
        screening = next(e for e in screening if e["data"]["source"]["messageId"] == "QR-SCREENING-1")
        pseudonym = screening["data"]["patient"]["pseudonym"]
        asked = {d["category"] for d in screening["data"]["domains"] if d["assistanceRequested"]}
        self.assertEqual(asked, {"employment-status", "educational-attainment"})

        # Routed by need, area (ZIP 277) and age (6 months): Early Intervention on its own topic,
        # child care resource and referral on the shared one; consent given, so contact details.
        ei = self.referral_on("sdoh.referral.ei-durham", pseudonym, "educational-attainment")[0]
        ccrr = self.referral_on("sdoh.referral.v1", pseudonym, "employment-status")[0]
        self.assertEqual(ei["data"]["agency"]["id"], "ei-durham")
        self.assertEqual(ccrr["data"]["agency"]["id"], "ccrr-durham")
        for event in (ei, ccrr):
            self.assertEqual(event["data"]["consent"]["status"], "active")
            self.assertEqual(event["data"]["contact"]["phone"], "+19195551234")
            self.assertIsNone(event["data"]["businessStatus"])
        assert_valid_events([json.dumps(ei), json.dumps(ccrr)])
        ei_id, ccrr_id = ei["data"]["referralId"], ccrr["data"]["referralId"]

        # The clinic sees both referrals as Tasks the gateway made, owned by the agencies.
        task = self.clinic.call("GET", "/fhir/Task/" + ei_id).json()
        self.assertEqual((task["status"], task["owner"]["reference"]), ("requested", "Organization/ei-durham"))
        sr = self.clinic.call("GET", "/fhir/" + task["focus"]["reference"]).json()
        self.assertTrue(sr["reasonReference"][0]["reference"].startswith("QuestionnaireResponse/"), sr)

        # Early Intervention takes its referral through the lifecycle: FHIR PATCH, then Kafka.
        patch = '[{"op":"replace","path":"/status","value":"received"}]'
        self.assertEqual(self.early_intervention.call(
            "PATCH", "/fhir/Task/" + ei_id, body=patch, content_type="application/json-patch+json").status, 200)
        # Not its referral: another agency may not move it (nor even see it).
        self.assertEqual(self.agency.call(
            "PATCH", "/fhir/Task/" + ei_id, body=patch.replace("received", "accepted"),
            content_type="application/json-patch+json").status, 404)
        publish_update(self.gw.bootstrap, ei_id, "accepted", "scheduled", agency="ei-durham")
        publish_update(self.gw.bootstrap, ei_id, "in-progress", "completed", agency="ei-durham")  # not a code of in-progress
        publish_update(self.gw.bootstrap, ei_id, "in-progress", "enrolled", agency="ei-durham")
        publish_update(self.gw.bootstrap, ei_id, "completed", "service-provided", agency="ei-durham")
        final = self.wait_for_status(ei_id, "completed")
        self.assertEqual(final["businessStatus"]["coding"][0]["code"], "service-provided")
        statuses = self.statuses_of(ei_id, 5)
        self.assertEqual([(s["data"]["status"], s["data"]["businessStatus"]) for s in statuses],
                         [("requested", None), ("received", None), ("accepted", "scheduled"),
                          ("in-progress", "enrolled"), ("completed", "service-provided")])
        assert_valid_events([json.dumps(s) for s in statuses])
        refused = [json.loads(v) for _, v in consume(self.gw.bootstrap, "sdoh.deadletter.v1")]
        refused = [d for d in refused if d["data"]["stage"] == "lifecycle"
                   and d["data"]["source"]["protocol"] == "kafka"
                   and "businessStatus" in d["data"]["error"]["text"]]
        self.assertTrue(refused, "the update with a businessStatus that does not fit was not dead-lettered")

        # Nobody answers the child-care referral: it turns overdue, once.
        overdue = self.statuses_of(ccrr_id, 2)
        self.assertEqual([(s["data"]["status"], s["data"]["businessStatus"]) for s in overdue],
                         [("requested", None), ("requested", "overdue")])

    def test_consent_arriving_later_releases_the_waiting_referral(self):
        answer = self.screening_bundle(2, "MRN-ASSIST-2", with_consent=False)
        patient = next(e["response"]["location"] for e in answer["entry"]
                       if e["response"]["location"].startswith("Patient/")).split("/")[1]
        screening = [json.loads(v) for _, v in consume(self.gw.bootstrap, "sdoh.screening.v1")]
        pseudonym = next(e for e in screening
                         if e["data"]["source"]["messageId"] == "QR-SCREENING-2")["data"]["patient"]["pseudonym"]
        first = self.referral_on("sdoh.referral.v1", pseudonym, "employment-status")[0]
        rid = first["data"]["referralId"]
        self.assertEqual(first["data"]["businessStatus"], "awaiting-consent")
        self.assertNotIn("contact", first["data"])
        task = self.clinic.call("GET", "/fhir/Task/" + rid).json()
        self.assertEqual(task["businessStatus"]["coding"][0]["code"], "awaiting-consent")
        waiting = self.clinic.call("GET", "/fhir/Task?business-status=awaiting-consent&patient=Patient/" + patient).json()
        self.assertEqual(waiting["total"], 2)  # child care and Early Intervention both wait

        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            consent = next(e["resource"] for e in json.load(f)["entry"]
                           if e["resource"]["resourceType"] == "Consent")
        consent["patient"] = {"reference": "Patient/" + patient}
        consent["provision"]["actor"][0]["reference"]["reference"] = "Organization/ccrr-durham"
        posted = self.clinic.call("POST", "/fhir/Consent", body=json.dumps(consent))
        self.assertEqual(posted.status, 201, posted)

        # Released for the agency the family agreed to, not for the other.
        again = self.referral_on("sdoh.referral.v1", pseudonym, "employment-status", count=2)[1]
        self.assertEqual(again["data"]["referralId"], rid)
        self.assertEqual(again["data"]["consent"]["status"], "active")
        self.assertEqual(again["data"]["contact"]["phone"], "+19195551234")
        self.assertIsNone(again["data"]["businessStatus"])
        assert_valid_events([json.dumps(again)])
        statuses = self.statuses_of(rid, 2)
        self.assertEqual([(s["data"]["businessStatus"], s["data"]["updatedBy"]["role"]) for s in statuses[:2]],
                         [("awaiting-consent", "clinic"), (None, "gateway")])
        task = self.clinic.call("GET", "/fhir/Task/" + rid).json()
        self.assertNotIn("businessStatus", task)
        self.assertEqual(task["meta"]["versionId"], "2")
        still = self.clinic.call("GET", "/fhir/Task?business-status=awaiting-consent&patient=Patient/" + patient).json()
        self.assertEqual(still["total"], 1)

    def referral_without_agency(self, n, category, postal_code=None):
        """The shared transaction, as a new referral for `category` that names no agency (for a
        family at `postal_code`, else the sample's ZIP 27701)."""
        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            bundle = json.load(f)
        bundle["id"] = "tx-routing-%d" % n
        bundle["identifier"]["value"] = "BUNDLE-ROUTING-%d" % n
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "QuestionnaireResponse":
                r["identifier"]["value"] = "QR-ROUTING-%d" % n
            if r["resourceType"] == "ServiceRequest":
                r["identifier"][0]["value"] = "REF-ROUTING-%d" % n
                r["category"][0]["coding"][0]["code"] = category
                r.pop("performer", None)
                r.pop("code", None)
            if r["resourceType"] == "Task":
                r.pop("owner", None)
            if r["resourceType"] == "Patient" and postal_code:
                r["address"][0]["postalCode"] = postal_code
        path = os.path.join(self.gw.dir, "routing-%d.json" % n)
        with open(path, "w") as f:
            json.dump(bundle, f)
        r = self.clinic.call("POST", "/fhir", body_file=path)
        self.assertEqual(r.status, 200, r)
        return next(e["response"]["location"] for e in r.json()["entry"]
                    if e["response"]["location"].startswith("Task/")).split("/")[1]

    def test_routing_sends_to_the_agency_topic_or_holds(self):
        # Housing, family in ZIP 277: the legal-aid agency, which has a topic of its own.
        routed = self.referral_without_agency(1, "housing-instability")
        on_topic = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral.legal-aid-triangle", 1)
                    if k == routed]
        self.assertEqual(len(on_topic), 1)
        self.assertEqual(on_topic[0]["data"]["agency"]["id"], "legal-aid-triangle")
        self.assertEqual(on_topic[0]["data"]["agency"]["topic"], "sdoh.referral.legal-aid-triangle")
        # Chosen by routing: the route for anywhere; ZIP 27701 lies in Durham County alone.
        self.assertEqual(on_topic[0]["data"]["routing"], {"area": "anywhere", "countyBasis": "zip-sole"})
        assert_valid_events([json.dumps(e) for e in on_topic])
        self.assertNotIn(routed, [k for k, _ in consume(self.gw.bootstrap, "sdoh.referral.v1")])
        task = self.clinic.call("GET", "/fhir/Task/" + routed).json()
        self.assertEqual(task["owner"]["reference"], "Organization/legal-aid-triangle")
        # No agency takes transportation needs here: held, reported, never dropped.
        held = self.referral_without_agency(2, "transportation-insecurity")
        statuses = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1", 1)
                    if k == held]
        self.assertEqual(len(statuses), 1)
        self.assertEqual(statuses[0]["data"]["businessStatus"], "no-route")
        self.assertIsNone(statuses[0]["data"]["agency"])
        assert_valid_events([json.dumps(e) for e in statuses])
        task = self.clinic.call("GET", "/fhir/Task/" + held).json()
        self.assertEqual((task["status"], task["businessStatus"]["coding"][0]["code"]), ("requested", "no-route"))
        held_count = r'sdoh_referrals_held\{reason="no-route"\} [1-9]'
        wait_for(lambda: re.search(held_count, self.gw.get("/metrics")[1]), 30, "the held referral's count")
        found = self.clinic.call("GET", "/fhir/Task?business-status=no-route").json()
        self.assertIn(held, [e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"])

    def test_fhir_referral_routes_by_the_county_of_its_zip(self):
        # Food for an infant in ZIP 27516 (Chapel Hill: 83% of its land in Orange County, 17% in
        # Chatham). A FHIR address has no county: the Census crosswalk gives Orange, whose WIC
        # route wins over the food bank's ZIP3 275 route.
        routed = self.referral_without_agency(3, "food-insecurity", postal_code="27516-4012")
        events = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral.v1", 1)
                  if k == routed]
        self.assertEqual(len(events), 1)
        data = events[0]["data"]
        self.assertEqual(data["agency"]["id"], "wic-orange")
        self.assertEqual(data["routing"], {"area": "county", "countyBasis": "zip-largest-share"})
        self.assertEqual(data["patient"]["zip3"], "275")
        assert_valid_events([json.dumps(e) for e in events])
        task = self.clinic.call("GET", "/fhir/Task/" + routed).json()
        self.assertEqual(task["owner"]["reference"], "Organization/wic-orange")

    def test_hl7_referral_left_unanswered_turns_overdue_once(self):
        out = run(["mllp_send", "--loose", "--file", os.path.join(SAMPLES, "hl7v2", "ref-i12-home-visiting.hl7"),
                   "--port", str(self.gw.mllp_address[1]), self.gw.mllp_address[0]])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(hl7_field(out.stdout, "MSA", 1), "CA")
        referral = [json.loads(v) for _, v in consume(self.gw.bootstrap, "sdoh.referral.v1", 1)]
        rid = next(e["data"]["referralId"] for e in referral
                   if e["data"]["clinicReferralNumber"]["value"] == "REF-2026-0001")
        deadline = time.monotonic() + 20
        statuses = []
        while time.monotonic() < deadline:
            statuses = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1")
                        if k == rid]
            if len(statuses) >= 2:
                break
            time.sleep(0.3)
        # Three more passes of the overdue check, then everything published: still one overdue event.
        checks = self.gw.metric("sdoh_referrals_overdue_checks_total")
        wait_for(lambda: self.gw.metric("sdoh_referrals_overdue_checks_total") >= checks + 3, 30,
                 "three more overdue checks")
        self.gw.wait_drained()
        statuses = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1") if k == rid]
        self.assertEqual([(s["data"]["status"], s["data"]["businessStatus"]) for s in statuses],
                         [("requested", None), ("requested", "overdue")], statuses)
        overdue = statuses[1]["data"]
        self.assertEqual(overdue["previousStatus"], "requested")
        self.assertEqual(overdue["updatedBy"], {"role": "gateway", "id": "overdue"})
        self.assertEqual(overdue["sequence"], 2)
        assert_valid_events([json.dumps(s) for s in statuses])
        task = self.clinic.call("GET", "/fhir/Task/" + rid)
        # An HL7 referral is the HL7 sender's: the FHIR clinic client does not see it, the agency does.
        self.assertEqual(task.status, 404)
        task = self.agency.call("GET", "/fhir/Task/" + rid).json()
        self.assertEqual(task["businessStatus"]["coding"][0]["code"], "overdue")
        metrics = self.gw.get("/metrics")[1]
        self.assertIn('sdoh_referrals_overdue_total{agency="ehv-durham"} 1', metrics)
        # The agency can still take it on.
        accepted = self.agency.call("PATCH", "/fhir/Task/" + rid,
                                    body='[{"op":"replace","path":"/status","value":"accepted"}]',
                                    content_type="application/json-patch+json")
        self.assertEqual(accepted.status, 200, accepted)

        # The clinic's MLLP endpoint got an RRI^I12 for each change, the refused one again.
        deadline = time.monotonic() + 20
        answers = []
        while time.monotonic() < deadline:
            answers = [m for m in RECEIVER.received() if rid in m]
            if len({m.split("\r")[0].split("|")[9] for m in answers}) >= 2:
                break
            time.sleep(0.2)
        by_control = {}
        for m in answers:
            by_control.setdefault(m.split("\r")[0].split("|")[9], []).append(m)
        self.assertEqual(len(by_control), 2, answers)
        self.assertTrue(any(len(v) >= 2 for v in by_control.values()), "the AE'd one was not resent")
        rf1 = {}
        for control, copies in by_control.items():
            segs = {line.split("|")[0]: line for line in copies[0].split("\r") if line}
            self.assertTrue(segs["MSH"].split("|")[8].startswith("RRI^I12"), segs["MSH"])
            self.assertEqual(segs["MSA"].split("|")[2], "A1000003")
            self.assertEqual(segs["PID"].split("|")[3], "MRN12345^^^PEDS_A^MR")
            fields = segs["RF1"].split("|")
            self.assertEqual(fields[6], "REF-2026-0001^PEDS_A")
            self.assertEqual(fields[11], rid + "^SDOH_GW")
            rf1[fields[1]] = segs.get("NTE", "")
        self.assertEqual(set(rf1), {"P^requested^HL70283", "A^accepted^HL70283"})
        self.assertIn("overdue", rf1["P^requested^HL70283"])


ADMIN_TOKEN = "closed-loop-admin-token-0123456789"
DEADLETTERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "deadletters")


class HeldReferralReplay(unittest.TestCase):
    """A referral no route matches is held and listed as a dead letter (stage route); after the
    operator adds a route and restarts, replaying the dead letter releases it to the agency."""

    def test_replay_after_adding_a_route_releases_the_held_referral(self):
        schemas = tempfile.mkdtemp(prefix="sdoh-schemas-")
        self.addCleanup(shutil.rmtree, schemas, True)
        shutil.copytree(SCHEMAS, schemas, dirs_exist_ok=True)
        routing_file = os.path.join(schemas, "routing", "routing.json")
        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            bundle = json.load(f)
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "ServiceRequest":
                r["category"][0]["coding"][0]["code"] = "transportation-insecurity"
                r.pop("performer", None)
                r.pop("code", None)
            if r["resourceType"] == "Task":
                r.pop("owner", None)
            if r["resourceType"] == "Consent":
                r["provision"].pop("actor")
        env = dict(ENV, SDOH_ADMIN_TOKEN=ADMIN_TOKEN)
        admin = "admin: { token: { env: SDOH_ADMIN_TOKEN } }\n"
        tools_env = dict(os.environ, SDOH_ADMIN_TOKEN=ADMIN_TOKEN)
        with MockKafka(brokers=1, partitions=1) as kafka:
            gw = Gateway(config=CLIENTS + admin, env=env, schemas=schemas,
                         kafka="{ brokers: \"%s\", metadata_interval: 500ms }" % kafka.bootstrap).start()
            try:
                path = os.path.join(gw.dir, "held.json")
                with open(path, "w") as f:
                    json.dump(bundle, f)
                clinic = FhirClient(gw, CLINIC_TOKEN)
                answer = clinic.call("POST", "/fhir", body_file=path)
                self.assertEqual(answer.status, 200, answer)
                rid = next(e["response"]["location"] for e in answer.json()["entry"]
                           if e["response"]["location"].startswith("Task/")).split("/")[1]
                listed = run([DEADLETTERS, "--url", gw.http_url, "--json", "list"], env=tools_env)
                [dl] = json.loads(listed.stdout)["deadLetters"]
                self.assertEqual(dl["stage"], "route")
                self.assertIn("transportation-insecurity", dl["error"]["text"])
                # Replayed before a route exists: still held.
                early = run([DEADLETTERS, "--url", gw.http_url, "replay", dl["deadLetterId"]], env=tools_env)
                self.assertEqual(early.returncode, 1, early.stdout)
                self.assertIn("still rejected", early.stdout + early.stderr)
                self.assertEqual(gw.stop(), 0)

                # The operator adds an agency and a route for the need, restarts and replays.
                with open(routing_file) as f:
                    routing = json.load(f)
                routing["agencies"].append({"id": "rides-durham", "name": "Durham Medicaid Rides",
                                            "kind": "other", "sla": "2d"})
                routing["routes"].append({"category": "transportation-insecurity",
                                          "area": {"zip3": ["277"]}, "agency": "rides-durham"})
                with open(routing_file, "w") as f:
                    json.dump(routing, f)
                # As an operator would: the new agency's update topic exists before the restart
                # (readiness names it until it does).
                self.assertIn("sdoh.referral-updates.rides-durham", gateway_topics(schemas))
                kafka.command("create sdoh.referral-updates.rides-durham 1")
                gw.log_file.close()
                gw.start()
                replayed = run([DEADLETTERS, "--url", gw.http_url, "replay", dl["deadLetterId"]], env=tools_env)
                self.assertEqual(replayed.returncode, 0, replayed.stdout + replayed.stderr)

                deadline = time.monotonic() + 15
                referrals = []
                while time.monotonic() < deadline and not referrals:
                    referrals = [json.loads(v) for _, v in consume_all(kafka.bootstrap, "sdoh.referral.v1")]
                    referrals = [e for e in referrals if e["data"]["referralId"] == rid]
                    time.sleep(0.2)
                self.assertEqual(len(referrals), 1, referrals)
                self.assertEqual(referrals[0]["data"]["agency"]["id"], "rides-durham")
                self.assertEqual(referrals[0]["data"]["contact"]["phone"], "+19195551234")
                statuses = [json.loads(v) for _, v in consume_all(kafka.bootstrap, "sdoh.referral-status.v1")]
                statuses = [e["data"] for e in statuses if e["data"]["referralId"] == rid]
                self.assertEqual([(s["businessStatus"], s["updatedBy"]["id"], s["sequence"]) for s in statuses],
                                 [("no-route", "routing", 1), (None, "routing", 2)])
                assert_valid_events([json.dumps(e) for e in referrals])
                task = FhirClient(gw, CLINIC_TOKEN).call("GET", "/fhir/Task/" + rid).json()
                self.assertEqual(task["owner"]["reference"], "Organization/rides-durham")
                self.assertNotIn("businessStatus", task)
                after = json.loads(run([DEADLETTERS, "--url", gw.http_url, "--json", "list"],
                                       env=tools_env).stdout)
                self.assertEqual(after["waiting"], 0, after)
                # The replay found what the first request stored (the ids its answer named):
                # one of each resource, not a second copy under ids of the replay's time.
                self.assertEqual(stored_resource_counts(gw),
                                 {"Consent": 1, "Patient": 1, "QuestionnaireResponse": 1,
                                  "ServiceRequest": 1, "Task": 1})
            finally:
                gw.__exit__(None, None, None)


def stored_resource_counts(gw):
    """{type: count} of the FHIR resources in a running gateway's SQLite store (read-only)."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(gw.data_dir, "gateway.db"), uri=True)
    try:
        return dict(db.execute("SELECT type, count(*) FROM resources GROUP BY type").fetchall())
    finally:
        db.close()


class UncategorisedReferralReplay(unittest.TestCase):
    """A referral in a clinic's local codes that no table translates is accepted and held
    (uncategorised) with a dead letter naming the codes; `tools/deadletters show` prints the rows
    to add; once the operator adds a local code table and restarts, the replay sends the referral
    to its agency with its need."""

    LOCAL_SYSTEM = "http://peds-a.example.org/referral-codes"

    def test_replay_after_translating_the_local_code_releases_the_referral(self):
        schemas = tempfile.mkdtemp(prefix="sdoh-schemas-")
        self.addCleanup(shutil.rmtree, schemas, True)
        shutil.copytree(SCHEMAS, schemas, dirs_exist_ok=True)
        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            bundle = json.load(f)
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "ServiceRequest":
                # The clinic's own code only: no SDOHCC category.
                r.pop("category")
                r["code"] = {"coding": [{"system": self.LOCAL_SYSTEM, "code": "EI",
                                         "display": "Early intervention"}]}
        env = dict(ENV, SDOH_ADMIN_TOKEN=ADMIN_TOKEN)
        admin = "admin: { token: { env: SDOH_ADMIN_TOKEN } }\n"
        tools_env = dict(os.environ, SDOH_ADMIN_TOKEN=ADMIN_TOKEN)
        with MockKafka(brokers=1, partitions=1) as kafka:
            gw = Gateway(config=CLIENTS + admin, env=env, schemas=schemas,
                         kafka="{ brokers: \"%s\", metadata_interval: 500ms }" % kafka.bootstrap).start()
            try:
                path = os.path.join(gw.dir, "local.json")
                with open(path, "w") as f:
                    json.dump(bundle, f)
                clinic = FhirClient(gw, CLINIC_TOKEN)
                answer = clinic.call("POST", "/fhir", body_file=path)
                self.assertEqual(answer.status, 200, answer)
                rid = next(e["response"]["location"] for e in answer.json()["entry"]
                           if e["response"]["location"].startswith("Task/")).split("/")[1]
                task = clinic.call("GET", "/fhir/Task/" + rid).json()
                self.assertEqual(task["businessStatus"]["coding"][0]["code"], "uncategorised")
                self.assertNotIn("reasonCode", task)
                found = clinic.call("GET", "/fhir/Task?business-status=uncategorised").json()
                self.assertEqual([e["resource"]["id"] for e in found.get("entry", [])], [rid])

                listed = run([DEADLETTERS, "--url", gw.http_url, "--json", "list"], env=tools_env)
                [dl] = json.loads(listed.stdout)["deadLetters"]
                self.assertEqual(dl["stage"], "map")
                self.assertIn("].resource.code %s|EI" % self.LOCAL_SYSTEM, dl["error"]["text"])
                shown = run([DEADLETTERS, "--url", gw.http_url, "show", dl["deadLetterId"]], env=tools_env)
                self.assertEqual(shown.returncode, 0, shown.stderr)
                self.assertIn('"senders" lists "clinic-a"', shown.stdout)
                self.assertIn('{"system": "%s", "code": "EI", "category":' % self.LOCAL_SYSTEM, shown.stdout)
                # Replayed before a table translates it: still held, nothing published.
                early = run([DEADLETTERS, "--url", gw.http_url, "replay", dl["deadLetterId"]], env=tools_env)
                self.assertEqual(early.returncode, 1, early.stdout)
                self.assertEqual(gw.stop(), 0)

                # The operator translates the clinic's code, restarts and replays.
                with open(os.path.join(schemas, "mappings", "local", "clinic-a.json"), "w") as f:
                    json.dump({"id": "clinic-a", "title": "Peds Clinic A referral codes",
                               "senders": ["clinic-a"], "sources": ["the clinic's interface specification"],
                               "codes": [{"system": self.LOCAL_SYSTEM, "code": "EI",
                                          "category": "educational-attainment"}]}, f)
                gw.log_file.close()
                gw.start()
                replayed = run([DEADLETTERS, "--url", gw.http_url, "replay", dl["deadLetterId"]], env=tools_env)
                self.assertEqual(replayed.returncode, 0, replayed.stdout + replayed.stderr)

                deadline = time.monotonic() + 15
                referrals = []
                while time.monotonic() < deadline and not referrals:
                    referrals = [json.loads(v) for _, v in consume_all(kafka.bootstrap, "sdoh.referral.v1")]
                    referrals = [e for e in referrals if e["data"]["referralId"] == rid]
                    time.sleep(0.2)
                self.assertEqual(len(referrals), 1, referrals)
                self.assertEqual(referrals[0]["data"]["category"], "educational-attainment")
                self.assertEqual(referrals[0]["data"]["agency"]["id"], "ehv-durham")  # as the Task names it
                statuses = [json.loads(v) for _, v in consume_all(kafka.bootstrap, "sdoh.referral-status.v1")]
                statuses = [e["data"] for e in statuses if e["data"]["referralId"] == rid]
                self.assertEqual([(s["businessStatus"], s["category"], s["sequence"]) for s in statuses],
                                 [("uncategorised", "sdoh-category-unspecified", 1),
                                  (None, "educational-attainment", 2)])
                assert_valid_events([json.dumps(e) for e in referrals])
                task = FhirClient(gw, CLINIC_TOKEN).call("GET", "/fhir/Task/" + rid).json()
                self.assertEqual(task["reasonCode"]["coding"][0]["code"], "educational-attainment")
                self.assertEqual(task["owner"]["reference"], "Organization/ehv-durham")
                self.assertNotIn("businessStatus", task)
            finally:
                gw.__exit__(None, None, None)


if __name__ == "__main__":
    unittest.main()
