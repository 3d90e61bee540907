"""FHIR Subscriptions for agencies without Kafka: the real gateway POSTs signed notification
Bundles (Subscriptions R5 Backport IG, R4) to a real HTTP receiver (python3's http.server), in
order per referral, through the receiver's downtime and a restart of the gateway, and only to
the agency that owns the referral."""
import hashlib
import hmac
import http.server
import json
import os
import shutil
import ssl
import tempfile
import threading
import unittest

from harness import Gateway, wait_for
from test_fhir import (AGENCY_TOKEN, CLINIC_TOKEN, ENV, OTHER_AGENCY_TOKEN, FhirClient,
                       sample_path)
from test_runtime import make_pki

CONFIG = """
fhir:
  clients:
    clinic-a: { token: { env: CLINIC_A_TOKEN }, party: peds-clinic-a }
    ehv-durham: { token: { env: EHV_TOKEN }, party: ehv-durham }
    wic-east: { token: { env: WIC_TOKEN }, party: wic-east }
  subscriptions: { initial_backoff: 100ms, max_backoff: 400ms, max_attempts: 1000, timeout: 2s }
parties:
  peds-clinic-a: { kind: clinic, organization: PEDS_CLINIC_A, name: "Peds Clinic A" }
  ehv-durham: { kind: agency }
  wic-east: { kind: agency }
"""
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
SECRET_URL = "https://sdoh-gateway.org/fhir/StructureDefinition/subscription-signing-secret"


class Receiver:
    """An agency's rest-hook endpoint: records every POST (path, headers, body); answers
    `self.status` (200, or 503 to play a failing agency). stop() closes the port (connection
    refused); start() opens it again on the same port."""

    def __init__(self, port=0, tls=None, host="127.0.0.1"):
        self.tls = tls  # an ssl.SSLContext: serve https
        self.host = host
        self.received = []
        self.status = 200
        self.lock = threading.Lock()
        self.port = port
        self.server = None

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = outer.status
                if status == 200:
                    with outer.lock:
                        outer.received.append((self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self.server.server_address[1]
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def url(self, path, host=None):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", host or self.host, self.port, path)

    def bundles(self, path):
        with self.lock:
            return [(h, b) for p, h, b in self.received if p == path]


def status_params(bundle):
    return {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}


def notification_type(bundle):
    return status_params(bundle)["type"]["valueCode"]


def events_of(receiver, path):
    return [json.loads(b) for _, b in receiver.bundles(path)
            if notification_type(json.loads(b)) == "event-notification"]


def subscription(endpoint, content, heartbeat=None):
    channel = {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
               "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content",
                                           "valueCode": content}]}}
    if heartbeat is not None:
        channel["extension"] = [{"url": BACKPORT + "backport-heartbeat-period",
                                 "valueUnsignedInt": heartbeat}]
    return json.dumps({"resourceType": "Subscription", "status": "requested",
                       "reason": "our referrals",
                       "criteria": "http://gw/fhir/SubscriptionTopic/agency-referrals",
                       "channel": channel})


class SubscriptionCase(unittest.TestCase):
    def subscribe(self, client, endpoint, content, heartbeat=None):
        r = client.call("POST", "/fhir/Subscription", body=subscription(endpoint, content, heartbeat))
        self.assertEqual(r.status, 201, r)
        sub = r.json()
        self.assertEqual(sub["status"], "requested")
        secret = next(e["valueString"] for e in sub["channel"]["extension"] if e["url"] == SECRET_URL)
        return sub["id"], secret

    def wait_status(self, client, sub_id, status, gw):
        wait_for(lambda: client.call("GET", "/fhir/Subscription/" + sub_id).json()["status"] == status,
                 20, "Subscription %s to be %s:\n%s" % (sub_id, status, gw.log()[-3000:]))

    def assert_signed(self, receiver, path, secret):
        bundles = receiver.bundles(path)
        self.assertTrue(bundles)
        for headers, body in bundles:
            ts = headers["X-Sdoh-Timestamp"]
            expected = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            self.assertEqual(headers["X-Sdoh-Signature"], "sha256=" + expected)

    def post_referral(self, clinic):
        r = clinic.call("POST", "/fhir",
                        body_file=sample_path("bundle-transaction-screening-consent-referral.json"))
        self.assertEqual(r.status, 200, r)
        return next(e["response"]["location"] for e in r.json()["entry"]
                    if e["response"]["location"].startswith("Task/")).split("/")[1]

    def move(self, agency, task_id, version, status):
        task = agency.call("GET", "/fhir/Task/" + task_id).json()
        task["status"] = status
        r = agency.call("PUT", "/fhir/Task/" + task_id, body=json.dumps(task),
                        headers=['If-Match: W/"%d"' % version])
        self.assertEqual(r.status, 200, r)


