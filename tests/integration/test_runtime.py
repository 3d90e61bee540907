"""The gateway process as an operator and a monitoring system see it: runtime.json, /healthz,
/readyz, /metrics, JSON logs, the embedded Kafka broker (through kcat), HTTP limits, MLLP
answers, TLS, config validation and draining on SIGTERM/SIGINT."""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import BINARY, SAMPLES, SCHEMAS, SOURCE_DIR, Gateway, MockKafka, mllp_roundtrip, parse_metrics, run


class RunningGateway(unittest.TestCase):
    """One gateway shared by read-only checks."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway("runtime: { io_threads: 2 }\n").start()

    @classmethod
    def tearDownClass(cls):
        code = cls.gw.stop()
        cls.gw.__exit__(None, None, None)
        assert code == 0, "gateway exit code %s" % code

    def test_runtime_json_names_the_process_and_bound_addresses(self):
        rt = self.gw.runtime
        self.assertEqual(rt["pid"], self.gw.proc.pid)
        self.assertRegex(rt["http"]["address"], r"^127\.0\.0\.1:[1-9][0-9]*$")
        self.assertRegex(rt["mllp"]["address"], r"^127\.0\.0\.1:[1-9][0-9]*$")
        self.assertNotEqual(rt["http"]["address"], rt["mllp"]["address"])
        self.assertTrue(rt["kafka"]["embedded"])
        self.assertRegex(rt["kafka"]["bootstrap_servers"], r"^127\.0\.0\.1:[0-9]+")

    def test_healthz_says_alive(self):
        status, body = self.gw.get("/healthz")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["status"], "ok")
        self.assertRegex(doc["version"], r"^\d+\.\d+\.\d+$")

    def test_readyz_reports_each_check(self):
        status, body = self.gw.get("/readyz")
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual(doc["status"], "ready")
        self.assertEqual(set(doc["checks"]), {"http", "mllp", "store", "backlog", "kafka", "relay", "referral_updates"})
        for name, check in doc["checks"].items():
            self.assertTrue(check["ok"], name)
        # The six core topics (with the audit anchors) and the shipped routing's: two agencies' referral topics,
        # eight update topics.
        self.assertIn(" 16 topics present", doc["checks"]["kafka"]["detail"])

    def test_metrics_are_prometheus_text_with_help_and_type(self):
        self.gw.get("/healthz")
        out = self.gw.curl("-i", self.gw.http_url + "/metrics").stdout
        head, _, body = out.partition("\n\n")
        self.assertIn("Content-Type: text/plain; version=0.0.4; charset=utf-8", head)
        samples, types, helps = parse_metrics(body)
        for key in samples:
            base = key.split("{")[0]
            for suffix in ("_bucket", "_sum", "_count"):
                if base.endswith(suffix) and base[: -len(suffix)] in types:
                    base = base[: -len(suffix)]
            self.assertIn(base, types, "no # TYPE for " + key)
            self.assertIn(base, helps, "no # HELP for " + key)
        self.assertGreater(samples["sdoh_process_uptime_seconds"], 0)
        self.assertGreaterEqual(
            samples['sdoh_http_requests_total{route="/healthz",method="GET",status="200"}'], 1)
        self.assertGreaterEqual(samples["sdoh_http_connections_open"], 1)
        for name in ("sdoh_kafka_messages_produced_total", "sdoh_kafka_messages_delivered_total",
                     "sdoh_kafka_messages_in_flight"):
            self.assertIn(name, samples)
        self.assertEqual(types["sdoh_http_request_duration_seconds"], "histogram")

    def test_request_counter_counts_each_request(self):
        key = 'sdoh_http_requests_total{route="/readyz",method="GET",status="200"}'
        before = parse_metrics(self.gw.get("/metrics")[1])[0].get(key, 0)
        for _ in range(3):
            self.gw.get("/readyz")
        after = parse_metrics(self.gw.get("/metrics")[1])[0][key]
        self.assertEqual(after - before, 3)

    def test_unknown_route_is_json_404(self):
        status, body = self.gw.get("/no/such/thing")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["error"], "not_found")

    def test_wrong_method_is_json_405_with_allow(self):
        out = self.gw.curl("-i", "-X", "DELETE", self.gw.http_url + "/healthz").stdout
        self.assertIn("HTTP/1.1 405", out)
        self.assertIn("Allow: GET", out)
        self.assertIn('"error":"method_not_allowed"', out)

    def test_head_gets_headers_without_body(self):
        out = self.gw.curl("-I", self.gw.http_url + "/healthz").stdout
        self.assertIn("HTTP/1.1 200", out)
        self.assertIn("Content-Type: application/json", out)

    def test_keep_alive_serves_several_requests_on_one_connection(self):
        host, port = self.gw.runtime["http"]["address"].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        for _ in range(3):
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            resp.read()
            self.assertFalse(resp.will_close)
        conn.close()

    def test_oversized_body_is_413(self):
        big = "x" * (4 * 1024 * 1024 + 1)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write(big)
            f.flush()
            out = self.gw.curl("-i", "-X", "POST", "--data-binary", "@" + f.name,
                               self.gw.http_url + "/healthz").stdout
        self.assertIn("HTTP/1.1 413", out)
        self.assertIn("http.max_body_bytes", out)

    def test_oversized_headers_are_431(self):
        out = self.gw.curl("-i", "-H", "X-Big: " + "y" * 20000, self.gw.http_url + "/healthz").stdout
        self.assertIn("HTTP/1.1 431", out)

    def test_malformed_request_is_400(self):
        host, port = self.gw.runtime["http"]["address"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"NOT A REQUEST\r\n\r\n")
            answer = s.recv(4096).decode()
        self.assertTrue(answer.startswith("HTTP/1.1 400"), answer)

    def test_kcat_sees_every_topic_with_configured_partitions(self):
        out = run(["kcat", "-b", self.gw.bootstrap, "-L", "-J"])
        self.assertEqual(out.returncode, 0, out.stderr)
        topics = {t["topic"]: len(t["partitions"]) for t in json.loads(out.stdout)["topics"]}
        for name in ("sdoh.screening.v1", "sdoh.referral.v1", "sdoh.referral-status.v1",
                     "sdoh.deadletter.v1", "sdoh.referral-updates.v1"):
            self.assertEqual(topics.get(name), 3, name)

    def test_kcat_consumes_what_a_producer_wrote_to_the_embedded_broker(self):
        produced = run(["kcat", "-b", self.gw.bootstrap, "-P", "-t", "sdoh.referral-updates.v1",
                        "-k", "ref-1", "-p", "0"], input='{"referralId":"ref-1"}\n')
        self.assertEqual(produced.returncode, 0, produced.stderr)
        consumed = run(["kcat", "-b", self.gw.bootstrap, "-C", "-t", "sdoh.referral-updates.v1",
                        "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%k|%s\n"])
        self.assertEqual(consumed.returncode, 0, consumed.stderr)
        self.assertIn('ref-1|{"referralId":"ref-1"}', consumed.stdout.splitlines())

    def test_mllp_answers_a_message_with_an_ack_echoing_its_control_id(self):
        host, port = self.gw.mllp_address
        out = run(["mllp_send", "--loose", "--file", os.path.join(SAMPLES, "hl7v2", "bad-unsupported-type.hl7"),
                   "--port", str(port), host])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("MSA|AR|A1000009", out.stdout)
        self.assertIn("ERR|", out.stdout)

    def test_every_log_line_is_json_with_ts_level_event(self):
        self.gw.get("/healthz")
        events = self.gw.log_events()
        self.assertTrue(events)
        for e in events:
            self.assertRegex(e["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(e["level"], {"trace", "debug", "info", "warning", "error", "critical"})
            self.assertTrue(e["event"])
        names = [e["event"] for e in events]
        self.assertIn("gateway.ready", names)
        warnings = [e for e in events if e["event"] == "kafka.embedded_broker"]
        self.assertEqual(len(warnings), 1, "the embedded-broker warning is logged once")
        self.assertEqual(warnings[0]["level"], "warning")


class Draining(unittest.TestCase):
    def test_sigterm_exits_zero_and_removes_runtime_json(self):
        with Gateway() as gw:
            runtime_file = os.path.join(gw.data_dir, "runtime.json")
            self.assertTrue(os.path.exists(runtime_file))
            self.assertEqual(gw.stop(signal.SIGTERM), 0, gw.log())
            self.assertFalse(os.path.exists(runtime_file))
            names = [e["event"] for e in gw.log_events()]
            self.assertIn("gateway.draining", names)
            self.assertIn("gateway.stopped", names)

    def test_sigint_exits_zero(self):
        with Gateway() as gw:
            self.assertEqual(gw.stop(signal.SIGINT), 0, gw.log())

    def test_idle_clients_do_not_hold_up_shutdown(self):
        with Gateway("runtime: { drain_timeout: 20s }\n") as gw:
            host, port = gw.runtime["http"]["address"].rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/healthz")
            conn.getresponse().read()  # keep-alive connection left open and idle
            mllp = socket.create_connection(gw.mllp_address, timeout=5)  # idle MLLP client
            partial = socket.create_connection(gw.mllp_address, timeout=5)
            partial.sendall(b"\x0bMSH|^~\\&|half a message")  # a frame that never ends
            time.sleep(0.2)
            started = time.monotonic()
            self.assertEqual(gw.stop(signal.SIGTERM, timeout=15), 0, gw.log())
            self.assertLess(time.monotonic() - started, 5.0, "idle connections must not wait for drain_timeout")
            for s in (mllp, partial):
                self.assertEqual(s.recv(16), b"", "the gateway closes idle connections")
                s.close()
            conn.close()


class ConfigCommandLine(unittest.TestCase):
    def write(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_check_config_names_each_bad_key(self):
        path = self.write("http:\n  lisen: \"127.0.0.1:1\"\nruntime: { io_threads: 0 }\n")
        out = run([BINARY, "--check-config", path])
        self.assertEqual(out.returncode, 2)
        self.assertIn(path + ":2: http.lisen: unknown key (did you mean \"listen\"?)", out.stderr)
        self.assertIn(path + ":3: runtime.io_threads: 0 is out of range 1..64", out.stderr)

    def test_check_config_reports_unresolvable_secret(self):
        path = self.write("kafka:\n  properties:\n    sasl.password: { env: SDOH_IT_NOT_SET }\n")
        out = run([BINARY, "--check-config", path], env={k: v for k, v in os.environ.items()
                                                           if k != "SDOH_IT_NOT_SET"})
        self.assertEqual(out.returncode, 2)
        self.assertIn("kafka.properties.sasl.password", out.stderr)
        self.assertIn("SDOH_IT_NOT_SET is not set", out.stderr)

    def test_check_config_names_the_bad_line_of_the_zip_county_file(self):
        crosswalk = self.write("zcta,county_fips,land_share\n27514,37135,1.0000\n27516,135,0.8348\n")
        path = self.write("schemas_dir: %s\nreferrals: { zip_county_file: %s }\n" % (SCHEMAS, crosswalk))
        out = run([BINARY, "--check-config", path])
        self.assertEqual(out.returncode, 2)
        self.assertIn("referrals.zip_county_file", out.stderr)
        self.assertIn(crosswalk + ": line 3: county_fips \"135\" is not a 5-digit county FIPS code", out.stderr)
        missing = self.write("schemas_dir: %s\nreferrals: { zip_county_file: /nonexistent/zcta.csv }\n" % SCHEMAS)
        out = run([BINARY, "--check-config", missing])
        self.assertEqual(out.returncode, 2)
        self.assertIn("/nonexistent/zcta.csv: cannot read the file", out.stderr)

    def test_check_config_accepts_the_shipped_configs(self):
        for name in ("dev.yaml", "reference.yaml"):
            out = run([BINARY, "--check-config", os.path.join("deploy", "config", name)], cwd=SOURCE_DIR)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("configuration is valid", out.stdout)

    def test_production_refuses_plain_listeners_naming_the_keys(self):
        path = self.write("mode: production\nschemas_dir: %s\nkafka: { brokers: \"k1:9092\" }\n" % SCHEMAS)
        out = run([BINARY, "--check-config", path])
        self.assertEqual(out.returncode, 2)
        for key in ("http", "mllp"):
            self.assertIn("%s.tls.cert_file: production mode needs TLS on every listener" % key, out.stderr)
        # Plain on loopback only, behind a local TLS terminator, is the one way out.
        path = self.write("mode: production\nschemas_dir: %s\nkafka: { brokers: \"k1:9092\" }\n"
                          "http: { listen: \"0.0.0.0:8080\", insecure_loopback_only: true }\n"
                          "mllp: { listen: \"127.0.0.1:2575\", insecure_loopback_only: true }\n" % SCHEMAS)
        out = run([BINARY, "--check-config", path])
        self.assertIn("http.insecure_loopback_only: allows plain http only on a loopback address", out.stderr)
        self.assertNotIn("mllp.tls.cert_file", out.stderr)
        self.assertNotIn("mllp.insecure_loopback_only", out.stderr)

    def test_start_with_invalid_config_exits_2_without_listening(self):
        path = self.write("mode: production\n")
        out = run([BINARY, "--config", path])
        self.assertEqual(out.returncode, 2)
        self.assertIn("kafka.brokers", out.stderr)

    def test_version_and_help(self):
        out = run([BINARY, "--version"])
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"^sdoh-gateway \d+\.\d+\.\d+ \(")
        out = run([BINARY, "--help"])
        self.assertEqual(out.returncode, 0)
        for flag in ("--config", "--check-config", "--version"):
            self.assertIn(flag, out.stdout)

    def test_port_in_use_stops_startup_with_the_key_named(self):
        with Gateway() as first:
            port = first.runtime["http"]["address"].rsplit(":", 1)[1]
            second = Gateway(base_config="data_dir: var\nschemas_dir: %s\nhttp: { listen: \"127.0.0.1:%s\" }\n"
                             "mllp: { listen: \"127.0.0.1:0\" }\n" % (SCHEMAS, port))
            try:
                with self.assertRaises(AssertionError):
                    second.start(timeout=10)
                self.assertEqual(second.proc.wait(timeout=10), 1)
                failed = [e for e in second.log_events() if e["event"] == "gateway.startup_failed"]
                self.assertEqual(failed[0]["key"], "http.listen")
                self.assertIn("Address already in use", failed[0]["reason"])
            finally:
                second.__exit__(None, None, None)


def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 (key encrypted with a password) and a client cert."""
    def ossl(*args):
        out = run(["openssl", *args], cwd=directory)
        assert out.returncode == 0, out.stderr
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", "ca.key", "-out", "ca.crt")
    ossl("genpkey", "-algorithm", "RSA", "-aes-256-cbc", "-pass", "pass:tls-key-pass",
         "-out", "server.key")
    ossl("req", "-new", "-key", "server.key", "-passin", "pass:tls-key-pass", "-subj", "/CN=127.0.0.1",
         "-out", "server.csr")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=clinic-a-interface", "-keyout",
         "client.key", "-out", "client.csr")
    ossl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-out", "client.crt")


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="sdoh-pki-")
        make_pki(cls.pki)
        p = lambda name: os.path.join(cls.pki, name)
        tls = ("{ cert_file: %s, key_file: %s, key_password: { env: SDOH_IT_TLS_KEY_PASSWORD } "
               % (p("server.crt"), p("server.key")))
        cls.gw = Gateway(
            base_config="data_dir: %s\nschemas_dir: %s\n"
            "http: { listen: \"127.0.0.1:0\", tls: %s} }\n"
            "mllp: { listen: \"127.0.0.1:0\", tls: %s, client_ca_file: %s, require_client_cert: true } }\n"
            "kafka: { metadata_interval: 500ms }\n" % ("var", SCHEMAS, tls, tls, p("ca.crt")),
            env={"SDOH_IT_TLS_KEY_PASSWORD": "tls-key-pass"})
        cls.gw.data_dir = os.path.join(cls.gw.dir, "var")
        cls.gw.start(wait_ready=False)

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.gw.__exit__(None, None, None)
        shutil.rmtree(cls.pki, ignore_errors=True)

    def test_runtime_json_says_tls(self):
        self.assertTrue(self.gw.runtime["http"]["tls"])
        self.assertTrue(self.gw.http_url.startswith("https://"))
        self.assertTrue(self.gw.runtime["mllp"]["tls"])

    def test_https_healthz_with_the_ca(self):
        out = self.gw.curl("--cacert", os.path.join(self.pki, "ca.crt"), self.gw.http_url + "/healthz")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["status"], "ok")

    def test_tls_1_1_is_refused(self):
        out = self.gw.curl("--cacert", os.path.join(self.pki, "ca.crt"), "--tlsv1.0", "--tls-max", "1.1",
                           self.gw.http_url + "/healthz")
        self.assertNotEqual(out.returncode, 0)

    def test_plain_http_on_the_tls_port_gets_no_answer(self):
        out = self.gw.curl(self.gw.http_url.replace("https://", "http://") + "/healthz")
        self.assertNotEqual(out.returncode, 0)

    def s_client(self, *args):
        host, port = self.gw.http_url.replace("https://", "").split(":")
        return run(["openssl", "s_client", "-connect", "%s:%s" % (host, port), "-CAfile",
                    os.path.join(self.pki, "ca.crt"), *args], input="")

    def test_tls_1_2_offers_only_aead_ciphers(self):
        # Mozilla's intermediate profile: a CBC suite is refused, an ECDHE AES-GCM one agreed.
        refused = self.s_client("-tls1_2", "-cipher", "AES128-SHA")
        self.assertNotEqual(refused.returncode, 0)
        agreed = self.s_client("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(agreed.returncode, 0, agreed.stderr)
        self.assertIn("Cipher is ECDHE-RSA-AES128-GCM-SHA256", agreed.stdout)

    def renew_server_certificate(self):
        """Signs a new certificate for the same key (a new serial), as a renewal does; returns the
        serial, as ssl's getpeercert() spells it."""
        out = run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                   "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "renewed.crt"],
                  cwd=self.pki)
        self.assertEqual(out.returncode, 0, out.stderr)
        serial = run(["openssl", "x509", "-noout", "-serial", "-in", "renewed.crt"], cwd=self.pki)
        os.replace(os.path.join(self.pki, "renewed.crt"), os.path.join(self.pki, "server.crt"))
        return serial.stdout.strip().split("=", 1)[1].upper()

    def wait_for_event(self, event, count):
        deadline = time.time() + 10
        while time.time() < deadline:
            seen = [e for e in self.gw.log_events() if e["event"] == event]
            if len(seen) >= count:
                return seen
            time.sleep(0.05)
        self.fail("no %d %s log lines" % (count, event))

    def test_sighup_reloads_the_certificate_without_dropping_open_connections(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        host, port = self.gw.http_url.replace("https://", "").split(":")
        kept = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=5)
        kept.request("GET", "/healthz")
        self.assertEqual(kept.getresponse().read() and 200, 200)
        old_serial = kept.sock.getpeercert()["serialNumber"]
        client_ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        client_ctx.load_cert_chain(os.path.join(self.pki, "client.crt"), os.path.join(self.pki, "client.key"))
        with open(os.path.join(SAMPLES, "hl7v2", "bad-unsupported-type.hl7"), "rb") as f:
            message = f.read()
        mllp_raw = socket.create_connection(self.gw.mllp_address, timeout=5)
        mllp = client_ctx.wrap_socket(mllp_raw, server_hostname="127.0.0.1")
        try:
            self.assertIn("MSA|AR", mllp_roundtrip(mllp, message))
            before = len([e for e in self.gw.log_events() if e["event"] == "tls.reloaded"])
            new_serial = self.renew_server_certificate()
            self.assertNotEqual(new_serial, old_serial)
            self.gw.proc.send_signal(signal.SIGHUP)
            reloaded = self.wait_for_event("tls.reloaded", before + 2)
            self.assertEqual({e["listener"] for e in reloaded[before:]}, {"http", "mllp"})
            # The connections opened before the reload still work, on the old certificate...
            kept.request("GET", "/healthz")
            response = kept.getresponse()
            self.assertEqual(response.status, 200)
            response.read()
            self.assertEqual(kept.sock.getpeercert()["serialNumber"], old_serial)
            self.assertIn("MSA|AR", mllp_roundtrip(mllp, message))
            # ...and new ones get the renewed certificate, on both listeners.
            fresh = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=5)
            fresh.request("GET", "/healthz")
            self.assertEqual(fresh.getresponse().status, 200)
            self.assertEqual(fresh.sock.getpeercert()["serialNumber"], new_serial)
            fresh.close()
            with socket.create_connection(self.gw.mllp_address, timeout=5) as raw2:
                with client_ctx.wrap_socket(raw2, server_hostname="127.0.0.1") as s2:
                    self.assertEqual(s2.getpeercert()["serialNumber"], new_serial)
        finally:
            kept.close()
            mllp.close()

    def test_a_certificate_that_fails_to_load_leaves_the_current_one_in_use(self):
        path = os.path.join(self.pki, "server.crt")
        with open(path, "rb") as f:
            good = f.read()
        before = len([e for e in self.gw.log_events() if e["event"] == "tls.reload_failed"])
        try:
            with open(path, "w") as f:
                f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
            self.gw.proc.send_signal(signal.SIGHUP)
            failed = self.wait_for_event("tls.reload_failed", before + 2)
            self.assertEqual({e["key"] for e in failed[before:]}, {"http.tls.cert_file", "mllp.tls.cert_file"})
        finally:
            with open(path, "wb") as f:
                f.write(good)
        out = self.gw.curl("--cacert", os.path.join(self.pki, "ca.crt"), self.gw.http_url + "/healthz")
        self.assertEqual(out.returncode, 0, out.stderr)
        samples, _, _ = parse_metrics(self.gw.curl("--cacert", os.path.join(self.pki, "ca.crt"),
                                                   self.gw.http_url + "/metrics").stdout)
        self.assertGreaterEqual(samples['sdoh_tls_reloads_total{listener="http",outcome="failed"}'], 1)

    def mllp_over_tls(self, with_client_cert):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        if with_client_cert:
            ctx.load_cert_chain(os.path.join(self.pki, "client.crt"), os.path.join(self.pki, "client.key"))
        with open(os.path.join(SAMPLES, "hl7v2", "bad-unsupported-type.hl7"), "rb") as f:
            message = f.read()
        with socket.create_connection(self.gw.mllp_address, timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                return mllp_roundtrip(s, message)

    def test_mllp_mutual_tls_answers_a_client_with_a_certificate(self):
        answer = self.mllp_over_tls(with_client_cert=True)
        self.assertIn("MSA|AR|A1000009", answer)

    def test_mllp_mutual_tls_refuses_a_client_without_a_certificate(self):
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            answer = self.mllp_over_tls(with_client_cert=False)
            if not answer:
                raise ConnectionResetError("closed without an answer")


class ProductionOps(unittest.TestCase):
    """A production gateway (TLS, a Kafka cluster, SMART clients): /healthz and /readyz are open,
    /metrics and /ops/api need the ops or admin role, by bearer token or by the client
    certificate of a party of kind ops (a Prometheus scraper)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="sdoh-pki-")
        make_pki(cls.pki)
        p = lambda name: os.path.join(cls.pki, name)
        with open(os.path.join(SCHEMAS, "routing", "routing.json")) as f:
            routing = json.load(f)
        routing.pop("example")
        with open(p("routing.json"), "w") as f:
            json.dump(routing, f)
        # The gateway admin's client certificate (a party of kind admin), from the same CA.
        for args in (["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=State/CN=gw-admin", "-keyout",
                      "admin.key", "-out", "admin.csr"],
                     ["x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", "2", "-out", "admin.crt"]):
            out = run(["openssl", *args], cwd=cls.pki)
            assert out.returncode == 0, out.stderr
        cls.kafka = MockKafka()
        tls = ("{ cert_file: %s, key_file: %s, key_password: { env: SDOH_IT_TLS_KEY_PASSWORD }, "
               "client_ca_file: %s }" % (p("server.crt"), p("server.key"), p("ca.crt")))
        cls.gw = Gateway(
            base_config="mode: production\ndata_dir: var\nschemas_dir: %s\n"
            "http: { listen: \"127.0.0.1:0\", tls: %s }\n"
            "mllp: { listen: \"127.0.0.1:0\", tls: %s }\n"
            "kafka: { brokers: \"%s\", metadata_interval: 500ms }\n"
            "pseudonym: { key: { env: SDOH_IT_PSEUDONYM_KEY } }\n"
            "referrals: { routing_file: %s }\n"
            "ops: { token: { env: SDOH_IT_OPS_TOKEN } }\n"
            "fhir: { base_url: \"https://127.0.0.1/fhir\" }\n"
            "parties:\n"
            "  clinic-a: { kind: clinic, smart_clients: { ehr: { jwks_url: \"https://ehr.example.org/jwks\", "
            "scopes: system/Task.rus } } }\n"
            "  scraper: { kind: ops, certificate_subject: clinic-a-interface }\n"
            "  gateway-admin: { kind: admin, certificate_subject: gw-admin }\n"
            % (SCHEMAS, tls, tls, cls.kafka.bootstrap, p("routing.json")),
            env={"SDOH_IT_TLS_KEY_PASSWORD": "tls-key-pass", "SDOH_IT_PSEUDONYM_KEY": "k" * 48,
                 "SDOH_IT_OPS_TOKEN": "o" * 32})
        cls.gw.data_dir = os.path.join(cls.gw.dir, "var")
        cls.gw.start(wait_ready=False)

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.gw.__exit__(None, None, None)
        cls.kafka.close()
        shutil.rmtree(cls.pki, ignore_errors=True)

    def get(self, path, *args):
        out = self.gw.curl("--cacert", os.path.join(self.pki, "ca.crt"), "-o", "-", "-w", "\n%{http_code}",
                           *args, self.gw.http_url + path)
        body, _, status = out.stdout.rpartition("\n")
        return int(status or 0), body

    def test_health_is_open(self):
        self.assertEqual(self.get("/healthz")[0], 200)
        self.assertIn(self.get("/readyz")[0], (200, 503))

    def test_metrics_need_the_ops_role(self):
        status, body = self.get("/metrics")
        self.assertEqual(status, 401, body)
        self.assertIn("ops.token", body)
        status, body = self.get("/metrics", "-H", "Authorization: Bearer " + "o" * 32)
        self.assertEqual(status, 200, body)
        self.assertIn("sdoh_build_info", body)
        self.assertEqual(self.get("/metrics", "-H", "Authorization: Bearer " + "x" * 32)[0], 401)
        self.assertEqual(self.get("/ops/api/v1/health")[0], 401)

    def test_a_scraper_with_an_ops_partys_certificate_needs_no_token(self):
        cert = ("--cert", os.path.join(self.pki, "client.crt"), "--key", os.path.join(self.pki, "client.key"))
        status, body = self.get("/metrics", *cert)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.get("/ops/api/v1/health", *cert)[0], 200)
        # Reads only: the ops role does not replay dead letters.
        status, _ = self.get("/ops/api/v1/dead-letters/nope/replay", "-X", "POST", *cert)
        self.assertEqual(status, 403)

    def test_the_admin_is_its_partys_client_certificate_never_a_token(self):
        admin = ("--cert", os.path.join(self.pki, "admin.crt"), "--key", os.path.join(self.pki, "admin.key"))
        scraper = ("--cert", os.path.join(self.pki, "client.crt"), "--key", os.path.join(self.pki, "client.key"))
        status, body = self.get("/admin/dead-letters", *admin)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["waiting"], 0)
        self.assertEqual(self.get("/fhir/AuditEvent", *admin)[0], 200)
        self.assertEqual(self.get("/ops/api/v1/dead-letters/nope/replay", "-X", "POST", *admin)[0], 404)
        # The ops role, by certificate or token, is not the admin.
        self.assertEqual(self.get("/admin/dead-letters", *scraper)[0], 401)
        self.assertEqual(self.get("/admin/dead-letters", "-H", "Authorization: Bearer " + "o" * 32)[0], 401)
        self.assertEqual(self.get("/fhir/AuditEvent", *scraper)[0], 401)
        # tools/deadletters, as an operator runs it.
        out = run([os.path.join(SOURCE_DIR, "tools", "deadletters"), "--url", self.gw.http_url, "--cacert",
                   os.path.join(self.pki, "ca.crt"), "--cert", os.path.join(self.pki, "admin.crt"), "--key",
                   os.path.join(self.pki, "admin.key"), "list"], env=dict(os.environ, SDOH_ADMIN_TOKEN=""))
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_production_refuses_a_static_admin_token(self):
        with open(self.gw.config_path) as f:
            text = f.read()
        path = os.path.join(self.pki, "with-admin-token.yaml")
        with open(path, "w") as f:
            f.write(text + "admin: { token: { env: SDOH_IT_OPS_TOKEN } }\n")
        out = run([BINARY, "--check-config", path], env=dict(os.environ, **self.gw.env))
        self.assertEqual(out.returncode, 2, out.stdout)
        self.assertIn("admin.token: a static admin token is for mode: dev", out.stderr)


if __name__ == "__main__":
    unittest.main()
