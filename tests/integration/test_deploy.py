"""Static checks of the shipped deployment files (no Docker daemon here): every shipped config
passes --check-config with the secrets and files it needs, and the compose and Kubernetes files
name the same paths, ports, secrets and topics as the configs they run."""
import glob
import json
import os
import re
import shutil
import tempfile
import unittest

import yaml

from harness import BINARY, SCHEMAS, SOURCE_DIR, Gateway, run
from test_runtime import make_pki

DEPLOY = os.path.join(SOURCE_DIR, "deploy")
IMAGE_SCHEMAS = "/usr/share/sdoh-gateway/schemas"
ETC = "/etc/sdoh-gateway"


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def env_names(node):
    """Every { env: NAME } in a parsed config."""
    if isinstance(node, dict):
        found = [node["env"]] if set(node) == {"env"} else []
        for value in node.values():
            found += env_names(value)
        return found
    if isinstance(node, list):
        return [n for item in node for n in env_names(item)]
    return []


def port_of(listen):
    return int(str(listen).rsplit(":", 1)[1])


class ShippedConfigs(unittest.TestCase):
    """--check-config passes on every shipped config, with the image's paths pointed at test files."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sdoh-deploy-")
        etc = os.path.join(cls.dir, "etc")
        os.makedirs(os.path.join(etc, "tls"))
        make_pki(os.path.join(etc, "tls"))
        shutil.copy(os.path.join(etc, "tls", "ca.crt"), os.path.join(etc, "tls", "clients-ca.crt"))
        shutil.copy(os.path.join(DEPLOY, "config", "routing.json"), os.path.join(etc, "routing.json"))
        cls.etc = etc
        cls.env = dict(os.environ, SDOH_PSEUDONYM_KEY="p" * 48, SDOH_TLS_KEY_PASSWORD="tls-key-pass",
                       SDOH_ADMIN_TOKEN="d" * 32, SDOH_OPS_TOKEN="o" * 32)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def check(self, name, text):
        """--check-config on `text` with the container paths pointed at this test's files."""
        text = text.replace(IMAGE_SCHEMAS, SCHEMAS).replace(ETC, self.etc)
        text = text.replace("/var/lib/sdoh-gateway", os.path.join(self.dir, "var"))
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        out = run([BINARY, "--check-config", path], env=self.env, cwd=SOURCE_DIR)
        self.assertEqual(out.returncode, 0, "%s: %s" % (name, out.stderr))
        self.assertIn("configuration is valid", out.stdout)

    def test_the_compose_certificates_script_makes_what_the_compose_config_loads(self):
        etc = os.path.join(self.dir, "compose-etc")
        os.makedirs(os.path.join(etc, "tls"))
        shutil.copy(os.path.join(DEPLOY, "tls", "make-certs.sh"), os.path.join(etc, "tls"))
        shutil.copy(os.path.join(DEPLOY, "config", "routing.json"), os.path.join(etc, "routing.json"))
        env = dict(self.env, SDOH_TLS_KEY_PASSWORD="compose-pass")
        made = run(["sh", os.path.join(etc, "tls", "make-certs.sh")], env=env)
        self.assertEqual(made.returncode, 0, made.stderr)
        with open(os.path.join(DEPLOY, "config", "compose.yaml")) as f:
            text = f.read().replace(IMAGE_SCHEMAS, SCHEMAS).replace(ETC, etc)
        text = text.replace("/var/lib/sdoh-gateway", os.path.join(self.dir, "var"))
        path = os.path.join(self.dir, "compose-own-certs.yaml")
        with open(path, "w") as f:
            f.write(text)
        out = run([BINARY, "--check-config", path], env=env, cwd=SOURCE_DIR)
        self.assertEqual(out.returncode, 0, out.stderr)
        # The clinic's certificate chains to the CA the MLLP listener trusts.
        verify = run(["openssl", "verify", "-CAfile", "clients-ca.crt", "clinic.crt"], cwd=os.path.join(etc, "tls"))
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)

    def test_every_shipped_config_is_valid(self):
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(DEPLOY, "config", "*.yaml")))
        self.assertEqual(names, ["compose.yaml", "dev.yaml", "production.yaml", "reference.yaml"])
        for name in names:
            with open(os.path.join(DEPLOY, "config", name)) as f:
                self.check(name, f.read())

    def test_the_kubernetes_configmap_config_is_valid(self):
        configmap = load(os.path.join(DEPLOY, "kubernetes", "configmap.yaml"))
        self.check("configmap.yaml", configmap["data"]["gateway.yaml"])

    def test_production_configs_do_not_run_on_the_example_routing(self):
        for name in ("compose.yaml", "production.yaml"):
            cfg = load(os.path.join(DEPLOY, "config", name))
            self.assertEqual(cfg["mode"], "production")
            self.assertEqual(cfg["referrals"]["routing_file"], ETC + "/routing.json", name)
            # No static bearer but the ops role's scrape token: the admin is a client certificate.
            self.assertNotIn("admin", cfg, name)
            self.assertEqual(cfg["ops"]["token"], {"env": "SDOH_OPS_TOKEN"}, name)
            self.assertEqual(cfg["parties"]["gateway-admin"]["kind"], "admin", name)
            self.assertTrue(cfg["parties"]["gateway-admin"]["certificate_subject"], name)
            # FHIR clients are SMART Backend Services clients; no static bearer token.
            self.assertNotIn("clients", cfg["fhir"], name)
            self.assertTrue(all(p["smart_clients"] for p in cfg["parties"].values()
                                if p["kind"] in ("clinic", "agency")), name)
        with open(os.path.join(DEPLOY, "config", "routing.json")) as f:
            self.assertNotIn("example", json.load(f))
        with open(os.path.join(SCHEMAS, "routing", "routing.json")) as f:
            self.assertIs(json.load(f)["example"], True)
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            self.assertIn("RUN rm /usr/share/sdoh-gateway/schemas/routing/routing.json", f.read())


