"""The production shape, run for real: `user_trades_migration` on Celery (two workers), PostgreSQL,
Redis and a three-node ring (scripts/cluster/cluster.py: docker-compose.yml's topology, natively),
triggered through the REST API while a reference writer settles live trades, with five faults
injected one after another while it runs; then the read switch, the writers' new_only and the
cleanup, approved through the REST API. Exact at the end: user_trades is the conversion of
settled_trades (every row, value and write time) before the drop, and the same rows after it.

The cluster is this module's own (.local/test-cluster, nodes 127.0.0.9-11, ports of its own, the
cassandra_backfill pool at 2 slots) with a 20 s task heartbeat timeout, so a lost worker's task is
retried within a test's patience (production keeps Airflow's 300 s: airflow.env). The faults, each
timed from injection to recovery and printed as a table:
  1. the Celery worker running a copy task SIGKILLed (with its task processes) mid-range: the task
     is failed after the heartbeat timeout and retried on the other worker, from the checkpoint
  2. the scheduler SIGKILLed mid-backfill and started again
  3. PostgreSQL (Airflow's metadata database) restarted mid-run (a component that exits on it is
     started again by its supervisor, as compose's restart policy would)
  4. Redis (the Celery broker) restarted mid-run
  5. one Cassandra node stopped while the DAGs run, started again after the migration
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from airflow_server import REPO, AirflowServer
from testkit import cluster_script, generator
from testkit.expectation import actual, assert_exact
from testkit.traffic import live_traffic

from trade_migration.cleanup import drop
from trade_migration.core.config import LEGACY_TABLE, Config
from trade_migration.core.session import connect
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN
from trade_migration.state.flags import DUAL_WRITE, READ_PATH, RETIRED, Flags
from trade_migration.state.ledger import DONE, RUNNING, Ledger
from trade_migration.statements.settled_trades import scan_settled

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

POOL_SLOTS = 2
SETTINGS = {"CLUSTER_FIRST_NODE": "9", "CLUSTER_POOL_SLOTS": str(POOL_SLOTS), "CLUSTER_PG_PORT": "55532",
            "CLUSTER_REDIS_PORT": "56479", "CLUSTER_API_PORT": "58180", "CLUSTER_HEALTH_PORT": "58984",
            "CLUSTER_TRIGGER_LOG_PORT": "58804"}
# A drill's settings over airflow.env: a lost worker's task is failed after 20 s without a heartbeat
# (looked for every 5 s), and the cleanup's approval watch looks every 10 s.
OVERRIDES = {"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
             "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
             "TM_APPROVAL_WATCH_EVERY_S": "10"}
TRADES, SEED = 40_000, 1515
# 8 ranges of ~5,000 trades (5 pages each, a checkpoint after every page) in 4 mapped tasks, two at
# a time (the pool), at 200 rows/s for the run: 50 per task, so the backfill lasts ~7 minutes and
# every fault lands while it runs.
MIGRATION = {"splits": 8, "parallelism": 4, "rows_per_second": 200, "actor": "cluster-test",
             "reason": "the production-shape test: one trigger, five faults"}
PHASES = ("user_trades_create_table", "user_trades_dual_write", "user_trades_backfill", "user_trades_verify")
BACKFILL, COPY = "user_trades_backfill", "copy_ranges"
WHY = {"actor": "cluster-test", "reason": "the production-shape test"}


@dataclass
class Fault:
    name: str
    at: float           # seconds after the migration's trigger
    recovered: float    # seconds from injection to recovery
    recovery: str       # what "recovered" means for this fault


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """This module's cluster, from an empty base folder; stopped (data kept for a look) at the end."""
    overrides = tmp_path_factory.mktemp("cluster") / "overrides.env"
    overrides.write_text("".join(f"{k}={v}\n" for k, v in OVERRIDES.items()))
    cs = cluster_script.load(CLUSTER_BASE=str(REPO / ".local" / "test-cluster"), CLUSTER_OVERRIDES=str(overrides),
                             **SETTINGS)
    cs.down()
    shutil.rmtree(cs.BASE, ignore_errors=True)
    try:
        cs.up()
        yield cs
    finally:
        cs.down()


