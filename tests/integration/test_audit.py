"""The audit trail of the real gateway: a FHIR read, a referral's disclosure to its agency and an
operator's replay are recorded as AuditEvents (read back by an admin over FHIR with curl), and
tools/audit verify checks the hash chain, failing once a record is edited with the sqlite3 CLI or
the last one is deleted (against the anchor published on Kafka, read with kcat)."""
import datetime
import json
import os
import subprocess
import time
import unittest

from harness import SAMPLES, Gateway, hl7_field, mllp_exchange, run, wait_for
from test_fhir import CLIENTS, ENV, FhirClient, sample_path

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
AUDIT = os.path.join(ROOT, "tools", "audit")
DEADLETTERS = os.path.join(ROOT, "tools", "deadletters")
ADMIN_TOKEN = "it-admin-token-0123456789abcdef"
CONFIG = CLIENTS + "admin: { token: { env: SDOH_ADMIN_TOKEN } }\naudit: { anchor_interval: 1s }\n"
AUDIT_ENV = dict(ENV, SDOH_ADMIN_TOKEN=ADMIN_TOKEN)
# What the sample referral says about the family: never in an AuditEvent, an anchor or the log.
PHI = ["Garcia", "Sofia", "919-555-1234", "5551234", "12 Elm St", "MRN12345"]


def audit(*args):
    env = dict(os.environ, SDOH_AUDIT_VERIFY=os.path.join(ROOT, "build", "audit-verify"))
    return run([AUDIT, *args], env=env, timeout=120)


def sqlite(db, sql):
    out = run(["sqlite3", db, sql])
    assert out.returncode == 0, out.stderr
    return out.stdout


def subtype(event):
    return event["subtype"][0]["code"]


def entities(event):
    out = []
    for e in event.get("entity", []):
        what = e["what"]
        out.append(what.get("reference") or what["identifier"]["value"])
    return out


