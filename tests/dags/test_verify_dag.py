"""user_trades_verify, run with dag.test() against the real node (this module's keyspace).

Needs a migrated Airflow metadata DB (`bin/airflow db migrate`) and the settings of bin/airflow-env.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import REPO, load_trades, mark_done
from testkit.statements import delete_user_trade

from trade_migration.backfill import copier, plan
from trade_migration.core.convert import Reject, convert
from trade_migration.core.errors import ConfigError
from trade_migration.core.notify import Notice
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.state import phases
from trade_migration.state.ledger import Ledger
from trade_migration.statements.parity_runs import parity_select_recent
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.verify.parity_run import default_mode

N = 800
FAST = {"splits": 8, "recheck_delay_s": 0.1, "parallelism": 2, "actor": "alice", "reason": "test"}


def file_notifier(notice: Notice) -> None:
    """A notifier for TM_PARITY_NOTIFIER: writes the notice where the test can read it."""
    Path(os.environ["TM_TEST_NOTICE_FILE"]).write_text(json.dumps(
        {"subject": notice.subject, "body": notice.body, "details": notice.details}, default=str))


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture
def verify_env(airflow_conn, db, tmp_path, monkeypatch):
    """Backfilled trades, the earlier phases done, reports and notices in tmp_path."""
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("TM_PARITY_NOTIFIER", f"{__name__}:file_notifier")
    monkeypatch.setenv("TM_TEST_NOTICE_FILE", str(tmp_path / "notice.json"))
    load_trades(db, airflow_conn, N, seed=11)
    plan.ensure_ledger(db, airflow_conn, Ledger(db, airflow_conn, "dagtest"), 8)
    copier.run_batch(db, airflow_conn, "dagtest", [TokenRange(MIN_TOKEN, MAX_TOKEN)])
    mark_done(db, airflow_conn, phases.CREATE_TABLE, phases.DUAL_WRITE, phases.BACKFILL)
    return tmp_path


def states(dr) -> dict[str, set]:
    from airflow.utils.session import create_session

    with create_session() as session:
        out: dict[str, set] = {}
        for ti in dr.get_task_instances(session=session):
            out.setdefault(ti.task_id, set()).add(str(ti.state))
        return out


def last_parity_run(db, cfg):
    return db.execute(prepared(db, parity_select_recent(cfg.keyspace)), (1,)).one()


# --- structure ------------------------------------------------------------------------------------
def test_the_dag_imports_and_runs_nightly_and_after_each_backfill(bag):
    from airflow.sdk import AssetAll, AssetOrTimeSchedule, CronTriggerTimetable

    assert {p: e for p, e in bag.import_errors.items() if "user_trades_" in p} == {}
    dag = bag.get_dag("user_trades_verify")
    schedule = dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert isinstance(schedule.timetable, CronTriggerTimetable)
    assert (schedule.timetable.expression, str(schedule.timetable.timezone)) == ("0 2 * * *", "UTC")
    backfill_outlets = bag.get_dag("user_trades_backfill").get_task("summarize").outlets
    assert schedule.asset_condition == AssetAll(*backfill_outlets)
    assert dag.catchup is False
    assert [t.task_id for t in dag.tasks] == ["plan", "survey", "narrow", "inspect", "conclude", "record_unfinished"]
    assert dag.get_task("survey").pool == dag.get_task("inspect").pool == "cassandra_backfill"
    assert dag.params["repair"] is False and dag.params["mode"] is None


def test_the_nightly_run_samples_and_every_other_run_checks_everything():
    assert [default_mode(t, {}) for t in ("scheduled", "manual", "asset_triggered", "operator_triggered")] == [
        "sampled", "full", "full", "full"]


def test_the_nightly_mode_can_be_set_for_the_deployment_and_nothing_else():
    full = {"TM_NIGHTLY_MODE": "full"}
    assert [default_mode(t, full) for t in ("scheduled", "manual", "asset_triggered")] == ["full"] * 3
    assert default_mode("scheduled", {"TM_NIGHTLY_MODE": "sampled"}) == "sampled"
    for bad in ("FULL", "sampled ", "", "all"):
        with pytest.raises(ConfigError, match=f"TM_NIGHTLY_MODE must be one of full, sampled \\(got {bad!r}\\)"):
            default_mode("scheduled", {"TM_NIGHTLY_MODE": bad})
    assert default_mode("manual", {"TM_NIGHTLY_MODE": "bad"}) == "full"   # only the schedule reads it


def test_bad_params_are_refused_before_anything_runs(bag, airflow_conn, db):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="mode"):
        bag.get_dag("user_trades_verify").test(run_conf={**FAST, "mode": "most"})
    assert last_parity_run(db, airflow_conn) is None


# --- runs -----------------------------------------------------------------------------------------
def test_a_clean_run_records_clean_and_completes_the_phase(bag, verify_env, airflow_conn, db):
    dr = bag.get_dag("user_trades_verify").test(run_conf=FAST)   # manual, no mode: full
    assert str(dr.state) == "success"
    assert states(dr) == {"plan": {"success"}, "survey": {"success"}, "narrow": {"success"},
                          "inspect": {"skipped"}, "conclude": {"success"},   # digests agree: nothing to look up
                          "record_unfinished": {"success"}}
    row = last_parity_run(db, airflow_conn)
    assert (row.run_id, row.mode, row.status, row.missing, row.mismatched, row.orphans) == (
        dr.run_id, "full", "clean", 0, 0, 0)
    assert row.ranges_checked == row.ranges_total == 8
    phase = phases.State(db, airflow_conn).phase(phases.VERIFY)
    assert (phase.status, phase.run_id, phase.actor) == (phases.COMPLETED, dr.run_id, "alice")
    folder = Path(row.report_path)
    assert folder.parent.parent == verify_env / "reports"
    assert sorted(p.name for p in folder.iterdir()) == [
        "differences.csv", "rejected.csv", "summary.html", "summary.json"]
    assert not (verify_env / "notice.json").exists()


def test_a_broken_run_fails_and_calls_the_notifier(bag, verify_env, airflow_conn, db):
    ids = load_symbol_ids(db, airflow_conn.keyspace)
    scanned = db.execute(prepared(db, scan_settled(airflow_conn.keyspace)), (MIN_TOKEN, MAX_TOKEN))
    trade = next(t for t in (decode_scanned_trade(r).trade for r in scanned) if not isinstance(convert(t, ids), Reject))
    row = convert(trade, ids)[0]
    db.execute(prepared(db, delete_user_trade(airflow_conn.keyspace)), row.key)

    dr = bag.get_dag("user_trades_verify").test(run_conf={**FAST, "mode": "full"})
    assert str(dr.state) == "failed"
    assert states(dr) == {"plan": {"success"}, "survey": {"success"}, "narrow": {"success"},
                          "inspect": {"success"}, "conclude": {"failed"},
                          "record_unfinished": {"success"}}
    got = last_parity_run(db, airflow_conn)
    assert (got.run_id, got.status, got.missing, got.repaired) == (dr.run_id, "broken", 1, 0)
    assert phases.State(db, airflow_conn).phase(phases.VERIFY).status == phases.FAILED
    notice = json.loads((verify_env / "notice.json").read_text())
    assert notice["subject"] == f"user_trades parity broken: user_trades_verify run {dr.run_id}"
    assert "missing 1, mismatched 0, orphans 0" in notice["body"]
    assert notice["details"]["report_folder"] == got.report_path

    # the same with repair on: the row is rewritten and the run succeeds
    os.remove(verify_env / "notice.json")
    dr = bag.get_dag("user_trades_verify").test(run_conf={**FAST, "mode": "full", "repair": True})
    assert str(dr.state) == "success"
    got = last_parity_run(db, airflow_conn)
    assert (got.run_id, got.status, got.missing, got.repaired) == (dr.run_id, "repaired", 1, 1)
    assert phases.State(db, airflow_conn).phase(phases.VERIFY).status == phases.COMPLETED
    assert not (verify_env / "notice.json").exists()


def test_a_sampled_run_records_its_seed(bag, verify_env, airflow_conn, db):
    dr = bag.get_dag("user_trades_verify").test(run_conf={**FAST, "mode": "sampled", "sample_share": 0.25,
                                                           "seed": 99})
    assert str(dr.state) == "success"
    row = last_parity_run(db, airflow_conn)
    assert (row.mode, row.seed, row.ranges_checked, row.ranges_total, row.status) == ("sampled", 99, 2, 8, "clean")
    facts = json.loads((Path(row.report_path) / "summary.json").read_text())
    assert facts["seed"] == 99 and len(facts["chosen_ranges"]) == 2


def test_verify_refuses_to_run_before_the_backfill_completes(bag, airflow_conn, db, tmp_path, monkeypatch):
    monkeypatch.setenv("TM_PARITY_NOTIFIER", f"{__name__}:file_notifier")
    monkeypatch.setenv("TM_TEST_NOTICE_FILE", str(tmp_path / "notice.json"))
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    mark_done(db, airflow_conn, phases.CREATE_TABLE, phases.DUAL_WRITE)
    dr = bag.get_dag("user_trades_verify").test(run_conf=FAST)
    assert str(dr.state) == "failed"
    assert states(dr)["plan"] == {"failed"}
    assert last_parity_run(db, airflow_conn) is None
    notice = json.loads((tmp_path / "notice.json").read_text())
    assert notice["subject"] == f"user_trades parity not checked: user_trades_verify run {dr.run_id}"
    assert "the run failed before concluding" in notice["body"]