@pytest.fixture(scope="module")
def ring(cluster):
    config = Config(keyspace="trading", contact_points=cluster.NODES,
                    replication={"class": "SimpleStrategy", "replication_factor": 3})
    session = connect(config)
    yield session, config
    session.cluster.shutdown()


def test_one_trigger_migration_on_celery_through_five_faults_then_cleanup(cluster, ring, capsys):
    session, cfg = ring
    cs = cluster
    generator.write_symbols(session, cfg.keyspace)
    generator.write_trades(session, cfg.keyspace, TRADES, SEED)
    passwords = cs.BASE / "airflow" / "simple_auth_manager_passwords.json.generated"
    af = AirflowServer.attach(cs.BASE, cs.API_PORT, passwords)
    for dag_id in ("user_trades_migration", *PHASES):
        af.wait_for_dag(dag_id)
        af.unpause(dag_id)

    traffic = live_traffic(session, cfg, flag_refresh_s=1, trades_per_second=20, seed=SEED)
    traffic.start()
    try:
        began = time.monotonic()
        run = af.trigger("user_trades_migration", conf=MIGRATION, run_id="cluster_migration")
        backfill_run = af.wait(lambda: next((r["dag_run_id"] for r in af.dag_runs(BACKFILL)), None), 600,
                               "the migration to trigger the backfill")
        partial: list[int] = []
        faults = [kill_worker_mid_range(cs, af, session, cfg, backfill_run, began, partial),
                  kill_scheduler(cs, af, backfill_run, began),
                  restart_postgres(cs, began),
                  restart_redis(cs, began),
                  stop_node(cs, session, cfg, began)]
        assert af.wait_for_run("user_trades_migration", run, timeout=1500) == "success"
        migrated = time.monotonic() - began
        assert af.task_states("user_trades_migration", run) == {
            "phase_confs": "success", "create_table": "success", "dual_write": "success", "backfill": "success",
            "verify": "success"}
    finally:
        stats = traffic.stop()
    cs.cassandra("start-node", str(cs.FIRST_NODE + 1))
    assert stats.settled > 0

    # the backfill: every range done; copy tasks on both workers, never more at once than the pool
    tries = copy_tries(af, backfill_run)
    assert {t["hostname"].split("@")[0] for t in tries} == set(cs.WORKERS)
    assert max_overlap(tries) <= POOL_SLOTS
    assert {t["state"] for t in latest(tries)} == {"success"}
    ledger = ranges(session, cfg)
    assert {rs.status for rs in ledger.values()} == {DONE}
    # the killed task's ranges part-way at the SIGKILL resumed from their checkpoints: each took a
    # second attempt and none read more rows than it holds (started again, it would read its first
    # rows twice)
    assert partial and all(ledger[start].attempts > 1 for start in partial)
    for start in partial:
        assert 0 < ledger[start].rows_read <= len(source_rows(session, cfg, start, ledger[start].range_end))

    # every verification (the migration's and the one the backfill's Asset scheduled) finished clean
    af.wait(lambda: all(r["state"] in ("success", "failed") for r in af.dag_runs("user_trades_verify")), 900,
            "every verify run to finish")
    assert {r["state"] for r in af.dag_runs("user_trades_verify")} == {"success"}
    rows, rejects = assert_exact(session, cfg.keyspace)
    settled = len(source_rows(session, cfg))

    # the read switch (shadow, then user_trades), the writers to new_only, the cleanup approved
    for dag_id, conf in (("user_trades_read_path", {"value": "shadow", "sample_users": 20}),
                         ("user_trades_read_path", {"value": "user_trades", "sample_users": 20}),
                         ("user_trades_dual_write", {"value": "new_only"})):
        af.unpause(dag_id)
        assert af.wait_for_run(dag_id, af.trigger(dag_id, conf={**conf, **WHY}), timeout=900) == "success"
    assert Flags(session, cfg).get(READ_PATH).value == "user_trades"
    af.unpause("user_trades_cleanup")
    cleanup = af.trigger("user_trades_cleanup", run_id="cluster_cleanup", conf={
        "min_days": 0, "override_reason": "a test: no 30 days of reads", "parity_runs": 1,
        "acknowledge_rejects": "the generator's rejects, kept in the archive", **WHY})
    af.wait_for_approval_request("user_trades_cleanup", cleanup, "approve", timeout=900)
    af.answer("user_trades_cleanup", cleanup, "approve", ["Approve"])
    assert af.wait_for_run("user_trades_cleanup", cleanup, timeout=900) == "success"

    manifest = json.loads((cs.BASE / "reports" / "archive" / cleanup / "manifest.json").read_text())
    assert (manifest["rows"], manifest["counted"]) == (settled, settled)
    assert not drop.table_exists(session, cfg.keyspace, LEGACY_TABLE)
    assert Flags(session, cfg).get(DUAL_WRITE).value == RETIRED
    assert actual(session, cfg.keyspace) == (rows, rejects)

    with capsys.disabled():
        print(f"\nproduction shape: {TRADES:,} trades + {stats.settled:,} live, migration {migrated:.0f} s,"
              f" {len(tries)} copy tries over {len(latest(tries))} tasks, at most {max_overlap(tries)} at once")
        print(f"{'fault':58} {'at':>6} {'recovered in':>13}  recovery")
        for f in faults:
            print(f"{f.name:58} {f.at:5.0f}s {f.recovered:12.1f}s  {f.recovery}")