class SubscriptionDelivery(SubscriptionCase):
    def test_notifications_in_order_signed_scoped_and_kept_for_an_error_subscription(self):
        receiver = Receiver().start()
        self.addCleanup(receiver.stop)
        late = Receiver()  # not listening yet: its Subscription's handshake fails
        late.start()
        late_port = late.port
        late.stop()
        with Gateway(config=CONFIG, env=ENV) as gw:
            clinic = FhirClient(gw, CLINIC_TOKEN)
            agency = FhirClient(gw, AGENCY_TOKEN)
            other = FhirClient(gw, OTHER_AGENCY_TOKEN)
            full_id, full_secret = self.subscribe(agency, receiver.url("/ehv-full"), "full-resource")
            ids_id, ids_secret = self.subscribe(agency, receiver.url("/ehv-ids"), "id-only")
            wic_id, wic_secret = self.subscribe(other, receiver.url("/wic"), "full-resource")
            late_id, late_secret = self.subscribe(agency, "http://127.0.0.1:%d/late" % late_port,
                                                  "id-only")
            for sub_id, client in ((full_id, agency), (ids_id, agency), (wic_id, other)):
                self.wait_status(client, sub_id, "active", gw)
            # A failed handshake: error, with the reason, and visible to ops.
            self.wait_status(agency, late_id, "error", gw)
            late_sub = agency.call("GET", "/fhir/Subscription/" + late_id).json()
            self.assertIn("handshake", late_sub["error"])
            self.assertEqual(gw.metric("sdoh_fhir_subscription_errors_total"), 1)
            # One whose end has passed is turned off, without a handshake.
            ended = json.loads(subscription(receiver.url("/ended"), "id-only"))
            ended["end"] = "2001-01-01T00:00:00Z"
            r = agency.call("POST", "/fhir/Subscription", body=json.dumps(ended))
            self.assertEqual(r.status, 201, r)
            self.wait_status(agency, r.json()["id"], "off", gw)
            self.assertEqual(agency.call("DELETE", "/fhir/Subscription/" + r.json()["id"]).status, 204)
            self.assertEqual(receiver.bundles("/ended"), [])
            # Another agency's Subscription is not there for it.
            self.assertEqual(other.call("GET", "/fhir/Subscription/" + full_id).status, 404)
            listed = agency.call("GET", "/fhir/Subscription").json()
            self.assertEqual({e["resource"]["id"] for e in listed["entry"]}, {full_id, ids_id, late_id})
            for path in ("/ehv-full", "/ehv-ids", "/wic"):
                self.assertEqual([notification_type(json.loads(b)) for _, b in receiver.bundles(path)],
                                 ["handshake"], path)

            task_id = self.post_referral(clinic)
            self.move(agency, task_id, 1, "accepted")
            self.move(agency, task_id, 2, "in-progress")
            self.move(agency, task_id, 3, "completed")
            expected = ["requested", "accepted", "in-progress", "completed"]
            wait_for(lambda: len(events_of(receiver, "/ehv-full")) == len(expected) and
                     len(events_of(receiver, "/ehv-ids")) == len(expected), 20,
                     "four notifications each:\n" + gw.log()[-3000:])
            wait_for(lambda: gw.metric("sdoh_fhir_subscription_queued_notifications", None) == 1 *
                     len(expected), 20, "only the error Subscription's notifications to wait")

            full = events_of(receiver, "/ehv-full")
            self.assertEqual([b["entry"][1]["resource"]["status"] for b in full], expected)
            self.assertEqual([b["entry"][1]["resource"]["id"] for b in full], [task_id] * 4)
            # ... and the ServiceRequest the Task is for, which the agency may read too.
            focus = full[0]["entry"][1]["resource"]["focus"]["reference"]
            self.assertTrue(focus.startswith("ServiceRequest/"), focus)
            for b in full:
                self.assertEqual(len(b["entry"]), 3)
                self.assertEqual(b["entry"][2]["resource"]["resourceType"], "ServiceRequest")
                self.assertTrue(b["entry"][2]["fullUrl"].endswith("/" + focus))
            numbers = [int(status_params(b)["notification-event"]["part"][0]["valueString"]) for b in full]
            self.assertEqual(numbers, [1, 2, 3, 4])
            for b in full:
                self.assertEqual(b["type"], "history")
                self.assertEqual(b["entry"][0]["resource"]["resourceType"], "Parameters")
            ids = events_of(receiver, "/ehv-ids")
            for b in ids:
                self.assertEqual(len(b["entry"]), 1)  # id-only: no resource
                focus = status_params(b)["notification-event"]["part"][2]["valueReference"]["reference"]
                self.assertTrue(focus.endswith("/Task/" + task_id), focus)
            self.assert_signed(receiver, "/ehv-full", full_secret)
            self.assert_signed(receiver, "/ehv-ids", ids_secret)
            # The other agency learned nothing about a referral it does not own (its queue is empty:
            # the only waiting notifications are the error Subscription's).
            self.assertEqual([notification_type(json.loads(b)) for _, b in receiver.bundles("/wic")],
                             ["handshake"])
            log = gw.log()
            self.assertIn("fhir.subscription_error", log)

            # The agency fixes its endpoint and re-activates: handshake, then what was kept, in order.
            late = Receiver(late_port).start()
            self.addCleanup(late.stop)
            body = json.loads(subscription(late.url("/late"), "id-only"))
            r = agency.call("PUT", "/fhir/Subscription/" + late_id, body=json.dumps(body))
            self.assertEqual(r.status, 200, r)
            self.wait_status(agency, late_id, "active", gw)
            wait_for(lambda: len(events_of(late, "/late")) == 4, 20, "the kept notifications")
            self.assertEqual(notification_type(json.loads(late.bundles("/late")[0][1])), "handshake")
            self.assert_signed(late, "/late", late_secret)
            self.assertEqual(agency.call("DELETE", "/fhir/Subscription/" + late_id).status, 204)
            self.assertEqual(agency.call("GET", "/fhir/Subscription/" + late_id).status, 404)