class AuditTrail(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(config=CONFIG, env=AUDIT_ENV).start()
        cls.clinic = FhirClient(cls.gw, ENV["CLINIC_A_TOKEN"])
        cls.agency = FhirClient(cls.gw, ENV["EHV_TOKEN"])
        cls.admin = FhirClient(cls.gw, ADMIN_TOKEN)
        r = cls.clinic.call("POST", "/fhir",
                            body_file=sample_path("bundle-transaction-screening-consent-referral.json"))
        assert r.status == 200, r
        locations = [e["response"]["location"] for e in r.json()["entry"]]
        cls.task_id = next(l for l in locations if l.startswith("Task/")).split("/")[1]

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def search(self, query):
        r = self.admin.call("GET", "/fhir/AuditEvent?" + query)
        self.assertEqual(r.status, 200, r)
        bundle = r.json()
        self.assertEqual(bundle["type"], "searchset")
        return [e["resource"] for e in bundle["entry"]], bundle

    def test_a_read_is_recorded_before_it_is_answered(self):
        task = "Task/" + self.task_id
        before, _ = self.search("entity=" + task + "&agent=ehv-durham")
        r = self.agency.call("GET", "/fhir/" + task)
        self.assertEqual(r.status, 200, r)
        # Durable before the answer: it is there as soon as the answer is.
        after, _ = self.search("entity=" + task + "&agent=ehv-durham")
        reads = [e for e in after if subtype(e) == "read"]
        self.assertEqual(len(reads), len([e for e in before if subtype(e) == "read"]) + 1)
        read = reads[0]
        self.assertEqual(read["action"], "R")
        self.assertEqual(read["outcome"], "0")
        self.assertEqual(read["type"]["code"], "rest")
        requestor = read["agent"][0]
        self.assertTrue(requestor["requestor"])
        self.assertEqual(requestor["who"]["identifier"]["value"], "ehv-durham")
        self.assertEqual(requestor["role"][0]["coding"][0]["code"], "agency")
        self.assertTrue(requestor["network"]["address"].startswith("127.0.0.1:"), requestor)
        self.assertEqual(entities(read), [task])
        # The same record by its id.
        one = self.admin.call("GET", "/fhir/AuditEvent/" + read["id"])
        self.assertEqual(one.status, 200, one)
        self.assertEqual(one.json(), read)

    def test_the_referral_create_and_its_disclosure_to_the_agency_are_recorded(self):
        task = "Task/" + self.task_id
        events, _ = self.search("entity=" + task)
        creates = [e for e in events if subtype(e) == "create"]
        self.assertEqual(len(creates), 1, events)
        self.assertEqual(creates[0]["action"], "C")
        self.assertEqual(creates[0]["agent"][0]["who"]["identifier"]["value"], "clinic-a")
        disclosures = [e for e in events if subtype(e) == "referral-disclosure"]
        self.assertEqual(len(disclosures), 1, events)
        d = disclosures[0]
        self.assertEqual(d["type"]["code"], "110106")
        self.assertEqual(d["agent"][1]["who"]["identifier"]["value"], "ehv-durham", "the recipient")
        [event] = [e for e in d["entity"] if "identifier" in e["what"]]
        self.assertEqual(event["detail"][0]["valueString"], "sdoh.referral.v1")
        # The event's id finds the same record.
        by_event, _ = self.search("entity=" + event["what"]["identifier"]["value"])
        self.assertEqual([e["id"] for e in by_event], [d["id"]])

    def test_no_audit_event_copies_the_familys_details(self):
        _, bundle = self.search("_count=500")
        text = json.dumps(bundle)
        for phi in PHI:
            self.assertNotIn(phi, text)

    def test_search_by_agent_and_date(self):
        self.assertEqual(self.agency.call("GET", "/fhir/Task?_count=5").status, 200)
        now = datetime.datetime.now(datetime.timezone.utc)
        ge = (now - datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        searches, bundle = self.search("agent=ehv-durham&date=ge" + ge)
        self.assertGreaterEqual(bundle["total"], 1)
        self.assertTrue(all(e["agent"][0]["who"]["identifier"]["value"] == "ehv-durham" for e in searches))
        self.assertIn("search-type", [subtype(e) for e in searches])
        past = (now - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
        _, old = self.search("agent=ehv-durham&date=le" + past)
        self.assertEqual(old["total"], 0)
        _, nobody = self.search("agent=nobody")
        self.assertEqual(nobody["total"], 0)
        bad = self.admin.call("GET", "/fhir/AuditEvent?date=yesterday")
        self.assertEqual(bad.status, 400, bad)

    def test_only_an_admin_reads_the_trail(self):
        self.assertEqual(FhirClient(self.gw, None).call("GET", "/fhir/AuditEvent").status, 401)
        self.assertEqual(self.agency.call("GET", "/fhir/AuditEvent").status, 401)
        self.assertEqual(self.clinic.call("GET", "/fhir/AuditEvent/1").status, 401)
        cs = FhirClient(self.gw, None).call("GET", "/fhir/metadata").json()
        types = [r["type"] for r in cs["rest"][0]["resource"]]
        self.assertIn("AuditEvent", types)

    def test_a_payload_view_and_a_replay_are_recorded(self):
        with open(os.path.join(SAMPLES, "hl7v2", "bad-missing-obx-code.hl7"), "rb") as f:
            ack = mllp_exchange(self.gw.mllp_address, [f.read()])[0]
        self.assertEqual(hl7_field(ack, "MSA", 1), "AE")
        env = dict(os.environ, SDOH_ADMIN_TOKEN=ADMIN_TOKEN)
        listed = json.loads(run([DEADLETTERS, "--url", self.gw.http_url, "--json", "list"], env=env).stdout)
        dl = listed["deadLetters"][0]["deadLetterId"]
        shown = run([DEADLETTERS, "--url", self.gw.http_url, "show", dl, "--payload"], env=env)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        replay = run([DEADLETTERS, "--url", self.gw.http_url, "replay", dl], env=env)
        self.assertEqual(replay.returncode, 1, "still rejected")
        events, _ = self.search("entity=dead-letter/" + dl)
        self.assertEqual([subtype(e) for e in events], ["dead-letter-replay", "dead-letter-payload-view"])
        replayed, viewed = events
        self.assertEqual(replayed["action"], "E")
        self.assertEqual(replayed["outcome"], "4", "the replay was refused: a minor failure")
        self.assertIn("still rejected", replayed["outcomeDesc"])
        self.assertEqual(viewed["action"], "R")
        self.assertEqual(viewed["agent"][0]["who"]["identifier"]["value"], "admin")


class AuditVerify(unittest.TestCase):
    def test_verify_passes_and_fails_after_an_edit_or_a_deleted_tail(self):
        with Gateway(config=CONFIG, env=AUDIT_ENV) as gw:
            clinic = FhirClient(gw, ENV["CLINIC_A_TOKEN"])
            agency = FhirClient(gw, ENV["EHV_TOKEN"])
            r = clinic.call("POST", "/fhir",
                            body_file=sample_path("bundle-transaction-screening-consent-referral.json"))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(agency.call("GET", "/fhir/Task?_count=5").status, 200)
            db = os.path.join(gw.data_dir, "gateway.db")
            head = int(sqlite(db, "SELECT max(seq) FROM audit_events").strip())
            self.assertGreaterEqual(head, 3)
            anchors = os.path.join(gw.dir, "anchors.jsonl")

            # The periodic anchor reaches Kafka; tools/audit reads it there.
            def anchored():
                out = run(["kcat", "-C", "-b", gw.bootstrap, "-t", "sdoh.audit-anchors.v1", "-e", "-q",
                           "-f", "%s\n"])
                with open(anchors, "w") as f:
                    f.write(out.stdout)
                heads = [json.loads(l)["data"]["headSequence"] for l in out.stdout.splitlines() if l]
                return head in heads
            wait_for(anchored, 15, "an anchor of the head on sdoh.audit-anchors.v1")
            with open(anchors) as f:
                checked = run([os.path.join(ROOT, "build", "validate-events"), "--schemas",
                               os.path.join(ROOT, "schemas", "events")], input=f.read())
            self.assertEqual(checked.returncode, 0, "anchors match their schema: " + checked.stdout)
            live = audit("verify", "--config", gw.config_path, "--from-kafka")
            self.assertEqual(live.returncode, 0, live.stdout + live.stderr)
            self.assertIn("OK: the chain verifies", live.stdout)
            self.assertIn("newest anchor: record %d" % head, live.stdout)
            self.assertEqual(gw.stop(), 0)
            log = gw.log()
            self.assertIn("audit.anchor", log)
            for phi in PHI:
                self.assertNotIn(phi, log)

            # An attacker with the file: the append-only triggers are dropped first.
            edited = os.path.join(gw.dir, "edited.db")
            sqlite(db, ".backup " + edited)
            sqlite(edited, "DROP TRIGGER audit_events_append_only; UPDATE audit_events SET json = "
                           "CAST(replace(CAST(json AS TEXT), 'ehv-durham', 'someone-else') AS BLOB) "
                           "WHERE seq = 2")
            out = audit("verify", "--db", edited, "--anchors", anchors)
            self.assertEqual(out.returncode, 1, out.stdout)
            self.assertIn("record 2 was edited", out.stdout)

            truncated = os.path.join(gw.dir, "truncated.db")
            sqlite(db, ".backup " + truncated)
            last = int(sqlite(truncated, "SELECT max(seq) FROM audit_events").strip())
            sqlite(truncated, "DROP TRIGGER audit_events_pruned_only; DELETE FROM audit_entities "
                              "WHERE seq = %d; DELETE FROM audit_events WHERE seq = %d" % (last, last))
            alone = audit("verify", "--db", truncated)
            self.assertEqual(alone.returncode, 0, "without an anchor a deleted tail looks whole")
            self.assertEqual(last, head, "nothing was recorded after the anchored head")
            out = audit("verify", "--db", truncated, "--anchors", anchors)
            self.assertEqual(out.returncode, 1, out.stdout)
            self.assertIn("records %d to %d were deleted" % (head, head), out.stdout)

            # The untouched store verifies against the same anchors.
            self.assertEqual(audit("verify", "--db", db, "--anchors", anchors).returncode, 0)


if __name__ == "__main__":
    unittest.main()
