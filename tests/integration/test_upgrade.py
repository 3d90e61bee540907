"""A store written by the previous release (schema v8, tests/data/store-v8.sql: one HL7 referral
accepted by its agency, one FHIR referral received) under the real binary: the referrals keep
their ids, state and history, the agency's next answer and the clinic's resend find them, and only
referrals made after the upgrade get keyed (unguessable) ids."""
import hashlib
import json
import os
import sqlite3
import unittest

from harness import SAMPLES, Gateway, consume, hl7_field, mllp_exchange, wait_for

HL7 = os.path.join(SAMPLES, "hl7v2")
FIXTURE = os.path.join(os.environ.get("SDOH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                       "tests", "data", "store-v8.sql")
HL7_REFERRAL = "30f3bd00d5ce9c0145130f6f25b893e1"   # REF-2026-0001 from EHR^PEDS_CLINIC_A, accepted
FHIR_REFERRAL = "bc267ce829753d7db4a4234d1b488498"  # REF-2026-0002, received


def sample(name):
    with open(os.path.join(HL7, name), "rb") as f:
        return f.read().replace(b"\r\n", b"\r").replace(b"\n", b"\r").rstrip(b"\r")


def unkeyed_id(system, value):
    """The id the previous release derived from a clinic's number: anyone could compute it."""
    return hashlib.sha256(("referral|%s|%s#0" % (system, value)).encode()).hexdigest()[:32]


class StoreUpgrade(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(mllp_config=", hl7: { default_timezone: America/New_York }")
        os.makedirs(self.gw.data_dir, exist_ok=True)
        with open(FIXTURE) as f:
            db = sqlite3.connect(os.path.join(self.gw.data_dir, "gateway.db"))
            db.executescript(f.read())
            db.close()
        self.gw.start()

    def tearDown(self):
        self.assertEqual(self.gw.stop(), 0)
        self.gw.__exit__(None, None, None)

    def statuses(self, referral_id):
        return sorted((json.loads(v)["data"] for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1")
                       if k == referral_id), key=lambda d: d["sequence"])

    def test_referrals_made_before_keep_their_ids_state_and_history(self):
        self.assertEqual(unkeyed_id("PEDS_A", "REF-2026-0001"), HL7_REFERRAL)
        # Read as they were.
        for referral_id, status, versions in ((HL7_REFERRAL, "accepted", 2), (FHIR_REFERRAL, "received", 2)):
            code, body = self.gw.get("/fhir/Task/" + referral_id)
            self.assertEqual(code, 200, body)
            task = json.loads(body)
            self.assertEqual((task["id"], task["status"], task["meta"]["versionId"]),
                             (referral_id, status, str(versions)))
            code, body = self.gw.get("/fhir/Task/%s/_history" % referral_id)
            self.assertEqual(code, 200, body)
            self.assertEqual(json.loads(body)["total"], versions)

        # The agency's next answer finds the HL7 referral by its number and moves it on.
        rri = sample("rri-i12-accepted.hl7").replace(b"A^Accepted^HL70283", b"in-progress^In progress^LOCAL") \
            .replace(b"|EHV-55|", b"|EHV-UPGRADE-1|")
        ack = mllp_exchange(self.gw.mllp_address, [rri])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
        moved = wait_for(lambda: [s for s in self.statuses(HL7_REFERRAL) if s["status"] == "in-progress"],
                         15, "the agency's answer about the old referral")
        self.assertEqual((moved[0]["sequence"], moved[0]["previousStatus"]), (3, "accepted"))

        # The clinic sends the old referral again under a new control id: the same referral, no new one.
        resend = sample("ref-i12-home-visiting.hl7").replace(b"|A1000003|", b"|A-UPGRADE-1|")
        self.assertIn(hl7_field(mllp_exchange(self.gw.mllp_address, [resend])[0], "MSA", 1), ("CA", "AA"))
        code, body = self.gw.get("/fhir/Task?identifier=PEDS_A%7CREF-2026-0001")
        tasks = [e["resource"]["id"] for e in json.loads(body).get("entry", [])
                 if e["resource"]["resourceType"] == "Task"]
        self.assertEqual(tasks, [HL7_REFERRAL])
        wait_for(lambda: self.gw.metric(
            'sdoh_hl7_referral_messages_total{type="REF^I12",outcome="already-known"}') == 1,
            15, "the resend recognised")

        # A referral made now gets a keyed id, not the hash anyone could compute from its number.
        new = sample("ref-i12-home-visiting.hl7").replace(b"|A1000003|", b"|A-UPGRADE-2|") \
            .replace(b"REF-2026-0001", b"REF-2026-0777")
        self.assertIn(hl7_field(mllp_exchange(self.gw.mllp_address, [new])[0], "MSA", 1), ("CA", "AA"))
        code, body = self.gw.get("/fhir/Task?identifier=PEDS_A%7CREF-2026-0777")
        tasks = [e["resource"]["id"] for e in json.loads(body).get("entry", [])
                 if e["resource"]["resourceType"] == "Task"]
        self.assertEqual(len(tasks), 1, body)
        self.assertRegex(tasks[0], "^[0-9a-f]{32}$")
        self.assertNotEqual(tasks[0], unkeyed_id("PEDS_A", "REF-2026-0777"))

    def test_the_measures_count_the_referrals_made_before(self):
        # The migration filled their timelines from their state: both released when made, one
        # accepted, one received, both counted in the funnel.
        code, body = self.gw.get("/ops/api/v1/referrals")
        self.assertEqual(code, 200, body)
        row = next(r for r in json.loads(body)["funnel"]
                   if r["agency"] == "ehv-durham" and r["category"] == "food-insecurity")
        self.assertEqual((row["requested"], row["received"], row["accepted"], row["open"]), (2, 2, 1, 2))
        self.assertEqual(self.gw.metric(
            'sdoh_referrals{status="accepted",agency="ehv-durham",category="food-insecurity"}'), 1)


if __name__ == "__main__":
    unittest.main()
