"""Starts the real sdoh-gateway binary for integration tests and talks to it with real clients.

Every gateway gets its own temporary data directory and ephemeral ports (port 0); the bound
addresses come from <data_dir>/runtime.json, exactly as an operator's tools read them.
"""
import json
import os
import shutil
import sqlite3
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SOURCE_DIR = os.environ.get(
    "SDOH_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY = os.environ.get("SDOH_GATEWAY_BIN", os.path.join(SOURCE_DIR, "build", "sdoh-gateway"))
SCHEMAS = os.path.join(SOURCE_DIR, "schemas")
SAMPLES = os.environ.get("SDOH_SHARED_SAMPLES_DIR",
                         os.path.abspath(os.path.join(SOURCE_DIR, "..", "shared", "samples")))
# Where CTest runs keep what tests leave for later checks: each gateway's log, its last /metrics
# and its screening events go to phi-corpus/ for the PHI scan (test_phi_scan). Unset when a test
# runs by hand: nothing is kept.
ARTIFACTS = os.environ.get("SDOH_TEST_ARTIFACTS")


def run(args, **kwargs):
    """Runs a command; returns CompletedProcess with text output."""
    kwargs.setdefault("timeout", 60)
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


class Gateway:
    """One gateway process. Use as a context manager; config is YAML text appended to defaults."""

    def __init__(self, config="", env=None, base_config=None, mllp_config="", kafka=None,
                 schemas=None):
        """`mllp_config` is YAML flow text added inside the default mllp mapping, e.g.
        ', hl7: { default_timezone: America/New_York }'; `kafka` replaces the default kafka
        mapping (the embedded broker)."""
        self.dir = tempfile.mkdtemp(prefix="sdoh-it-")
        self.data_dir = os.path.join(self.dir, "var")
        self.config_path = os.path.join(self.dir, "gateway.yaml")
        base = base_config if base_config is not None else (
            "data_dir: %s\n"
            "schemas_dir: %s\n"
            "log: { level: debug }\n"
            "http: { listen: \"127.0.0.1:0\" }\n"
            "mllp: { listen: \"127.0.0.1:0\"%s }\n"
            "kafka: %s\n" % (self.data_dir, schemas or SCHEMAS, mllp_config,
                                kafka or "{ brokers: \"\", metadata_interval: 500ms }"))
        with open(self.config_path, "w") as f:
            f.write(base + config)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.log_path = os.path.join(self.dir, "gateway.log")
        self.runtime = None

    def start(self, wait_ready=True, timeout=10.0):
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([BINARY, "--config", self.config_path], stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=self.env, cwd=self.dir)
        runtime_file = os.path.join(self.data_dir, "runtime.json")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("gateway exited with %s:\n%s" % (self.proc.returncode, self.log()))
            if os.path.exists(runtime_file):
                with open(runtime_file) as f:
                    self.runtime = json.load(f)
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no runtime.json within %ss:\n%s" % (timeout, self.log()))
        if wait_ready:
            self.wait_ready(deadline - time.monotonic())
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + max(timeout, 0.5)
        last = None
        while time.monotonic() < deadline:
            status, body = self.get("/readyz")
            last = (status, body)
            if status == 200:
                return json.loads(body)
            time.sleep(0.1)
        raise AssertionError("not ready in time; last /readyz: %r\n%s" % (last, self.log()))

    @property
    def http_url(self):
        return self.runtime["http"]["url"]

    @property
    def mllp_address(self):
        host, port = self.runtime["mllp"]["address"].rsplit(":", 1)
        return host, int(port)

    @property
    def bootstrap(self):
        return self.runtime["kafka"]["bootstrap_servers"]

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.http_url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, sample, default=0):
        """One sample's value from /metrics ("name" or 'name{label="v"}')."""
        status, body = self.get("/metrics")
        assert status == 200, body
        return parse_metrics(body)[0].get(sample, default)

    def wait_drained(self, timeout=60):
        """Waits until the outbox is empty: every committed event is on Kafka. After it, an event
        that a step wrongly added would be there to see (a barrier instead of a sleep)."""
        wait_for(lambda: self.metric("sdoh_outbox_undelivered_events", None) == 0, timeout,
                 "the outbox to drain:\n" + self.log()[-2000:])

    def curl(self, *args):
        """Runs curl against the gateway; returns (status, headers+body text)."""
        return run(["curl", "-sS", "--max-time", "10", *args])

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signals the gateway and waits; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self._scrape_for_corpus()
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("gateway did not exit within %ss of %s:\n%s" % (timeout, sig, self.log()))

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def log_events(self):
        """The JSON log lines as dicts (every line must be JSON)."""
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]

    def __enter__(self):
        return self.start()

    def _scrape_for_corpus(self):
        """Keeps the last /metrics of a running gateway for the PHI scan (best effort: a TLS or
        authenticated listener, or a stuck process, is skipped)."""
        if not ARTIFACTS or self.runtime is None or self.proc is None or self.proc.poll() is not None:
            return
        try:
            url = self.runtime["http"]["url"]
            if url.startswith("http://"):
                with urllib.request.urlopen(url + "/metrics", timeout=2) as resp:
                    self._last_metrics = resp.read().decode()
        except Exception:  # noqa: BLE001 - the scan reads what there is
            pass

    def _keep_corpus(self):
        """Copies the log, the last /metrics and the screening events of the store (the outbox's
        values) into ARTIFACTS/phi-corpus/<this gateway's dir name>/."""
        if not ARTIFACTS or self.runtime is None:
            return
        out = os.path.join(ARTIFACTS, "phi-corpus", os.path.basename(self.dir))
        os.makedirs(out, exist_ok=True)
        if os.path.exists(self.log_path):
            shutil.copy(self.log_path, os.path.join(out, "gateway.log"))
        if getattr(self, "_last_metrics", None):
            with open(os.path.join(out, "metrics.txt"), "w") as f:
                f.write(self._last_metrics)
        events = []
        for root, _, files in os.walk(self.dir):
            for name in files:
                if not name.endswith(".db"):
                    continue
                try:
                    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(root, name), uri=True)
                    try:
                        events += [bytes(v).decode("utf-8", "replace") for (v,) in db.execute(
                            "SELECT value FROM outbox WHERE topic LIKE '%screening%'")]
                    finally:
                        db.close()
                except sqlite3.Error:
                    pass
        if events:
            with open(os.path.join(out, "screening-events.jsonl"), "w") as f:
                f.write("\n".join(e.replace("\n", " ") for e in events) + "\n")

    def __exit__(self, *exc):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self._scrape_for_corpus()
                self.proc.kill()
                self.proc.wait()
        finally:
            if getattr(self, "log_file", None):
                self.log_file.close()
            self._keep_corpus()
            if exc[0] is None:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:
                print("gateway log kept in", self.log_path)
        return False


