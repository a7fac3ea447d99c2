"""user_trades_cleanup in a real Airflow, answered through the REST API as a person would.

A run with the default Params (gates failing: no 'main' ledger, rejects not acknowledged) drops nothing; a
triggered run whose gates pass waits in awaiting_input with the Markdown summary; Reject (PATCH
.../hitlDetails) leaves the table, and so does no answer (Reject by default after the response
timeout, shortened here to seconds); a third run's Approve archives it to Parquet (row count
equal to the table's) and drops it; the audit log names who (or the timeout) decided each time.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
from airflow_server import running_airflow
from cleanup_state import prepare

from trade_migration.cleanup import approval, drop
from trade_migration.core.config import LEGACY_TABLE
from trade_migration.create_table import schema
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, RETIRED, Flags

pytestmark = pytest.mark.e2e
DAG_ID = "user_trades_cleanup"
TRADES = 2000
TIMEOUT_S = 45   # the approval's response timeout in this Airflow (24 h by default)
CONF = {"backfill_id": "e2e", "acknowledge_rejects": "eight generated rejects, kept in the archive",
        "actor": "e2e", "reason": "end-to-end test"}


@pytest.fixture(scope="module")
def airflow(cfg, tmp_path_factory):
    """Airflow with scylla_default pointed at this module's keyspace."""
    home = tmp_path_factory.mktemp("airflow")
    conn = {"conn_type": "cassandra", "host": "127.0.0.1", "port": 9042, "schema": cfg.keyspace}
    env = {"AIRFLOW_CONN_SCYLLA_DEFAULT": json.dumps(conn), "TM_REPORT_DIR": str(home / "reports"),
           "TM_APPROVAL_TIMEOUT_S": str(TIMEOUT_S),
           "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5"}   # the awaiting_input timeout sweep
    with running_airflow(home, env=env) as server:
        yield server


def audit(db, cfg, action: str) -> list:
    return [r for r in phases.State(db, cfg).audit_log() if r.phase == phases.CLEANUP and r.action == action]