# --- the faults ------------------------------------------------------------------------------------
def kill_worker_mid_range(cs, af, session, cfg, backfill_run, began, resumed_ranges: list[int]) -> Fault:
    """SIGKILL the worker of a running copy task once a range of it is part-way (a checkpoint past its
    start); its next try must run on the other worker. The ranges part-way at the kill go into
    resumed_ranges, for the check that they resumed rather than started again."""
    # each mapped task's ranges: the plan's batches, by map index
    batches = af.wait(lambda: af.api("GET", f"/dags/{BACKFILL}/dagRuns/{backfill_run}/taskInstances/plan_ranges/"
                                            "xcomEntries/return_value", expect=(200, 404)).get("value"),
                      600, "the backfill's plan")
    batches = json.loads(batches) if isinstance(batches, str) else batches
    starts = [{int(start) for start, _ in batch["ranges"]} for batch in batches]

    def victim():
        running = [t for t in copy_tis(af, backfill_run) if t["state"] == "running" and t.get("hostname")]
        partial = {start for start, rs in ranges(session, cfg).items() if rs.status == RUNNING and rs.rows_read > 0}
        return next(((t, sorted(partial & starts[t["map_index"]])) for t in running
                     if partial & starts[t["map_index"]]), None)
    ti, partial = af.wait(victim, 600, "a copy task part-way through a range", interval=0.5)
    worker = ti["hostname"].split("@")[0]
    at = time.monotonic()
    cs.kill(worker)

    def tries():
        return af.api("GET", f"/dags/{BACKFILL}/dagRuns/{backfill_run}/taskInstances/{COPY}/{ti['map_index']}/tries")[
            "task_instances"]

    def failed():
        return any(t["try_number"] == ti["try_number"] and t["state"] not in ("running", None) for t in tries())
    af.wait(failed, 300, f"the killed try of copy task {ti['map_index']} to be failed", interval=0.5)
    detected = time.monotonic() - at

    # the next try waits for a pool slot (other copy tasks took the freed one), then runs on the other
    # worker: the killed one stays down until then
    def retried():
        return next((t for t in tries() if t["try_number"] > ti["try_number"] and t["state"] == "running"), None)
    retry = af.wait(retried, 900, f"copy task {ti['map_index']} to be retried", interval=0.5)
    assert retry["hostname"].split("@")[0] != worker
    rerun = time.monotonic() - at
    cs.start_component(worker)
    af.wait(lambda: cs.workers_online() == sorted(cs.WORKERS), 120, f"{worker} back")
    # (the check comes at the end of the test, once these ranges are done)
    resumed_ranges.extend(partial)
    return Fault(f"SIGKILL {worker} running copy task {ti['map_index']} mid-range", at - began, detected,
                 f"its try failed by heartbeat timeout, slot freed; next try on the other worker at {rerun:.0f} s")


def kill_scheduler(cs, af, backfill_run, began) -> Fault:
    assert af.api("GET", f"/dags/{BACKFILL}/dagRuns/{backfill_run}")["state"] == "running"
    at, killed = time.monotonic(), datetime.now(UTC)
    cs.kill("scheduler")
    cs.start_component("scheduler")
    cs.wait(lambda: beating_since(cs, killed), 300, "the new scheduler's heartbeat", 0.5)
    return Fault("SIGKILL the scheduler mid-backfill, start it again", at - began, time.monotonic() - at,
                 "a heartbeat from the new scheduler at /health")