def wait_for(predicate, timeout, what):
    """Polls `predicate` until it returns something true, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.05)


def parse_metrics(text):
    """Prometheus text -> {'name{labels}': value}, plus the HELP/TYPE declarations."""
    samples, types, helps = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples, types, helps


VALIDATE_EVENTS = os.environ.get("SDOH_VALIDATE_EVENTS_BIN",
                                 os.path.join(os.path.dirname(BINARY), "validate-events"))


def mllp_roundtrip(sock, frame):
    """Sends one message (bytes, unframed) on an open socket (plain or TLS) and returns the
    decoded answer, read up to MLLP's end block; empty when the peer closed."""
    sock.sendall(b"\x0b" + frame + b"\x1c\r")
    data = b""
    while not data.endswith(b"\x1c\r"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.strip(b"\x0b\x1c\r").decode()


def mllp_read_frames(sock, count):
    """Reads exactly `count` MLLP frames from an open socket and returns them decoded, without
    the framing; fails when the peer closes first. Bytes of a further frame that arrived in the
    same read are an error too: nothing may come that was not asked for."""
    data = b""
    while data.count(b"\x1c\r") < count:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed after %d of %d frames: %r" % (
            data.count(b"\x1c\r"), count, data)
        data += chunk
    frames = [f for f in data.split(b"\x1c\r") if f]
    assert len(frames) == count and data.endswith(b"\x1c\r"), "more than %d frames: %r" % (count, data)
    for f in frames:
        assert f.startswith(b"\x0b"), "not an MLLP frame: %r" % f
    return [f[1:].decode() for f in frames]


