"""The backfill through the production shape (Airflow's scheduler, Celery, two workers, a three-node
ring) against the one-process command line on the same ring and the same trades.

    bin/airflow-env python bench/cluster_backfill.py --trades 1000000

Starts its own cluster with scripts/cluster/cluster.py (.local/bench-cluster, nodes 127.0.0.12-14,
ports of its own, the cassandra_backfill pool at 4 slots), loads the trades into its `trading`
keyspace once (kept for the next run), then backfills them from an empty user_trades: with the
command line in one process, then with user_trades_backfill triggered through the REST API as 1,
2 and 4 mapped tasks. Prints output rows/s from the trigger to the run's end, the copy tasks'
own window, and each against the command line: the cost of Airflow's scheduling and task
start-up. Then plans a ledger of --ledger-ranges ranges on the ring (bench/ledger_plan.py's figure,
at RF 3 with LOCAL_QUORUM and LOCAL_SERIAL). The cluster is stopped at the end (--keep leaves it up).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from ledger_plan import measure
from testkit import cluster_script, generator

from trade_migration.core import tokens
from trade_migration.core.config import Config
from trade_migration.core.prepared import prepared
from trade_migration.core.session import connect
from trade_migration.state import phases
from trade_migration.state.ledger import Ledger
from trade_migration.statements.settled_trades import count_settled_range

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from airflow_server import AirflowServer  # noqa: E402  (the tests' REST client)

SETTINGS = {"CLUSTER_BASE": str(REPO / ".local" / "bench-cluster"), "CLUSTER_FIRST_NODE": "12",
            "CLUSTER_POOL_SLOTS": "4", "CLUSTER_PG_PORT": "55632", "CLUSTER_REDIS_PORT": "56579",
            "CLUSTER_API_PORT": "58280", "CLUSTER_HEALTH_PORT": "58994", "CLUSTER_TRIGGER_LOG_PORT": "58814"}
SPLITS = 16
BACKFILL = "user_trades_backfill"


def trade_count(session, ks: str) -> int:
    count = prepared(session, count_settled_range(ks))
    return sum(session.execute(count, r).one()[0] for r in tokens.split_ring([tokens.MIN_TOKEN], 32))


def reset_target(session, ks: str) -> None:
    for table in ("user_trades", "backfill_ranges", "rejected_trades"):
        session.execute(f"TRUNCATE {ks}.{table}", timeout=300)


def written(session, config, backfill_id: str) -> int:
    return sum(rs.rows_written for rs in Ledger(session, config, backfill_id).load())


def by_command_line(cs, session, config) -> tuple[int, float]:
    began = time.monotonic()
    subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "trade_migration.backfill_cli", "--backfill-id",
                    "bench_cli", "--splits", str(SPLITS), "--actor", "bench", "--reason", "benchmark"],
                   env=cs.airflow_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return written(session, config, "bench_cli"), time.monotonic() - began


def by_airflow(af, session, config, tasks: int) -> tuple[int, float, float]:
    """(rows, seconds from trigger to the run's end, seconds from the first copy task's start to the
    last one's end)."""
    backfill_id = f"bench_airflow_{tasks}"
    began = time.monotonic()
    run = af.trigger(BACKFILL, conf={"backfill_id": backfill_id, "splits": SPLITS, "parallelism": tasks,
                                     "actor": "bench", "reason": "benchmark"})
    state = af.wait_for_run(BACKFILL, run, timeout=7200)
    took = time.monotonic() - began
    if state != "success":
        raise RuntimeError(f"{BACKFILL} run {run} ended {state}")
    tis = [t for t in af.api("GET", f"/dags/{BACKFILL}/dagRuns/{run}/taskInstances")["task_instances"]
           if t["task_id"] == "copy_ranges"]
    first = min(datetime.fromisoformat(t["start_date"]) for t in tis)
    last = max(datetime.fromisoformat(t["end_date"]) for t in tis)
    return written(session, config, backfill_id), took, (last - first).total_seconds()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trades", type=int, default=1_000_000)
    p.add_argument("--tasks", type=int, nargs="+", default=[1, 2, 4], help="mapped copy tasks per run")
    p.add_argument("--ledger-ranges", type=int, default=8192, help="ranges of the ledger planned on the ring")
    p.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = p.parse_args()
    cs = cluster_script.load(**SETTINGS)
    cs.up()
    config = Config(keyspace="trading", contact_points=cs.NODES,
                    replication={"class": "SimpleStrategy", "replication_factor": len(cs.NODES)})
    session = connect(config)
    try:
        if trade_count(session, config.keyspace) != args.trades:
            print(f"loading {args.trades:,} trades into the ring ...", flush=True)
            session.execute(f"TRUNCATE {config.keyspace}.settled_trades", timeout=300)
            generator.write_symbols(session, config.keyspace)
            generator.write_trades(session, config.keyspace, args.trades, seed=1)
        state = phases.State(session, config)   # the backfill's order guard wants these done
        for name in (phases.CREATE_TABLE, phases.DUAL_WRITE):
            state.mark(name, phases.COMPLETED, run_id="bench", actor="bench", reason="benchmark of the backfill")
        af = AirflowServer.attach(cs.BASE, cs.API_PORT,
                                  cs.BASE / "airflow" / "simple_auth_manager_passwords.json.generated")
        af.wait_for_dag(BACKFILL)
        af.unpause(BACKFILL)

        reset_target(session, config.keyspace)
        rows, took = by_command_line(cs, session, config)
        cli = rows / took
        print(f"command line, 1 process: {rows:,} rows in {took:,.1f} s = {cli:,.0f} output rows/s", flush=True)
        for tasks in args.tasks:
            reset_target(session, config.keyspace)
            rows, took, window = by_airflow(af, session, config, tasks)
            print(f"Airflow on Celery, {tasks} mapped task(s) over 2 workers: {rows:,} rows in {took:,.1f} s ="
                  f" {rows / took:,.0f} output rows/s ({rows / took / cli:.2f}x the command line); copy tasks"
                  f" {window:,.1f} s of it, scheduling and start-up {took - window:,.1f} s", flush=True)
        ring = Config(keyspace="bench_ledger_plan", contact_points=cs.NODES, replication=config.replication)
        print(f"three-node ring: {measure(session, ring, args.ledger_ranges)}", flush=True)
    finally:
        session.cluster.shutdown()
        if not args.keep:
            cs.down()


if __name__ == "__main__":
    main()
