"""user_trades_cleanup run with dag.test() against the real node (this module's keyspace).

dag.test() would wait forever on the approval, so these runs mark it successful by pattern; a
task marked by hand carries no answer, and the archive and drop must refuse it. A real Reject
and Approve, given through the REST API, are in tests/e2e/test_cleanup_approval_api.py.
Needs a migrated Airflow metadata DB (`bin/airflow db migrate`) and the settings of bin/airflow-env.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from cleanup_state import prepare, set_flag, utcnow
from conftest import REPO

from trade_migration.cleanup import drop, gates
from trade_migration.core.config import LEGACY_TABLE
from trade_migration.create_table import schema
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, READ_PATH, Flags
from trade_migration.state.ledger import FAILED, Ledger

DAG_ID = "user_trades_cleanup"
ACK = {"acknowledge_rejects": "eight generated rejects", "actor": "alice", "reason": "cleanup test"}
AFTER_GATES = ("summarize", "approve", "approval_watch", "archive_table", "verify_archive", "drop_table", "record")
TEARDOWN = {"record_unfinished": "success"}   # runs after any outcome; marks the phase failed only if left running


@pytest.fixture
def dag():
    """Parsed afresh per test: dag.test() keeps a run's conf in the DAG's params."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "user_trades_cleanup.py"))
    assert bag.import_errors == {}
    return bag.get_dag(DAG_ID)


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path))
    return tmp_path


def task_states(dr) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}


def legacy_exists(db, cfg) -> bool:
    return drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)


def test_the_dag_asks_daily_and_rejects_by_default(dag):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    assert (dag.schedule if hasattr(dag, "schedule") else None) == "@daily"
    assert dag.catchup is False and dag.max_active_runs == 1
    approve = dag.get_task("approve")
    assert isinstance(approve, ApprovalOperator)
    assert (approve.options, approve.defaults, approve.response_timeout) == (
        ["Approve", "Reject"], ["Reject"], timedelta(hours=24))
    order, task = [], dag.get_task("check_gates")
    while task is not None:
        order.append(task.task_id)
        after = sorted((t for t in task.downstream_list if t.task_id != "approval_watch"), key=lambda t: t.task_id)
        task = after[0] if after else None
    assert order == ["check_gates", "summarize", "approve", "archive_table", "verify_archive", "drop_table",
                     "record", "record_unfinished"]
    assert dag.get_task("record_unfinished").is_teardown
    assert dag.get_task("archive_table").upstream_task_ids == {"summarize", "approve"}
    watch = dag.get_task("approval_watch")    # beside the approval; nothing waits for it
    assert (watch.upstream_task_ids, watch.downstream_task_ids, watch.mode, watch.soft_fail) == (
        {"summarize"}, set(), "reschedule", True)


def _verify_not_done(db, cfg):
    phases.State(db, cfg).mark(phases.VERIFY, phases.RUNNING, run_id="t", actor="pytest")


def _recent_switch(db, cfg):
    set_flag(db, cfg, READ_PATH, "user_trades", at=utcnow() - timedelta(days=20))


def _dual_write_on(db, cfg):
    set_flag(db, cfg, DUAL_WRITE, "on")


def _old_parity(db, cfg):
    db.execute(f"TRUNCATE {cfg.keyspace}.parity_runs")


def _range_failed(db, cfg):
    ledger = Ledger(db, cfg, "main")
    ledger.finish(ledger.load()[0], FAILED, error="timed out")


CASES = {
    "order": (_verify_not_done, {}),
    "read_path": (_recent_switch, {}),
    "writer": (_dual_write_on, {}),
    "parity": (_old_parity, {}),
    "backfill": (_range_failed, {}),
    "rejects": (lambda db, cfg: None, {"acknowledge_rejects": ""}),
}