def test_reject_keeps_the_table_and_approve_archives_then_drops_it(airflow, cfg, db, cluster_session):
    prepare(db, cfg, trades=TRADES, backfill_id="e2e")
    rejects = 8
    try:
        airflow.wait_for_dag(DAG_ID)

        # a run with the default Params, as the daily schedule starts it: two gates are not met, nothing
        # moves, and the run is skipped (no red run, no alert, every day until they pass)
        airflow.unpause(DAG_ID)
        daily = airflow.trigger(DAG_ID, conf={}, run_id="e2e_defaults")
        assert airflow.wait_for_run(DAG_ID, daily) == "success"
        assert airflow.task_states(DAG_ID, daily) == {
            "check_gates": "skipped", "summarize": "skipped", "approve": "skipped", "approval_watch": "skipped",
            "archive_table": "skipped", "verify_archive": "skipped", "drop_table": "skipped",
            "record": "skipped",
            "record_unfinished": "success"}
        assert drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)

        # a run whose gates pass asks for approval; Reject leaves everything in place
        first = airflow.trigger(DAG_ID, conf=CONF, run_id="e2e_reject")
        airflow.wait_for_approval_request(DAG_ID, first, "approve")
        detail = airflow.hitl_detail(DAG_ID, first, "approve")
        assert detail["subject"] == f"Drop {cfg.keyspace}.settled_trades? Every cleanup gate passes"
        assert (detail["options"], detail["defaults"], detail["response_received"]) == (
            ["Approve", "Reject"], ["Reject"], False)
        body = detail["body"]
        assert body.startswith(f"## Drop `{cfg.keyspace}.settled_trades`?")
        assert f"| settled_trades | {TRADES:,} |" in body and f"| user_trades | {2 * (TRADES - rejects):,} |" in body
        assert "| parity | pass | 7 of the last 7 runs clean or repaired" in body
        assert f"`file://{airflow.home / 'reports' / 'archive' / 'e2e_reject'}`" in body
        assert f"chosen by default after {TIMEOUT_S} s without an answer." in body

        answered = airflow.answer(DAG_ID, first, "approve", ["Reject"])
        assert (answered["chosen_options"], answered["responded_by"]["name"]) == (["Reject"], "admin")
        assert airflow.wait_for_run(DAG_ID, first) == "success"
        assert airflow.task_states(DAG_ID, first) == {
            "check_gates": "success", "summarize": "success", "approve": "success", "approval_watch": "success",
            "archive_table": "skipped", "verify_archive": "skipped", "drop_table": "skipped", "record": "skipped",
            "record_unfinished": "success"}
        airflow.answer(DAG_ID, first, "approve", ["Approve"], expect=(409,))   # an answer is final
        assert drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)
        assert not (airflow.home / "reports" / "archive").exists()
        assert Flags(db, cfg).get(DUAL_WRITE).value == "new_only"
        [rejected] = audit(db, cfg, approval.REJECTED)
        assert rejected.actor == "admin" and rejected.reason.startswith("Reject by admin at ")
        assert json.loads(rejected.details)["run_id"] == first

        # nobody answers: after the response timeout the default, Reject, is taken
        silent = airflow.trigger(DAG_ID, conf=CONF, run_id="e2e_timeout")
        airflow.wait_for_task_state(DAG_ID, silent, "approve", {"awaiting_input"})
        assert airflow.wait_for_run(DAG_ID, silent, timeout=TIMEOUT_S + 240) == "success"
        assert airflow.task_states(DAG_ID, silent) == {
            "check_gates": "success", "summarize": "success", "approve": "success", "approval_watch": "success",
            "archive_table": "skipped", "verify_archive": "skipped", "drop_table": "skipped", "record": "skipped",
            "record_unfinished": "success"}
        detail = airflow.hitl_detail(DAG_ID, silent, "approve")
        assert (detail["chosen_options"], detail["responded_by_user"], detail["response_received"]) == (
            ["Reject"], None, True)
        [by_default] = audit(db, cfg, approval.REJECTED_BY_DEFAULT)
        assert (by_default.actor, json.loads(by_default.details)["run_id"]) == ("airflow (timeout)", silent)
        assert drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)

        # a third run, approved: archive, count check, drop, flag retired, the end recorded
        second = airflow.trigger(DAG_ID, conf=CONF, run_id="e2e_approve")
        airflow.wait_for_approval_request(DAG_ID, second, "approve")
        airflow.answer(DAG_ID, second, "approve", ["Approve"])
        assert airflow.wait_for_run(DAG_ID, second) == "success"
        assert set(airflow.task_states(DAG_ID, second).values()) == {"success"}

        where = airflow.home / "reports" / "archive" / "e2e_approve"
        manifest = json.loads((where / "manifest.json").read_text())
        assert (manifest["rows"], manifest["counted"], manifest["keyspace"]) == (TRADES, TRADES, cfg.keyspace)
        frame = pd.concat([pd.read_parquet(p) for p in sorted(where.glob("part-*.parquet"))], ignore_index=True)
        assert len(frame) == TRADES and frame["trade_id"].nunique() == TRADES
        assert not drop.table_exists(db, cfg.keyspace, LEGACY_TABLE)

        flag = Flags(db, cfg).get(DUAL_WRITE)
        assert (flag.value, flag.changed_by) == (RETIRED, "admin")
        phase = phases.State(db, cfg).phase(phases.CLEANUP)
        assert (phase.status, phase.run_id, phase.actor) == (phases.COMPLETED, second, "admin")
        assert (phase.details["approved_by"], phase.details["archived_rows"]) == ("admin", str(TRADES))
        [approved] = audit(db, cfg, approval.APPROVED)
        assert approved.actor == "admin" and json.loads(approved.details)["run_id"] == second
        assert [r.actor for r in audit(db, cfg, drop.ARCHIVED)] == ["admin"]
        assert [r.actor for r in audit(db, cfg, drop.ARCHIVE_VERIFIED)] == ["admin"]
        assert [r.actor for r in audit(db, cfg, drop.DROPPED)] == ["admin"]
    finally:
        schema.apply(cluster_session, cfg)   # the next test (or rerun) gets its settled_trades back
