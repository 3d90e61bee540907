"""tools/bench relay: the relay's drain after a Kafka outage, with ingest going on.

Starts librdkafka's mock Kafka cluster in its own process (build/mock-kafka, which takes its
brokers down and up on stdin) and the real gateway pointed at it (the configuration of
tools/bench's start_gateway otherwise: durable store, dev mode, no rate limit). Then:
  1. MLLP ingest at a steady --rate (build/bench/bench-mllp --rate, every connection paced
     together) for the whole run;
  2. after --before seconds, every broker goes down for --outage seconds: the gateway goes on
     answering AA (the events wait in the outbox, durable);
  3. the brokers come back, and the backlog drains while the ingest goes on.
/metrics is sampled every --interval seconds: sdoh_outbox_undelivered_events (the backlog) and
sdoh_relay_events_total{outcome="delivered"}. Printed: the backlog when the brokers come back,
the time to drain it to about zero (--drained-below), and the drain rate: events delivered per second during the
drain (ingest included) and the backlog's fall per second (net of ingest).

Exit status 0 when every ACK was AA and the backlog drained within --drain-timeout.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
# The integration tests' mock Kafka process (build/mock-kafka, brokers taken down and up on
# command, with every topic the gateway provisions).
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import MockKafka  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(prog="tools/bench relay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outage", type=float, default=60, help="seconds every broker is down")
    p.add_argument("--rate", type=float, default=5000, help="MLLP messages/s, all the run long")
    p.add_argument("--connections", type=int, default=8, help="MLLP connections sharing the rate")
    p.add_argument("--before", type=float, default=5, help="seconds of ingest before the outage")
    p.add_argument("--drain-timeout", type=float, default=180,
                   help="longest wait for the backlog to drain after the brokers come back")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between /metrics samples")
    p.add_argument("--partitions", type=int, default=3, help="partitions per topic")
    p.add_argument("--drained-below", type=int, default=None,
                   help="the backlog counts as drained at or below this many events (default: 0.1 s "
                        "of ingest, --rate / 10: with ingest going on, the events of the last few "
                        "milliseconds are always on their way)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, store)")
    p.add_argument("--trace", action="store_true", help="print every sample")
    return p.parse_args()


def disk_probe(directory):
    """fdatasync latency of 4 KiB appends: what every durable commit waits for."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(300):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    samples.sort()
    p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    print("disk: fdatasync of 4 KiB p50 %.0f us, p99 %.0f us -> durable limit ~%.0f/s at 1, ~%.0f/s at 8 in flight"
          % (p50 * 1e6, p99 * 1e6, 1 / p50, 8 / p50), flush=True)


