"""Phases 1-3 and the main DAG, run with dag.test() against the real node (one keyspace here).

Needs a migrated Airflow metadata DB (`bin/airflow db migrate`) and the settings of bin/airflow-env.
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import REPO, load_trades, mark_done
from testkit import generator
from testkit.statements import delete_user_trade
from testkit.traffic import live_traffic

from trade_migration.backfill import copier
from trade_migration.core.config import Config
from trade_migration.core.convert import Reject, convert
from trade_migration.core.errors import PhaseOrderError
from trade_migration.core.model import SETTLED_COLUMNS, SettledTrade, UserTrade
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.create_table import schema
from trade_migration.read_path import shadow
from trade_migration.read_path.paths import ReadPaths, sample_pairs
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, READ_PATH, ROLLED_BACK, Flags
from trade_migration.state.ledger import Ledger
from trade_migration.statements.flags import flag_select
from trade_migration.statements.system import drop_table

MY_DAGS = ("user_trades_create_table", "user_trades_dual_write", "user_trades_read_path", "user_trades_migration")


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def task_states(dr) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}


def audit(db, cfg, action: str) -> list:
    return [r for r in phases.State(db, cfg).audit_log() if r.action == action]


def drifted(session, keyspace: str) -> Config:
    """A keyspace with the contract's schema except user_trades, clustered settled_at ASC."""
    config = Config(keyspace=keyspace)
    ddl = schema.statements_from_files(config)
    session.execute(ddl[0])
    session.execute(drop_table(keyspace, "user_trades"))
    for stmt in ddl[1:]:
        session.execute(stmt.replace("settled_at DESC", "settled_at ASC"))
    session.execute(f"TRUNCATE {keyspace}.migration_phases")
    return config


def who(reason: str, **conf) -> dict:
    return {"actor": "alice", "reason": reason, **conf}


# --- structure ------------------------------------------------------------------------------------
def test_the_dag_files_import_cleanly(bag):
    errors = {path: err for path, err in bag.import_errors.items() if Path(path).stem in MY_DAGS}
    assert errors == {}
    for dag_id in MY_DAGS:
        assert bag.get_dag(dag_id) is not None, dag_id


def test_the_main_dag_triggers_the_phases_in_order_and_waits(bag):
    dag = bag.get_dag("user_trades_migration")
    order, task = [], dag.get_task("create_table")
    while task is not None:
        order.append((task.task_id, task.trigger_dag_id, task.wait_for_completion))
        task = next(iter(task.downstream_list), None)
    assert order == [("create_table", "user_trades_create_table", True),
                     ("dual_write", "user_trades_dual_write", True),
                     ("backfill", "user_trades_backfill", True),
                     ("verify", "user_trades_verify", True)]
    assert dag.get_task("phase_confs").downstream_task_ids == {"create_table", "dual_write", "backfill", "verify"}
    params = {"actor": None, "reason": "r", "splits": 64, "parallelism": 6, "rows_per_second": 500}
    confs = dag.get_task("phase_confs").python_callable(params=params, dag_run=None)
    who = {"actor": "airflow", "reason": "r"}
    assert confs == {"user_trades_create_table": who, "user_trades_dual_write": {**who, "value": "on"},
                     "user_trades_backfill": {**who, "splits": 64, "parallelism": 6, "rows_per_second": 500},
                     "user_trades_verify": who}
    for task_id in ("create_table", "dual_write", "backfill", "verify"):
        assert dag.get_task(task_id).conf.key == "user_trades_" + task_id   # its own entry of phase_confs


@pytest.mark.parametrize("dag_id, conf, field", [
    ("user_trades_dual_write", {"value": "maybe", "actor": "a", "reason": "r"}, "value"),
    ("user_trades_dual_write", {"value": "on", "actor": "a"}, "reason"),
    ("user_trades_read_path", {"value": "user_trades", "actor": "a", "reason": ""}, "reason"),
    ("user_trades_read_path", {"value": "users", "actor": "a", "reason": "r"}, "value"),
])
def test_bad_params_are_refused_before_anything_runs(bag, airflow_conn, db, dag_id, conf, field):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=field):
        bag.get_dag(dag_id).test(run_conf=conf)
    assert list(db.execute(flag_select(airflow_conn.keyspace, every=True))) == []


# --- phase 1 --------------------------------------------------------------------------------------
def test_create_table_applies_verifies_and_records(bag, airflow_conn, db):
    dr = bag.get_dag("user_trades_create_table").test(run_conf=who("phase 1"))
    assert str(dr.state) == "success"
    phase = phases.State(db, airflow_conn).phase(phases.CREATE_TABLE)
    assert (phase.status, phase.actor, phase.run_id) == (phases.COMPLETED, "alice", dr.run_id)
    assert phase.details["clustering"] == "['settled_at DESC', 'trade_id DESC', 'side ASC']"
    assert [(r.actor, r.reason) for r in audit(db, airflow_conn, phases.COMPLETED)] == [("alice", "phase 1")]


