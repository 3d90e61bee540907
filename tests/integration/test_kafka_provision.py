"""Kafka topics and ACLs from the configuration and the routing: `sdoh-gateway --kafka-provision`
(tools/kafka-provision), and readiness naming every missing topic, agency topics included."""
import json
import os
import shutil
import tempfile
import time
import unittest

from harness import BINARY, SCHEMAS, SOURCE_DIR, Gateway, MockKafka, gateway_topics, run, wait_for

CORE = ["sdoh.screening.v1", "sdoh.referral.v1", "sdoh.referral-status.v1", "sdoh.deadletter.v1",
        "sdoh.audit-anchors.v1", "sdoh.referral-updates.v1"]


class AgencyTopicReadiness(unittest.TestCase):
    """/readyz is 503 naming each missing topic, an agency's included, until an operator creates it."""

    def test_readyz_names_a_missing_agency_topic_until_it_is_created(self):
        # Two agencies' own referral topics are missing. (Not update topics: librdkafka's mock
        # broker creates a topic a consumer subscribes to, which a real cluster with topic
        # auto-creation off does not.)
        needed = gateway_topics()
        missing = ["sdoh.referral.ei-durham", "sdoh.referral.legal-aid-triangle"]
        for topic in missing:
            self.assertIn(topic, needed)
        with MockKafka(brokers=1, partitions=1, topics=[t for t in needed if t not in missing]) as kafka:
            gw = Gateway(kafka="{ brokers: \"%s\", metadata_interval: 300ms }" % kafka.bootstrap)
            try:
                gw.start(wait_ready=False)
                deadline = time.monotonic() + 10
                body = None
                while time.monotonic() < deadline:
                    status, text = gw.get("/readyz")
                    body = json.loads(text)
                    if body["checks"]["kafka"]["detail"] != "no metadata yet":
                        break
                    time.sleep(0.1)
                self.assertEqual(status, 503, body)
                self.assertFalse(body["checks"]["kafka"]["ok"])
                self.assertEqual(body["checks"]["kafka"]["detail"],
                                 "missing topics: sdoh.referral.ei-durham, sdoh.referral.legal-aid-triangle")
                # An operator creates one: the other is still named.
                kafka.command("create sdoh.referral.ei-durham 1")
                wait_for(lambda: json.loads(gw.get("/readyz")[1])["checks"]["kafka"]["detail"]
                         == "missing topics: sdoh.referral.legal-aid-triangle", 10, "one topic left")
                self.assertEqual(gw.get("/readyz")[0], 503)
                kafka.command("create sdoh.referral.legal-aid-triangle 1")
                ready = gw.wait_ready(10)
                self.assertTrue(ready["checks"]["kafka"]["ok"], ready)
                self.assertEqual(ready["checks"]["kafka"]["detail"], "1 broker(s), %d topics present" % len(needed))
            finally:
                gw.__exit__(None, None, None)