class ComposeFile(unittest.TestCase):
    """deploy/compose.yaml runs Kafka (KRaft), the generated topic script and the gateway, with
    the paths, ports, secrets and health check of deploy/config/compose.yaml."""

    @classmethod
    def setUpClass(cls):
        cls.compose = load(os.path.join(DEPLOY, "compose.yaml"))
        cls.config = load(os.path.join(DEPLOY, "config", "compose.yaml"))
        cls.services = cls.compose["services"]

    def mounts(self, service):
        """container path -> host path (relative to deploy/) of a service's volumes."""
        out = {}
        for v in self.services[service].get("volumes", []):
            parts = v.split(":")
            out[parts[1]] = parts[0]
        return out

    def test_kafka_runs_in_kraft_mode_without_auto_created_topics(self):
        env = self.services["kafka"]["environment"]
        self.assertEqual(env["KAFKA_PROCESS_ROLES"], "broker,controller")
        self.assertEqual(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"], "false")
        host, port = self.config["kafka"]["brokers"].split(":")
        self.assertEqual(self.services["kafka"]["hostname"], host)
        self.assertIn("PLAINTEXT://:%s" % port, env["KAFKA_LISTENERS"])

    def test_the_gateway_mounts_what_its_config_names(self):
        mounts = self.mounts("gateway")
        self.assertEqual(mounts[ETC + "/gateway.yaml"], "./config/compose.yaml")
        self.assertEqual(mounts[self.config["referrals"]["routing_file"]], "./config/routing.json")
        self.assertIn(self.config["data_dir"], mounts)
        self.assertEqual(self.services["gateway"]["command"], ["--config", ETC + "/gateway.yaml"])
        for host_path in mounts.values():
            if host_path.startswith("./"):
                self.assertTrue(os.path.exists(os.path.join(DEPLOY, host_path)), host_path)

    def test_the_published_ports_are_the_configs_listeners(self):
        published = sorted(int(p.rsplit(":", 1)[1]) for p in self.services["gateway"]["ports"])
        self.assertEqual(published, sorted([port_of(self.config["http"]["listen"]),
                                            port_of(self.config["mllp"]["listen"])]))

    def test_every_secret_the_config_reads_is_required_from_the_shell(self):
        env = self.services["gateway"]["environment"]
        for name in env_names(self.config):
            self.assertIn(name, env)
            self.assertRegex(env[name], r"^\$\{%s:\?" % name)
        self.assertIn("SDOH_OPS_TOKEN", env)
        self.assertNotIn("SDOH_ADMIN_TOKEN", env)  # the admin is deploy/tls/admin.crt

    def test_the_health_check_is_readiness(self):
        self.assertEqual(self.services["gateway"]["healthcheck"]["test"], ["CMD", "sdoh-healthcheck", "/readyz"])
        depends = self.services["gateway"]["depends_on"]
        self.assertEqual(depends["kafka-init"], {"condition": "service_completed_successfully"})

    def test_the_health_check_script_asks_readyz(self):
        """The image's health check, run against a real gateway: 0 when /readyz is 200, 1 when not."""
        script = os.path.join(DEPLOY, "docker", "healthcheck.sh")
        with Gateway() as gw:
            env = dict(os.environ, SDOH_DATA_DIR=gw.data_dir)
            self.assertEqual(run(["sh", script, "/readyz"], env=env).returncode, 0)
            bad = run(["sh", script, "/no-such-path"], env=env)
            self.assertEqual(bad.returncode, 1)
            self.assertIn("/no-such-path failed", bad.stdout)

    def test_kafka_init_runs_the_topic_script_the_tool_generates(self):
        init = self.services["kafka-init"]
        self.assertEqual(self.mounts("kafka-init")["/opt/sdoh/topics.sh"], "./kafka/topics.sh")
        self.assertEqual(init["entrypoint"], ["/bin/sh", "/opt/sdoh/topics.sh"])
        self.assertEqual(init["environment"]["KAFKA_BOOTSTRAP"], self.config["kafka"]["brokers"])
        out = run([os.path.join(SOURCE_DIR, "tools", "kafka-provision"), "--topics-only", "--schemas-dir",
                   "schemas", "--routing", "deploy/config/routing.json", "deploy/config/compose.yaml"],
                  cwd=SOURCE_DIR)
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(os.path.join(DEPLOY, "kafka", "topics.sh")) as f:
            shipped = f.read()
        self.assertEqual(shipped, out.stdout,
                         "deploy/kafka/topics.sh is out of date: regenerate it (see deploy/compose.yaml)")
        topics = re.findall(r"--topic (\S+)", shipped)
        self.assertEqual(topics, ["sdoh.screening.v1", "sdoh.referral.v1", "sdoh.referral-status.v1",
                                  "sdoh.deadletter.v1", "sdoh.audit-anchors.v1", "sdoh.referral-updates.v1", "sdoh.referral-updates.ehv-durham",
                                  "sdoh.referral.legal-aid-triangle", "sdoh.referral-updates.legal-aid-triangle"])
        self.assertIn("--replication-factor 1 --config min.insync.replicas=1", shipped)


class KubernetesManifests(unittest.TestCase):
    """deploy/kubernetes: the Deployment mounts what the ConfigMap's config names, exposes its
    ports, probes /healthz and /readyz, and takes every secret it reads from the Secret."""

    @classmethod
    def setUpClass(cls):
        k8s = os.path.join(DEPLOY, "kubernetes")
        cls.docs = {}
        for path in sorted(glob.glob(os.path.join(k8s, "*.yaml"))):
            with open(path) as f:
                cls.docs[os.path.basename(path)] = [d for d in yaml.safe_load_all(f) if d]
        cls.config = yaml.safe_load(cls.docs["configmap.yaml"][0]["data"]["gateway.yaml"])
        cls.pod = cls.docs["deployment.yaml"][0]["spec"]["template"]["spec"]
        cls.container = cls.pod["containers"][0]

    def test_the_configmap_is_production_yaml(self):
        with open(os.path.join(DEPLOY, "config", "production.yaml")) as f:
            self.assertEqual(self.docs["configmap.yaml"][0]["data"]["gateway.yaml"], f.read())

    def test_kustomization_lists_files_that_exist(self):
        kustomization = self.docs["kustomization.yaml"][0]
        for resource in kustomization["resources"]:
            self.assertIn(resource, self.docs)
        self.assertNotIn("secret.example.yaml", kustomization["resources"])

    def test_the_pod_mounts_what_the_config_names(self):
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        mounts = {m["mountPath"]: m for m in self.container["volumeMounts"]}
        self.assertEqual(self.container["args"], ["--config", ETC + "/gateway.yaml"])
        self.assertEqual(volumes[mounts[ETC + "/gateway.yaml"]["name"]]["configMap"]["name"],
                         self.docs["configmap.yaml"][0]["metadata"]["name"])
        routing = mounts[self.config["referrals"]["routing_file"]]
        self.assertEqual(volumes[routing["name"]]["configMap"]["name"], "sdoh-gateway-routing")
        self.assertEqual(routing["subPath"], "routing.json")
        tls_dir = os.path.dirname(self.config["http"]["tls"]["cert_file"])
        self.assertEqual(volumes[mounts[tls_dir]["name"]]["secret"]["secretName"], "sdoh-gateway-tls")
        for key in ("cert_file", "key_file"):
            self.assertEqual(os.path.dirname(self.config["mllp"]["tls"][key]), tls_dir)
        self.assertIn(self.config["data_dir"], mounts)
        claim = volumes[mounts[self.config["data_dir"]]["name"]]["persistentVolumeClaim"]["claimName"]
        self.assertEqual(claim, self.docs["pvc.yaml"][0]["metadata"]["name"])

    def test_ports_and_probes_match_the_config(self):
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.assertEqual(ports, {"http": port_of(self.config["http"]["listen"]),
                                 "mllp": port_of(self.config["mllp"]["listen"])})
        self.assertEqual(self.container["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(self.container["livenessProbe"]["httpGet"]["path"], "/healthz")
        scheme = "HTTPS" if self.config["http"].get("tls") else "HTTP"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            self.assertEqual(self.container[probe]["httpGet"]["scheme"], scheme)
            self.assertEqual(self.container[probe]["httpGet"]["port"], "http")
        service = self.docs["service.yaml"][0]["spec"]["ports"]
        self.assertEqual({p["targetPort"]: p["port"] for p in service}, ports)

    def test_every_secret_the_config_reads_comes_from_the_secret(self):
        env = {e["name"]: e for e in self.container["env"]}
        secrets = {d["metadata"]["name"]: d for d in self.docs["secret.example.yaml"]}
        for name in env_names(self.config):
            self.assertIn(name, env, name)
            ref = env[name]["valueFrom"]["secretKeyRef"]
            self.assertIn(ref["key"], secrets[ref["name"]]["stringData"], name)
        self.assertEqual(env["SDOH_OPS_TOKEN"]["valueFrom"]["secretKeyRef"]["key"], "ops-token")
        self.assertNotIn("SDOH_ADMIN_TOKEN", env)  # the admin is a client certificate


if __name__ == "__main__":
    unittest.main()