class SubscriptionDowntime(SubscriptionCase):
    def test_a_receiver_down_then_failing_then_back_gets_everything_in_order_across_a_restart(self):
        receiver = Receiver().start()
        gw = Gateway(config=CONFIG, env=ENV)
        with gw:
            clinic = FhirClient(gw, CLINIC_TOKEN)
            agency = FhirClient(gw, AGENCY_TOKEN)
            sub_id, secret = self.subscribe(agency, receiver.url("/hook"), "full-resource",
                                            heartbeat=1)
            self.wait_status(agency, sub_id, "active", gw)
            # Heartbeats while nothing else is sent.
            wait_for(lambda: any(notification_type(json.loads(b)) == "heartbeat"
                                 for _, b in receiver.bundles("/hook")), 10, "a heartbeat")

            receiver.stop()  # connection refused
            task_id = self.post_referral(clinic)
            self.move(agency, task_id, 1, "accepted")
            wait_for(lambda: gw.metric('sdoh_fhir_subscription_deliveries_total{type="event-notification",outcome="failed"}') >= 2,
                     20, "failed deliveries while the receiver is down")

            self.assertEqual(gw.stop(), 0)
            gw.start()
            agency = FhirClient(gw, AGENCY_TOKEN)
            self.move(agency, task_id, 2, "in-progress")
            receiver.status = 503
            receiver.start()
            wait_for(lambda: "HTTP 503" in gw.log(), 20, "a 503 answer to be retried")
            self.assertEqual(agency.call("GET", "/fhir/Subscription/" + sub_id).json()["status"], "active")
            receiver.status = 200
            expected = ["requested", "accepted", "in-progress"]
            wait_for(lambda: len(events_of(receiver, "/hook")) >= len(expected), 20,
                     "the notifications after the outage:\n" + gw.log()[-3000:])
            wait_for(lambda: gw.metric("sdoh_fhir_subscription_queued_notifications", None) == 0, 20,
                     "the queue to drain")
            events = events_of(receiver, "/hook")
            self.assertEqual([b["entry"][1]["resource"]["status"] for b in events], expected)
            self.assertEqual([int(status_params(b)["notification-event"]["part"][0]["valueString"])
                              for b in events], [1, 2, 3])
            self.assert_signed(receiver, "/hook", secret)
        receiver.stop()