def restart_postgres(cs, began) -> Fault:
    before, at, stopped = supervised_restarts(cs), time.monotonic(), datetime.now(UTC)
    cs.restart("postgres")
    cs.wait(lambda: beating_since(cs, stopped), 300, "the scheduler's heartbeat after PostgreSQL's restart", 0.5)
    return Fault("restart PostgreSQL (metadata database) mid-run", at - began, time.monotonic() - at,
                 "the scheduler heartbeats into it again" + restarted_since(cs, before))


def supervised_restarts(cs) -> dict[str, int]:
    """How often each component's supervisor started it again (scripts/cluster/supervise.py)."""
    return {path.stem: path.read_text(errors="replace").count("supervise: ")
            for path in sorted((cs.BASE / "logs").glob("*.log"))}


def restarted_since(cs, before: dict[str, int]) -> str:
    again = [name for name, count in supervised_restarts(cs).items() if count > before.get(name, 0)]
    return f"; started again by its supervisor: {', '.join(again)}" if again else ""


def beating_since(cs, since: datetime) -> bool:
    """Every component healthy at /health, with a scheduler heartbeat written after `since` (a dead
    scheduler's last one stays fresh for 30 s)."""
    beat = cs.health().get("scheduler", {}).get("latest_scheduler_heartbeat")
    return cs.healthy() and beat is not None and datetime.fromisoformat(beat) > since


def restart_redis(cs, began) -> Fault:
    before, at = supervised_restarts(cs), time.monotonic()
    cs.restart("redis")
    cs.wait(lambda: cs.workers_online() == sorted(cs.WORKERS), 300, "both workers answering through Redis", 0.5)
    return Fault("restart Redis (Celery broker) mid-run", at - began, time.monotonic() - at,
                 "both workers answer a ping through the broker" + restarted_since(cs, before))


def stop_node(cs, session, cfg, began) -> Fault:
    node = f"node{cs.FIRST_NODE + 1}"
    read = sum(rs.rows_read for rs in ranges(session, cfg).values())
    at = time.monotonic()
    cs.kill(node)
    cs.wait(lambda: sum(rs.rows_read for rs in ranges(session, cfg).values()) > read, 300,
            "a checkpoint with one node down", 0.5)
    return Fault(f"stop Cassandra {node} while the DAGs run (started after)", at - began, time.monotonic() - at,
                 "the next checkpoint written with the node down")


# --- reading the run -------------------------------------------------------------------------------
def copy_tis(af, run_id) -> list[dict]:
    tis = af.api("GET", f"/dags/{BACKFILL}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    return [t for t in tis["task_instances"] if t["task_id"] == COPY]


def copy_tries(af, run_id) -> list[dict]:
    """Every try of every mapped copy task (a retried task has one per try)."""
    out = []
    for ti in copy_tis(af, run_id):
        tries = af.api("GET", f"/dags/{BACKFILL}/dagRuns/{run_id}/taskInstances/{COPY}/{ti['map_index']}/tries")
        out += tries["task_instances"]
    return out


def latest(tries: list[dict]) -> list[dict]:
    newest = {}
    for t in tries:
        if t["try_number"] >= newest.get(t["map_index"], {}).get("try_number", 0):
            newest[t["map_index"]] = t
    return list(newest.values())


def max_overlap(tries: list[dict]) -> int:
    """The most copy tries running at once, from their start and end times (a try still marked running
    without an end counts until now)."""
    events = []
    for t in tries:
        if t["start_date"]:
            events.append((datetime.fromisoformat(t["start_date"]), 1))
            events.append((datetime.fromisoformat(t["end_date"]) if t["end_date"] else datetime.now(UTC), -1))
    most = now = 0
    for _, step in sorted(events):   # an end before a start at the same instant
        now += step
        most = max(most, now)
    return most


def ranges(session, cfg) -> dict[int, object]:
    return {rs.range_start: rs for rs in Ledger(session, cfg, "main").load()}


def source_rows(session, cfg, start: int = MIN_TOKEN, end: int = MAX_TOKEN) -> list:
    stmt = session.prepare(scan_settled(cfg.keyspace))
    return list(session.execute(stmt, (start, end)))
