"""`make demo`: the migration on the local node, with live traffic, from a clean keyspace.

Generates history, starts the reference settlement writer as live traffic, then runs each phase
DAG in order through the project's Airflow CLI (`bin/airflow dags test`), and prints where the
migration stands. Phase DAGs run one by one here because `dags test` runs no scheduler, which
`user_trades_migration` (it triggers the phase DAGs) needs; with a scheduler, trigger that instead.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from testkit.statements import drop_keyspace

from trade_migration.core.config import Config
from trade_migration.core.session import connect
from trade_migration.ui.status import migration_status

REPO = Path(__file__).resolve().parents[1]

TRADES = int(os.environ.get("DEMO_TRADES", "50000"))
WHO = {"actor": "demo", "reason": "make demo on the local node"}
PHASES = [
    ("user_trades_create_table", {}),
    ("user_trades_dual_write", {"value": "on"}),
    ("user_trades_read_path", {"value": "shadow", "sample_users": 30}),
    ("user_trades_backfill", {"parallelism": 2}),
    ("user_trades_verify", {"mode": "full"}),
    ("user_trades_read_path", {"value": "user_trades", "sample_users": 30}),
]


def sh(*args, **kw):
    return subprocess.run([str(REPO / "bin" / "airflow-env"), *args], cwd=REPO, check=True, **kw)


def main() -> None:
    config = Config.from_env()
    if any(not p.startswith("127.") for p in config.contact_points):
        sys.exit("the demo resets its keyspace: it runs only against a local node (TM_CONTACT_POINTS)")
    session = connect(config)
    session.execute(drop_keyspace(config.keyspace), timeout=120)
    print(f"== generating {TRADES:,} settled trades into {config.keyspace}", flush=True)
    sh(sys.executable, "-m", "testkit.generator", "--trades", str(TRADES), "--seed", "7")
    with open(REPO / ".local" / "demo-writer.log", "w") as log:   # the child keeps its own copy
        writer = subprocess.Popen([str(REPO / "bin" / "airflow-env"), sys.executable, "-m",
                                   "testkit.traffic", "--rate", "20", "--flag-refresh", "2"],
                                  cwd=REPO, stdout=log, stderr=log)
    results = []
    try:
        for dag_id, conf in PHASES:
            print(f"== {dag_id} {json.dumps(conf)}", flush=True)
            started = time.monotonic()
            out = subprocess.run([str(REPO / "bin" / "airflow"), "dags", "test", dag_id, "-c",
                                  json.dumps({**conf, **WHO})], cwd=REPO, capture_output=True, text=True)
            ok = out.returncode == 0 and "state=success" in out.stdout + out.stderr
            results.append((dag_id, conf.get("value", ""), ok, time.monotonic() - started))
            print(f"   {'success' if ok else 'FAILED'} in {results[-1][3]:.0f}s", flush=True)
            if not ok:
                print((out.stdout + out.stderr)[-4000:])
                sys.exit(f"{dag_id} failed; logs under .airflow/logs")
    finally:
        writer.terminate()
        writer.wait()
    status = migration_status(session, config)
    print("\n== summary")
    for dag_id, value, ok, took in results:
        print(f"  {dag_id:28} {value:14} {'ok' if ok else 'FAILED'} {took:6.0f}s")
    print("  phases:", {p["phase"]: p["status"] for p in status["phases"]})
    print("  flags: ", {k: v["value"] for k, v in status["flags"].items()})
    bf = status["backfill"]
    print(f"  backfill: {bf['ranges']} ranges {bf['by_status']}, {bf['rows_read']:,} trades read,"
          f" {bf['rows_written']:,} rows written, {bf['rows_rejected']:,} rejected")
    for run in status["parity"][:1]:
        print(f"  last parity run: {run}")
    print("  cleanup gates:", {g["name"]: "pass" if g["passed"] else "fail" for g in status["cleanup"]["gates"]},
          f"(days remaining on the new read path: {status['cleanup']['days_remaining']})")
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