def mllp_expect_silence(sock, seconds=1.0):
    """Asserts that nothing arrives on `sock` for `seconds` (the socket's timeout is restored)."""
    import socket
    previous = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        data = sock.recv(65536)
    except socket.timeout:
        return
    finally:
        sock.settimeout(previous)
    raise AssertionError("expected no answer, got %r" % data)


def mllp_exchange(address, frames, timeout=10):
    """Sends each frame on one MLLP connection, in order; returns the answers."""
    import socket
    with socket.create_connection(address, timeout=timeout) as s:
        return [mllp_roundtrip(s, frame) for frame in frames]


def hl7_field(message, segment, field, occurrence=1):
    """Field `field` of the `occurrence`-th `segment` of an ER7 message (MSH numbering respected)."""
    seen = 0
    message = message.replace("\x0b", "").replace("\x1c", "")  # MLLP framing, as mllp_send prints it
    for line in message.replace("\n", "\r").split("\r"):
        parts = line.split("|")
        if parts[0] != segment:
            continue
        seen += 1
        if seen != occurrence:
            continue
        index = field - 1 if segment == "MSH" else field
        return parts[index] if index < len(parts) else ""
    return None


def consume(bootstrap, topic, expect_at_least=0, timeout=15):
    """Every message on `topic` as (key, value) pairs, waiting until there are expect_at_least."""
    deadline = time.monotonic() + timeout
    while True:
        out = run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                   "-f", "%k\t%s\n"])
        assert out.returncode == 0, out.stderr
        pairs = [tuple(line.split("\t", 1)) for line in out.stdout.splitlines() if line]
        if len(pairs) >= expect_at_least or time.monotonic() > deadline:
            return pairs
        time.sleep(0.2)


def assert_valid_events(values):
    """Validates CloudEvents against schemas/events with the project's RapidJSON validator."""
    out = run([VALIDATE_EVENTS, "--schemas", os.path.join(SCHEMAS, "events")], input="\n".join(values) + "\n")
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


MOCK_KAFKA = os.environ.get("SDOH_MOCK_KAFKA_BIN", os.path.join(os.path.dirname(BINARY), "mock-kafka"))


def gateway_topics(schemas=None, config="/dev/null"):
    """Every topic a gateway with `config` and the routing under `schemas` needs (the core topics
    and each agency's own), as the gateway's own provisioning tool prints them."""
    args = [BINARY, "--kafka-provision", config, "--topics-only"]
    if schemas is not None or config == "/dev/null":
        args += ["--schemas-dir", schemas or SCHEMAS]
    out = run(args)
    assert out.returncode == 0, out.stderr
    topics = []
    for line in out.stdout.splitlines():
        words = line.split()
        if words and "kafka-topics.sh" in words[0] and "--topic" in words:
            topics.append(words[words.index("--topic") + 1])
    assert topics, out.stdout
    return topics


class MockKafka:
    """librdkafka's mock Kafka cluster in its own process (tools/mock_kafka.cpp): survives the
    gateway's kill -9 and takes brokers down and up on command. It has every topic a gateway on
    the shipped schemas needs (gateway_topics()), unless `topics` lists others."""

    def __init__(self, brokers=3, partitions=3, topics=None):
        topics = gateway_topics() if topics is None else topics
        self.proc = subprocess.Popen([MOCK_KAFKA, "--brokers", str(brokers), "--partitions", str(partitions),
                                      "--topics", ",".join(topics)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "bootstrap", "mock-kafka did not start: %r" % line
        self.bootstrap = line[1]

    def command(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "ok", "mock-kafka %r: %s" % (text, answer)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def consume_all(bootstrap, topic, timeout=30):
    """Every message on `topic` as (ce_id header, value), read to the end of each partition."""
    out = run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%h\t%s\n"], timeout=timeout)
    assert out.returncode == 0, out.stderr
    pairs = []
    for line in out.stdout.splitlines():
        if not line:
            continue
        headers, _, value = line.partition("\t")
        ce_id = dict(h.split("=", 1) for h in headers.split(",") if "=" in h).get("ce_id")
        pairs.append((ce_id, value))
    return pairs