def start_gateway(tmp, bootstrap):
    """The gateway as tools/bench's start_gateway runs it, its Kafka at `bootstrap`."""
    config = os.path.join(tmp, "gateway.yaml")
    with open(config, "w") as f:
        f.write("""mode: dev
gateway_id: sdoh-gateway-bench
data_dir: "{tmp}/var"
schemas_dir: "{root}/schemas"
log: {{ level: info }}
http: {{ listen: "127.0.0.1:0" }}
mllp: {{ listen: "127.0.0.1:0", max_connections: 1024, max_connections_per_peer: 1024 }}
kafka: {{ brokers: "{bootstrap}" }}
store: {{ path: "{tmp}/var/gateway.db", synchronous: full }}
rate_limits: {{ per_second: 0 }}
""".format(tmp=tmp, root=ROOT, bootstrap=bootstrap))
    log = open(os.path.join(tmp, "gateway.log"), "w")
    proc = subprocess.Popen([os.path.join(BUILD, "sdoh-gateway"), "--config", config],
                            stdout=log, stderr=subprocess.STDOUT)
    runtime = os.path.join(tmp, "var", "runtime.json")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("tools/bench relay: the gateway exited:\n" + open(log.name).read()[-4000:])
        try:
            with open(runtime) as f:
                info = json.load(f)
            url = info["http"]["url"]
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc, url, info["mllp"]["address"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit("tools/bench relay: the gateway was not ready within 30 s:\n" + open(log.name).read()[-4000:])


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_thread(pid):
    """(CPU seconds, context switches) so far of the threads of `pid`, summed by thread name
    (rdk:broker1 -> rdk:*)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        name = re.sub(r"\d+$", "*", name.split(":")[0] + ":*" if name.startswith("rdk:") else name)
        switches = 0
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except OSError:
            pass
        cpu, cs = out.get(name, (0.0, 0))
        out[name] = (cpu + (int(fields[11]) + int(fields[12])) / TICKS, cs + switches)
    return out


def cpu_report(label, seconds, before, after, top=8):
    used = {k: (v[0] - before.get(k, (0.0, 0))[0], v[1] - before.get(k, (0.0, 0))[1]) for k, v in after.items()}
    total = sum(v[0] for v in used.values())
    parts = ", ".join("%s %.2f, %.0f cs/s" % (k, v[0] / seconds, v[1] / seconds)
                      for k, v in sorted(used.items(), key=lambda kv: -kv[1][0])[:top] if v[0] > 0)
    print("  %s: %.2f CPUs (%s)" % (label, total / seconds, parts))


SAMPLE = re.compile(r'^(sdoh_outbox_undelivered_events|sdoh_relay_events_total\{outcome="delivered"\}|'
                    r'sdoh_store_commits_total\{outcome="committed"\}) (\S+)$', re.M)


def sample(url):
    """(monotonic time, backlog, delivered so far, commits so far)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {m.group(1): float(m.group(2)) for m in SAMPLE.finditer(text)}
    if "sdoh_outbox_undelivered_events" not in values:
        sys.exit("tools/bench relay: the gateway's /metrics has no sdoh_outbox_undelivered_events")
    return (time.monotonic(), int(values["sdoh_outbox_undelivered_events"]),
            int(values.get('sdoh_relay_events_total{outcome="delivered"}', 0)),
            int(values.get('sdoh_store_commits_total{outcome="committed"}', 0)))


def main():
    args = parse_args()
    if args.drained_below is None:
        args.drained_below = int(args.rate / 10)
    tmp = tempfile.mkdtemp(prefix="sdoh-bench-relay.")
    os.makedirs(os.path.join(tmp, "var"))
    kafka = gateway = load = None
    status = 1
    try:
        kafka = MockKafka(partitions=args.partitions)
        gateway, url, mllp = start_gateway(tmp, kafka.bootstrap)
        print("gateway pid %d, MLLP %s, mock Kafka %s (%d partitions per topic), store %s"
              % (gateway.pid, mllp, kafka.bootstrap, args.partitions, tmp), flush=True)
        disk_probe(os.path.join(tmp, "var"))
        host, port = mllp.rsplit(":", 1)
        longest = args.before + args.outage + args.drain_timeout + 5
        load = subprocess.Popen([os.path.join(BUILD, "bench", "bench-mllp"), "--host", host, "--port", port,
                                 "--connections", str(args.connections), "--rate", str(args.rate),
                                 "--warmup", "0", "--seconds", str(longest)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = []

        def tick(phase):
            s = sample(url)
            samples.append((phase,) + s)
            if args.trace:
                print("  %-7s t=%6.1f backlog=%7d delivered=%8d committed=%8d" % ((phase, s[0] - t0) + s[1:]),
                      flush=True)
            return s

        def run_for(phase, seconds, until=None):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if load.poll() is not None:
                    raise RuntimeError("bench-mllp stopped early:\n" + load.stdout.read() + load.stderr.read())
                s = tick(phase)
                if until is not None and until(s):
                    return s
                time.sleep(max(0.0, args.interval - (time.monotonic() - s[0])))
            return None

        t0 = time.monotonic()
        run_for("before", args.before)
        kafka.command("down")
        down = tick("down")
        cpu_down = (cpu_by_thread(gateway.pid), cpu_by_thread(kafka.proc.pid))
        print("brokers down at t=%.1f s (backlog %d)" % (down[0] - t0, down[1]), flush=True)
        run_for("outage", args.outage)
        end_outage = tick("outage")
        kafka.command("up")
        up = tick("up")
        cpu_up = (cpu_by_thread(gateway.pid), cpu_by_thread(kafka.proc.pid))
        print("brokers up at t=%.1f s after %.1f s down: backlog %d events" % (up[0] - t0, up[0] - down[0], up[1]),
              flush=True)
        drained = run_for("drain", args.drain_timeout, until=lambda s: s[1] <= args.drained_below)
        cpu_end = (cpu_by_thread(gateway.pid), cpu_by_thread(kafka.proc.pid))
        end_t = time.monotonic()
        load.send_signal(signal.SIGINT)
        out, err = load.communicate(timeout=60)
        ingest_rows = out.strip().splitlines()
        print("ingest over the whole run (bench-mllp --rate %g --connections %d):" % (args.rate, args.connections))
        for line in ingest_rows[-3:]:
            print("  " + line)
        if err.strip():
            print("  " + err.strip().replace("\n", "\n  "))
        outage_ingest = (end_outage[3] - down[3]) / max(1e-9, end_outage[0] - down[0])
        print("during the outage: %.0f commits/s" % outage_ingest)
        if drained is None:
            last = samples[-1]
            print("NOT DRAINED: backlog %d after %.1f s (delivered %.0f/s, backlog fell %.0f/s)"
                  % (last[2], last[1] - up[0], (last[3] - up[2]) / (last[1] - up[0]),
                     (up[1] - last[2]) / (last[1] - up[0])))
            return 1
        seconds = drained[0] - up[0]
        delivered = drained[2] - up[2]
        committed = drained[3] - up[3]
        # Over the whole drain, from "brokers up" (reconnecting included) to "drained".
        print("drained to %d in %.1f s: %d events delivered = %.0f events/s (ingest included); "
              "backlog fell %.0f events/s (net of ingest, %.0f commits/s meanwhile)"
              % (drained[1], seconds, delivered, delivered / seconds, (up[1] - drained[1]) / seconds,
                 committed / seconds))
        during = [s for s in samples if s[0] == "drain"]
        peak = 0.0
        for a, b in zip(during, during[1:]):
            if b[1] > a[1]:
                peak = max(peak, (b[3] - a[3]) / (b[1] - a[1]))
        print("peak delivered rate over one %.1f s sample: %.0f events/s" % (args.interval, peak))
        print("CPU (in CPUs) and context switches per second by thread (/proc/PID/task/*/stat, status):")
        cpu_report("gateway during the outage", up[0] - down[0], cpu_down[0], cpu_up[0])
        cpu_report("gateway during the drain", end_t - up[0], cpu_up[0], cpu_end[0])
        cpu_report("mock-kafka during the drain", end_t - up[0], cpu_up[1], cpu_end[1], top=2)
        acked_ok = load.returncode == 0
        print("every ACK AA: %s" % ("yes" if acked_ok else "NO (see bench-mllp's line above)"))
        status = 0 if acked_ok else 1
        return status
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        if gateway is not None and gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
        if kafka is not None:
            kafka.close()
        if args.keep or status != 0:
            print("tools/bench relay: kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