def test_create_table_fails_on_drift_with_the_diff(bag, airflow_conn, cluster_session, monkeypatch):
    bad = drifted(cluster_session, airflow_conn.keyspace + "_drift")
    monkeypatch.setenv("AIRFLOW_CONN_SCYLLA_DEFAULT", json.dumps(
        {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": bad.keyspace}))
    dr = bag.get_dag("user_trades_create_table").test(run_conf=who("phase 1 on a drifted table"))
    assert str(dr.state) == "failed"
    assert task_states(dr) == {"apply_schema": "success", "verify_table": "failed", "record_phase": "upstream_failed"}
    phase = phases.State(cluster_session, bad).phase(phases.CREATE_TABLE)
    assert phase.status == phases.FAILED
    assert phase.details["drift"] == (
        f"{bad.keyspace}.user_trades differs from the contract:\n"
        "  - clustering: expected (('settled_at', 'DESC'), ('trade_id', 'DESC'), ('side', 'ASC')),"
        " found (('settled_at', 'ASC'), ('trade_id', 'DESC'), ('side', 'ASC'))")


# --- the order guard ------------------------------------------------------------------------------
@pytest.mark.parametrize("dag_id, conf, task_id, message", [
    ("user_trades_dual_write", {"value": "on"}, "set_flag",
     "phase 'dual_write' cannot start: create_table not completed yet (run user_trades_create_table first)"),
    ("user_trades_read_path", {"value": "shadow"}, "route",
     "phase 'read_path' cannot start: create_table not completed yet (run user_trades_create_table first)"),
    ("user_trades_backfill", {}, "plan_ranges",
     "phase 'backfill' cannot start: create_table, dual_write not completed yet (run user_trades_create_table first)"),
])
def test_a_phase_refuses_to_start_before_the_one_it_needs(bag, airflow_conn, db, capfd, dag_id, conf, task_id, message):
    dr = bag.get_dag(dag_id).test(run_conf=who("out of order", **conf))
    assert str(dr.state) == "failed"
    assert task_states(dr)[task_id] == "failed"
    out = capfd.readouterr()
    assert f"PhaseOrderError: {message}" in out.out + out.err
    assert list(db.execute(flag_select(airflow_conn.keyspace, every=True))) == []   # nothing changed


# --- phase 2 --------------------------------------------------------------------------------------
def test_dual_write_on_waits_for_dual_writes_then_records_the_start(bag, airflow_conn, db):
    cfg = airflow_conn
    mark_done(db, cfg, phases.CREATE_TABLE)
    generator.write_symbols(db, cfg.keyspace)
    writer = live_traffic(db, cfg, flag_refresh_s=0.5, trades_per_second=40)
    with writer.running():
        dr = bag.get_dag("user_trades_dual_write").test(
            run_conf=who("start dual writes", value="on", refresh_bound_s=1, min_trades=5))
    assert str(dr.state) == "success"
    assert task_states(dr) == {"set_flag": "success", "turning_on": "success",
                               "wait_for_dual_writes": "success", "record_start": "success"}
    flag = Flags(db, cfg).get(DUAL_WRITE)
    assert (flag.value, flag.version, flag.changed_by, flag.reason) == ("on", 1, "alice", "start dual writes")
    phase = phases.State(db, cfg).phase(phases.DUAL_WRITE)
    started = flag.changed_at + timedelta(seconds=1)
    assert phase.status == phases.COMPLETED
    assert phase.details["dual_write_started_at"] == started.isoformat()
    assert int(phase.details["confirmed_trades"]) >= 5
    assert writer.stats.user_trade_rows > 0 and writer.stats.user_trades_failed == 0

    # the recorded start is a true bound: every trade settled after it is in user_trades
    symbols = {s[0]: s[1] for s in generator.symbols()}
    present = {UserTrade(**r._asdict()).key for r in db.execute(f"SELECT * FROM {cfg.keyspace}.user_trades")}
    after = [SettledTrade._make(t) for t in db.execute(f"SELECT {', '.join(SETTLED_COLUMNS)}"
                                          f" FROM {cfg.keyspace}.settled_trades")
             if t.settled_at is not None and t.settled_at >= started.replace(tzinfo=None)]
    rows = [convert(t, symbols) for t in after]
    expected = {r.key for out in rows if not isinstance(out, Reject) for r in out}
    assert len(expected) >= 10 and expected <= present

    # rollback through the same DAG: the flag goes off, nothing to wait for, the phase is undone
    dr = bag.get_dag("user_trades_dual_write").test(run_conf=who("roll back", value="off"))
    assert str(dr.state) == "success"
    assert task_states(dr) == {"set_flag": "success", "turning_on": "success",
                               "wait_for_dual_writes": "skipped", "record_start": "skipped"}
    flag = Flags(db, cfg).get(DUAL_WRITE)
    assert (flag.value, flag.version, flag.reason) == ("off", 2, "roll back")
    assert phases.State(db, cfg).phase(phases.DUAL_WRITE).status == ROLLED_BACK
    assert [r.action for r in phases.State(db, cfg).audit_log() if r.action.startswith("flag")] == [
        "flag dual_write on -> off", "flag dual_write off -> on"]
    with pytest.raises(PhaseOrderError, match="dual_write not completed"):
        phases.State(db, cfg).require(phases.BACKFILL)


# --- phase 3 --------------------------------------------------------------------------------------
def test_read_path_shadow_then_blocked_then_override_then_rollback(bag, airflow_conn, db, capfd):
    cfg = airflow_conn
    mark_done(db, cfg, phases.CREATE_TABLE)
    load_trades(db, cfg, 2000, 3)
    Ledger(db, cfg, "t").plan([TokenRange(MIN_TOKEN, MAX_TOKEN)])
    copier.run_batch(db, cfg, "t", [TokenRange(MIN_TOKEN, MAX_TOKEN)])
    dag = bag.get_dag("user_trades_read_path")
    conf = dict(sample_users=30, page_size=20, seed=7)

    dr = dag.test(run_conf=who("shadow reads", value="shadow", **conf))
    assert str(dr.state) == "success"
    assert task_states(dr) == {"route": "success", "shadow_compare": "success", "latency_benchmark": "success",
                               "switch_read_path": "success"}
    assert Flags(db, cfg).get(READ_PATH).value == "shadow"
    assert phases.State(db, cfg).phase(phases.READ_PATH).status == phases.RUNNING
    compare = json.loads(audit(db, cfg, "shadow_compare")[0].details)
    assert (compare["pairs"], compare["clean"], compare["differences"], compare["seed"]) == (30, True, 0, 7)
    bench = json.loads(audit(db, cfg, "latency_benchmark")[0].details)
    assert bench["pairs"] == 30 and bench["old"]["cold"]["samples"] == 30 and bench["new"]["warm"]["samples"] == 30
    printed = capfd.readouterr().out
    assert "shadow compare: 30 users x symbol" in printed and "old (indexes+filter)" in printed

    # plant a difference in a sampled user's page: the switch to user_trades is refused
    paths = ReadPaths(db, cfg)
    user, symbol = sample_pairs(db, cfg, 30, seed=7, symbols=paths.symbol_ids)[0]
    gone = paths.new(user, symbol, limit=20)[0]
    db.execute(db.prepare(delete_user_trade(cfg.keyspace)), gone[:5])
    dr = dag.test(run_conf=who("switch reads", value="user_trades", **conf))
    assert str(dr.state) == "failed"
    assert task_states(dr)["switch_read_path"] == "failed"
    out = capfd.readouterr()
    assert "ReadPathBlocked: switching read_path to user_trades needs a clean shadow comparison;" \
           " found 1 differences over 30 users x symbol" in out.out + out.err
    compare = json.loads(audit(db, cfg, "shadow_compare")[0].details)
    assert compare["first"] == [f"user {user} {symbol} trade {gone[3]} {gone[4]} settled {gone[2].isoformat()}:"
                                f" {shadow.MISSING}"]
    assert Flags(db, cfg).get(READ_PATH).value == "shadow"

    # an override with a reason lets it through, and is audited
    dr = dag.test(run_conf=who("switch reads", value="user_trades", override_reason="row repaired by verify", **conf))
    assert str(dr.state) == "success"
    flag = Flags(db, cfg).get(READ_PATH)
    assert (flag.value, flag.version) == ("user_trades", 2)
    assert phases.State(db, cfg).phase(phases.READ_PATH).status == phases.COMPLETED
    assert [(r.actor, r.reason) for r in audit(db, cfg, "shadow_override")] == [("alice", "row repaired by verify")]

    # rollback: straight to the switch, no comparison
    dr = dag.test(run_conf=who("roll back reads", value="settled_trades", **conf))
    assert str(dr.state) == "success"
    assert task_states(dr) == {"route": "success", "shadow_compare": "skipped", "latency_benchmark": "skipped",
                               "switch_read_path": "success"}
    assert Flags(db, cfg).get(READ_PATH).value == "settled_trades"
    assert phases.State(db, cfg).phase(phases.READ_PATH).status == ROLLED_BACK