@pytest.mark.parametrize("gate", list(CASES))
def test_a_gate_not_met_skips_the_run_before_the_approval_and_keeps_the_table(
        dag, airflow_conn, db, reports, capfd, gate):
    """Not met yet is no failure (the daily run would page every day): the run ends skipped, its
    log names the gate and, for the 30 days, when it will pass."""
    cfg = airflow_conn
    prepare(db, cfg)
    breaker, conf = CASES[gate]
    breaker(db, cfg)
    dr = dag.test(run_conf={**ACK, **conf}, mark_success_pattern="approve")
    assert str(dr.state) == "success"
    assert task_states(dr) == {"check_gates": "skipped", **{t: "skipped" for t in AFTER_GATES}, **TEARDOWN}
    out = capfd.readouterr()
    assert f"not yet — cleanup gate(s) failed: {gate}; nothing was dropped" in out.out + out.err
    if gate == "read_path":
        switched = Flags(db, cfg).get(READ_PATH).changed_at
        assert f"(read_path passes on {switched + timedelta(days=30):%Y-%m-%d %H:%M} UTC)" in out.out + out.err
    assert legacy_exists(db, cfg)
    assert Flags(db, cfg).get(DUAL_WRITE).value in ("new_only", "on")
    assert not (reports / "archive").exists()
    assert phases.State(db, cfg).phase(phases.CLEANUP) is None


def test_an_approval_marked_by_hand_is_not_an_approval(dag, airflow_conn, db, reports, capfd):
    cfg = airflow_conn
    prepare(db, cfg)
    dr = dag.test(run_conf=ACK, mark_success_pattern="approve")
    assert str(dr.state) == "failed"
    assert task_states(dr) == {"check_gates": "success", "summarize": "success", "approve": "success",
                               "approval_watch": "success", "archive_table": "failed",
                               "verify_archive": "upstream_failed", "drop_table": "upstream_failed",
                               "record": "upstream_failed",
                               **TEARDOWN}
    out = capfd.readouterr()
    assert ("NotApproved: dropping settled_trades needs a person's Approve in the approval task;"
            " found: no answer recorded by the approval task. Nothing was archived or dropped.") in out.out + out.err
    assert legacy_exists(db, cfg)
    assert not (reports / "archive").exists()
    assert Flags(db, cfg).get(DUAL_WRITE).value == "new_only"
    # the summary the approver would have read
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = next(t for t in dr.get_task_instances(session=session) if t.task_id == "summarize")
        summary = ti.xcom_pull(task_ids="summarize", session=session)
        assert ti.xcom_pull(task_ids="approve", session=session) is None     # no answer was ever given
    assert "| settled_trades | 2,000 |" in summary["body"] and "| user_trades | 3,984 |" in summary["body"]
    assert summary["archive_url"] == f"file://{reports}/archive/" + dr.run_id.replace(":", "_").replace("+", "_")
    assert summary["archive_url"] in summary["body"]
    assert f"python -m trade_migration.restore --archive {summary['archive_url']}" in summary["body"]
    [ack] = [r for r in phases.State(db, cfg).audit_log() if r.action == gates.ACK_REJECTS]
    assert (ack.actor, ack.reason) == ("alice", "eight generated rejects")


def test_fewer_days_without_a_reason_fail_before_anything_is_read(dag, airflow_conn, db, reports, capfd):
    cfg = airflow_conn
    prepare(db, cfg)
    dr = dag.test(run_conf={**ACK, "min_days": 10}, mark_success_pattern="approve")
    assert task_states(dr)["check_gates"] == "failed"
    out = capfd.readouterr()
    assert "ConfigError: min_days 10 is below 30: give override_reason" in out.out + out.err
    assert legacy_exists(db, cfg)


def test_after_the_drop_every_run_skips(dag, airflow_conn, db, cluster_session, reports):
    cfg = airflow_conn
    phases.State(db, cfg).mark(phases.CLEANUP, phases.COMPLETED, run_id="manual__done", actor="carol")
    db.execute(f"DROP TABLE {cfg.keyspace}.{LEGACY_TABLE}")
    try:
        dr = dag.test(run_conf={}, mark_success_pattern="approve")
        assert str(dr.state) == "success"
        assert task_states(dr) == {"check_gates": "skipped", **{t: "skipped" for t in AFTER_GATES}, **TEARDOWN}
    finally:
        schema.apply(cluster_session, cfg)