class ProvisionCommands(unittest.TestCase):
    """What tools/kafka-provision prints, and what --check-config says about routing."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sdoh-provision-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_the_tool_prints_every_topic_and_acl_of_config_and_routing(self):
        config = self.write("gw.yaml", "schemas_dir: %s\nkafka:\n  brokers: \"k1:9092\"\n"
                            "  principal: \"User:gw\"\n"
                            "  topic_defaults: { partitions: 6, replication_factor: 3, min_insync_replicas: 2, retention: 14d }\n"
                            "parties: { ei-durham: { kafka_principal: \"User:ei\" } }\n" % SCHEMAS)
        out = run([os.path.join(SOURCE_DIR, "tools", "kafka-provision"), config])
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        creates = [l for l in lines if l.startswith('"$bin/kafka-topics.sh"')]
        # The six core topics (the audit anchors' kept forever), two agencies' own referral topics,
        # eight agencies' update topics.
        self.assertEqual(len(creates), 16, out.stdout)
        self.assertIn('"$bin/kafka-topics.sh" "$@" --create --if-not-exists --topic sdoh.audit-anchors.v1 '
                      '--partitions 6 --replication-factor 3 --config min.insync.replicas=2 '
                      '--config retention.ms=-1', lines)
        self.assertIn('"$bin/kafka-topics.sh" "$@" --create --if-not-exists --topic sdoh.referral-updates.ei-durham '
                      '--partitions 6 --replication-factor 3 --config min.insync.replicas=2 '
                      '--config retention.ms=1209600000', lines)
        self.assertIn('"$bin/kafka-acls.sh" "$@" --add --allow-principal User:ei --operation Write '
                      '--operation Describe --topic sdoh.referral-updates.ei-durham', lines)
        self.assertIn('"$bin/kafka-acls.sh" "$@" --add --allow-principal User:ei --operation Read '
                      '--operation Describe --topic sdoh.referral.ei-durham', lines)
        self.assertIn('"$bin/kafka-acls.sh" "$@" --add --allow-principal User:gw --operation Write '
                      '--operation Read --operation Describe --topic sdoh.referral-status.v1', lines)
        self.assertIn('"$bin/kafka-acls.sh" "$@" --add --allow-principal User:gw --operation Read '
                      '--operation Describe --topic sdoh.referral-updates.headstart-durham', lines)
        self.assertIn('bootstrap="${KAFKA_BOOTSTRAP:-k1:9092}"', lines)
        # It is a shell script that sh reads.
        syntax = run(["sh", "-n"], input=out.stdout)
        self.assertEqual(syntax.returncode, 0, syntax.stderr)

    def test_the_script_runs_the_kafka_tools_it_names(self):
        """With stand-ins for kafka-topics.sh and kafka-acls.sh, every command runs with its words."""
        config = self.write("gw.yaml", "schemas_dir: %s\nkafka: { brokers: \"k1:9092\" }\n" % SCHEMAS)
        script = run([BINARY, "--kafka-provision", config])
        self.assertEqual(script.returncode, 0, script.stderr)
        bindir = os.path.join(self.dir, "bin")
        os.mkdir(bindir)
        log = os.path.join(self.dir, "calls")
        for tool in ("kafka-topics.sh", "kafka-acls.sh"):
            self.write(os.path.join("bin", tool), "#!/bin/sh\necho \"%s $*\" >> %s\n" % (tool, log))
            os.chmod(os.path.join(bindir, tool), 0o755)
        env = dict(os.environ, KAFKA_BIN=bindir, KAFKA_BOOTSTRAP="b:1", KAFKA_COMMAND_CONFIG="/etc/k.properties")
        ran = run(["sh"], input=script.stdout, env=env)
        self.assertEqual(ran.returncode, 0, ran.stderr)
        with open(log) as f:
            calls = f.read().splitlines()
        self.assertIn("kafka-topics.sh --bootstrap-server b:1 --command-config /etc/k.properties --create "
                      "--if-not-exists --topic sdoh.screening.v1 --partitions 3 --replication-factor 3 "
                      "--config min.insync.replicas=2 --config retention.ms=604800000", calls)
        self.assertEqual(len([c for c in calls if c.startswith("kafka-topics.sh")]), 16)
        self.assertIn("kafka-acls.sh --bootstrap-server b:1 --command-config /etc/k.properties --add "
                      "--allow-principal User:sdoh-gateway --operation Read --operation Describe "
                      "--group sdoh-gateway", calls)

    def test_production_refuses_the_example_routing_naming_the_key(self):
        config = self.write("prod.yaml", "mode: production\nschemas_dir: %s\nkafka: { brokers: \"k1:9092\" }\n"
                            "http: { insecure_loopback_only: true }\nmllp: { insecure_loopback_only: true }\n"
                            "pseudonym: { key: { env: SDOH_IT_KEY } }\n"
                            "fhir: { base_url: \"https://gw.example.org/fhir\" }\n"
                            "parties: { c: { kind: clinic, smart_clients: { ehr: { jwks_url: "
                            "\"https://ehr.example.org/jwks\", scopes: system/Task.rus } } } }\n" % SCHEMAS)
        env = dict(os.environ, SDOH_IT_KEY="k" * 48, SDOH_IT_TOKEN="t" * 32)
        out = run([BINARY, "--check-config", config], env=env)
        self.assertEqual(out.returncode, 2, out.stdout)
        self.assertIn("referrals.routing_file: %s/routing/routing.json is an EXAMPLE routing" % SCHEMAS, out.stderr)
        # A routing file of one's own passes.
        with open(os.path.join(SCHEMAS, "routing", "routing.json")) as f:
            routing = json.load(f)
        routing.pop("example")
        own = self.write("routing.json", json.dumps(routing))
        with open(config, "a") as f:
            f.write("referrals: { routing_file: %s }\n" % own)
        out = run([BINARY, "--check-config", config], env=env)
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_check_config_names_the_routing_file_the_json_path_and_the_reason(self):
        with open(os.path.join(SCHEMAS, "routing", "routing.json")) as f:
            routing = json.load(f)
        routing["routes"][2]["agency"] = "no-such-agency"
        bad = self.write("routing.json", json.dumps(routing))
        config = self.write("gw.yaml", "schemas_dir: %s\nreferrals: { routing_file: %s }\n" % (SCHEMAS, bad))
        out = run([BINARY, "--check-config", config])
        self.assertEqual(out.returncode, 2)
        self.assertIn("referrals.routing_file: %s: /routes/2/agency: unknown agency \"no-such-agency\"" % bad,
                      out.stderr)
        out = run([BINARY, "--kafka-provision", config])
        self.assertEqual(out.returncode, 2)
        self.assertIn("/routes/2/agency", out.stderr)


if __name__ == "__main__":
    unittest.main()