class SubscriptionErrorThreshold(SubscriptionCase):
    def test_too_many_failures_make_it_error_and_keep_its_notifications_until_reactivated(self):
        receiver = Receiver().start()
        config = CONFIG.replace("max_attempts: 1000", "max_attempts: 3")
        with Gateway(config=config, env=ENV) as gw:
            clinic = FhirClient(gw, CLINIC_TOKEN)
            agency = FhirClient(gw, AGENCY_TOKEN)
            sub_id, secret = self.subscribe(agency, receiver.url("/hook"), "id-only")
            self.wait_status(agency, sub_id, "active", gw)
            receiver.stop()
            task_id = self.post_referral(clinic)
            self.wait_status(agency, sub_id, "error", gw)
            sub = agency.call("GET", "/fhir/Subscription/" + sub_id).json()
            self.assertIn("3 deliveries failed in a row", sub["error"])
            self.assertEqual(gw.metric("sdoh_fhir_subscription_errors_total"), 1)
            wait_for(lambda: gw.metric('sdoh_fhir_subscriptions{status="error"}') == 1, 10,
                     "the error gauge")
            self.assertEqual(gw.metric("sdoh_fhir_subscription_queued_notifications"), 1)
            errors = [e for e in gw.log_events() if e.get("event") == "fhir.subscription_error"]
            self.assertEqual(len(errors), 1, gw.log()[-2000:])
            self.assertNotIn(task_id, json.dumps(errors[0]))  # ops see the Subscription, not the referral

            receiver.start()
            body = json.loads(subscription(receiver.url("/hook"), "id-only"))
            self.assertEqual(agency.call("PUT", "/fhir/Subscription/" + sub_id,
                                         body=json.dumps(body)).status, 200)
            self.wait_status(agency, sub_id, "active", gw)
            wait_for(lambda: len(events_of(receiver, "/hook")) == 1, 20, "the kept notification")
            focus = status_params(events_of(receiver, "/hook")[0])["notification-event"]["part"][2]
            self.assertTrue(focus["valueReference"]["reference"].endswith("/Task/" + task_id))
            self.assert_signed(receiver, "/hook", secret)
        receiver.stop()


class SubscriptionHttps(SubscriptionCase):
    def test_notifications_go_over_verified_tls(self):
        pki = tempfile.mkdtemp(prefix="sdoh-pki-")
        self.addCleanup(shutil.rmtree, pki, True)
        make_pki(pki)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(os.path.join(pki, "server.crt"), os.path.join(pki, "server.key"),
                            password="tls-key-pass")
        receiver = Receiver(tls=tls).start()
        self.addCleanup(receiver.stop)
        config = CONFIG.replace("timeout: 2s", "timeout: 2s, ca_file: %s" % os.path.join(pki, "ca.crt"))
        with Gateway(config=config, env=ENV) as gw:
            clinic = FhirClient(gw, CLINIC_TOKEN)
            agency = FhirClient(gw, AGENCY_TOKEN)
            # By address: the certificate names IP 127.0.0.1, which the client verifies (and a
            # bare machine may have no /etc/hosts to resolve "localhost").
            sub_id, secret = self.subscribe(agency, receiver.url("/hook"), "full-resource")
            self.wait_status(agency, sub_id, "active", gw)
            task_id = self.post_referral(clinic)
            wait_for(lambda: len(events_of(receiver, "/hook")) == 1, 20,
                     "the notification over https:\n" + gw.log()[-2000:])
            self.assertEqual(events_of(receiver, "/hook")[0]["entry"][1]["resource"]["id"], task_id)
            self.assert_signed(receiver, "/hook", secret)
            # A certificate that does not name the host the URL names: the handshake fails.
            wrong = Receiver(tls=tls, host="127.0.0.2").start()
            self.addCleanup(wrong.stop)
            other_id, _ = self.subscribe(agency, wrong.url("/hook"), "id-only")
            self.wait_status(agency, other_id, "error", gw)
            self.assertIn("TLS handshake", agency.call("GET", "/fhir/Subscription/" + other_id).json()["error"])
            self.assertEqual(wrong.bundles("/hook"), [])


if __name__ == "__main__":
    unittest.main()
