"""Runs a command with a throwaway PostgreSQL cluster: SDOH_BENCH_PG_URL names a fresh database on
it (tests/integration/pg_cluster.py: initdb in a temp dir, fsync on, 127.0.0.1 only). The cluster
is stopped and removed afterwards.

    /usr/bin/python3 tools/benchmarks/with_pg.py build/bench/bench-store --benchmark_filter=...
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "integration"))
from pg_cluster import PgCluster  # noqa: E402

with PgCluster() as pg:
    env = dict(os.environ, SDOH_BENCH_PG_URL=pg.create_database("bench"))
    sys.exit(subprocess.call(sys.argv[1:], env=env))
