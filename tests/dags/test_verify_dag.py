"""user_trades_verify, run with dag.test() against the real node (this module's keyspace).

dag.test() makes manual runs; `scheduled()` turns the run it makes into a scheduled one (what the
nightly timetable creates), so the nightly policy is tested through the DAG as it runs at 02:00.

Needs a migrated Airflow metadata DB (`bin/airflow db migrate`) and the settings of bin/airflow-env.
"""
from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime
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
from trade_migration.dual_write.writer import SettlementWriter
from trade_migration.state import phases
from trade_migration.state.ledger import Ledger
from trade_migration.statements.parity_runs import parity_select_recent
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled
from trade_migration.statements.user_trades import select_user_trade
from trade_migration.verify import phase
from trade_migration.verify.policy import default_mode
from trade_migration.verify.resolve import DELETED, RESOLVED

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


def fresh():
    """The DAG parsed afresh: dag.test() keeps a run's conf in the DAG's params, and the runs below
    must start from empty Params."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / "user_trades_verify.py")).get_dag("user_trades_verify")


def scheduled(monkeypatch, conf: dict):
    """A dag.test() run as the nightly timetable makes it: run type scheduled."""
    from airflow.models import dagrun
    from airflow.utils.types import DagRunType

    made = dagrun.get_or_create_dagrun

    def as_scheduled(**kw):
        dr = made(**kw)
        dr.run_type = DagRunType.SCHEDULED
        kw["session"].commit()
        return dr

    monkeypatch.setattr(dagrun, "get_or_create_dagrun", as_scheduled)
    try:
        return fresh().test(run_conf=conf)
    finally:
        monkeypatch.setattr(dagrun, "get_or_create_dagrun", made)


def convertible_trades(db, cfg) -> list:
    ids = load_symbol_ids(db, cfg.keyspace)
    scanned = db.execute(prepared(db, scan_settled(cfg.keyspace)), (MIN_TOKEN, MAX_TOKEN))
    trades = (decode_scanned_trade(r).trade for r in scanned)
    return sorted((t for t in trades if not isinstance(convert(t, ids), Reject)), key=lambda t: t.trade_id)


def faults(db, cfg) -> tuple[list, list]:
    """A bust made by a settlement service that still writes settled_trades only (two orphans) and a
    lost row (one missing): (the orphans' rows, the lost row)."""
    ids = load_symbol_ids(db, cfg.keyspace)
    busted, other = convertible_trades(db, cfg)[:2]
    SettlementWriter(db, cfg).bust(busted)   # dual_write is off
    lost = convert(other, ids)[1]
    db.execute(prepared(db, delete_user_trade(cfg.keyspace)), lost.key)
    return list(convert(busted, ids)), [lost]


def present(db, cfg, rows) -> list[bool]:
    stmt = prepared(db, select_user_trade(cfg.keyspace))
    return [db.execute(stmt, r.key).one() is not None for r in rows]


def fixes(row) -> tuple:
    return (row.status, row.missing, row.orphans, row.repaired, row.resolved, row.heal_pending, row.healed,
            row.heal_left)


# --- structure ------------------------------------------------------------------------------------
def test_the_dag_imports_and_runs_nightly_and_after_each_backfill(bag):
    from airflow.sdk import AssetAll, AssetOrTimeSchedule, CronTriggerTimetable

    assert {p: e for p, e in bag.import_errors.items() if "user_trades_" in p} == {}
    dag = bag.get_dag("user_trades_verify")
    schedule = dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert isinstance(schedule.timetable, CronTriggerTimetable)
    assert (schedule.timetable.expression, str(schedule.timetable.timezone)) == ("0 2 * * *", "UTC")
    backfill_outlets = bag.get_dag("user_trades_backfill").get_task("announce_complete").outlets
    assert schedule.asset_condition == AssetAll(*backfill_outlets)
    assert dag.catchup is False
    assert [t.task_id for t in dag.tasks] == ["plan", "heal", "survey", "narrow", "inspect", "resolve", "conclude",
                                              "record_unfinished"]
    assert dag.get_task("heal").downstream_task_ids == {"survey", "conclude"}
    assert {t.pool for t in map(dag.get_task, ("heal", "survey", "inspect", "resolve"))} == {"cassandra_backfill"}
    assert (dag.params["mode"], dag.params["repair"], dag.params["resolve_orphans"], dag.params["resolve_limit"]) == (
        None, None, None, 1000)


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
    assert states(dr) == {"plan": {"success"}, "heal": {"success"}, "survey": {"success"}, "narrow": {"success"},
                          "inspect": {"skipped"}, "resolve": {"success"},    # digests agree: nothing to look up
                          "conclude": {"success"}, "record_unfinished": {"success"}}
    row = last_parity_run(db, airflow_conn)
    assert (row.run_id, row.mode, row.status, row.missing, row.mismatched, row.orphans) == (
        dr.run_id, "full", "clean", 0, 0, 0)
    assert row.ranges_checked == row.ranges_total == 8
    record = phases.State(db, airflow_conn).phase(phases.VERIFY)
    assert (record.status, record.run_id, record.actor) == (phases.COMPLETED, dr.run_id, "alice")
    folder = Path(row.report_path)
    assert folder.parent.parent == verify_env / "reports"
    assert sorted(p.name for p in folder.iterdir()) == [
        "differences.csv", "rejected.csv", "summary.html", "summary.json"]
    assert not (verify_env / "notice.json").exists()


def test_a_broken_run_fails_and_calls_the_notifier(bag, verify_env, airflow_conn, db, caplog):
    ids = load_symbol_ids(db, airflow_conn.keyspace)
    scanned = db.execute(prepared(db, scan_settled(airflow_conn.keyspace)), (MIN_TOKEN, MAX_TOKEN))
    trade = next(t for t in (decode_scanned_trade(r).trade for r in scanned) if not isinstance(convert(t, ids), Reject))
    row = convert(trade, ids)[0]
    db.execute(prepared(db, delete_user_trade(airflow_conn.keyspace)), row.key)

    dr = bag.get_dag("user_trades_verify").test(run_conf={**FAST, "mode": "full"})
    assert str(dr.state) == "failed"
    assert states(dr) == {"plan": {"success"}, "heal": {"success"}, "survey": {"success"}, "narrow": {"success"},
                          "inspect": {"success"}, "resolve": {"success"}, "conclude": {"failed"},
                          "record_unfinished": {"success"}}
    got = last_parity_run(db, airflow_conn)
    assert (got.run_id, got.status, got.missing, got.repaired) == (dr.run_id, "broken", 1, 0)
    assert phases.State(db, airflow_conn).phase(phases.VERIFY).status == phases.FAILED
    notice = json.loads((verify_env / "notice.json").read_text())
    assert notice["subject"] == f"user_trades parity broken: user_trades_verify run {dr.run_id}"
    assert "missing 1, mismatched 0, orphans 0" in notice["body"]
    assert notice["details"]["report_folder"] == got.report_path
    broken_html = (Path(got.report_path) / "summary.html").read_text()
    assert "<p id='verdict' class='verdict broken'>broken: user_trades differs from settled_trades</p>" in broken_html
    assert f"<tr><td>missing</td><td>{trade_range_label(got)}</td><td>{trade.trade_id}</td>" in broken_html
    # the task log links the report as the migration page's plugin serves it
    served = f"/trade-migration/reports/verify/{Path(got.report_path).name}/summary.html"
    assert f"report in the Airflow UI: <Airflow URL>{served}" in caplog.text

    # the same with repair on: the row is rewritten, the run succeeds, and tells what it fixed
    os.remove(verify_env / "notice.json")
    dr = bag.get_dag("user_trades_verify").test(run_conf={**FAST, "mode": "full", "repair": True})
    assert str(dr.state) == "success"
    got = last_parity_run(db, airflow_conn)
    assert (got.run_id, got.status, got.missing, got.repaired) == (dr.run_id, "repaired", 1, 1)
    assert phases.State(db, airflow_conn).phase(phases.VERIFY).status == phases.COMPLETED
    notice = json.loads((verify_env / "notice.json").read_text())
    assert notice["subject"] == f"user_trades parity repaired: run {dr.run_id} healed 0, repaired 1, resolved 0"
    repaired_html = (Path(got.report_path) / "summary.html").read_text()
    assert "class='verdict repaired'>repaired: differences were found and written back" in repaired_html
    # the deleted row is written back at the run's start (the delete's tombstone is newer than the source)
    assert f"<td>{trade.trade_id}</td>" in repaired_html and "<td>run_start</td>" in repaired_html


def trade_range_label(run_row) -> str:
    """The label of the one difference's token range, as the run's CSV names it."""
    with (Path(run_row.report_path) / "differences.csv").open() as f:
        return next(csv.DictReader(f))["range"]


def test_a_sampled_run_records_its_seed(bag, verify_env, airflow_conn, db):
    dr = bag.get_dag("user_trades_verify").test(run_conf={**FAST, "mode": "sampled", "sample_share": 0.25,
                                                           "seed": 99})
    assert str(dr.state) == "success"
    row = last_parity_run(db, airflow_conn)
    assert (row.mode, row.seed, row.ranges_checked, row.ranges_total, row.status) == ("sampled", 99, 8, 8, "clean")
    facts = json.loads((Path(row.report_path) / "summary.json").read_text())
    assert (facts["seed"], facts["sample_share"], facts["recent_hours"]) == (99, 0.25, 24)
    assert len(facts["settled_windows"]) == 2 and facts["settled_windows"][1][1] == "9999-12-31T00:00:00Z"


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


# --- the nightly policy ---------------------------------------------------------------------------
def test_unpausing_the_dag_starts_no_run_before_the_next_0200(bag, monkeypatch):
    """Airflow's default would run the last 02:00 at once if the DAG is first unpaused up to 2.4 h
    after it (a failed run in the production-shape test at 02:06)."""
    import airflow.timetables.trigger as trigger
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction

    schedule = decode_timetable(encode_timetable(bag.get_dag("user_trades_verify").timetable))   # the scheduler's
    first = TimeRestriction(earliest=None, latest=None, catchup=False)
    for now, expected in ((datetime(2026, 12, 7, 2, 6, tzinfo=UTC), datetime(2026, 12, 8, 2, tzinfo=UTC)),
                          (datetime(2026, 12, 7, 1, 59, tzinfo=UTC), datetime(2026, 12, 7, 2, tzinfo=UTC))):
        monkeypatch.setattr(trigger, "utcnow", lambda now=now: now)
        assert schedule.next_dagrun_info(last_automated_data_interval=None, restriction=first).run_after == expected


def test_a_nightly_run_before_the_backfill_completed_ends_skipped(airflow_conn, db, tmp_path, monkeypatch):
    monkeypatch.setenv("TM_PARITY_NOTIFIER", f"{__name__}:file_notifier")
    monkeypatch.setenv("TM_TEST_NOTICE_FILE", str(tmp_path / "notice.json"))
    mark_done(db, airflow_conn, phases.CREATE_TABLE, phases.DUAL_WRITE)
    dr = scheduled(monkeypatch, FAST)
    assert str(dr.state) == "success"
    assert states(dr) == {**{t: {"skipped"} for t in ("plan", "heal", "survey", "narrow", "inspect", "resolve",
                                                      "conclude")},
                          "record_unfinished": {"success"}}   # a teardown: it runs, and finds nothing to record
    assert phases.State(db, airflow_conn).phase(phases.VERIFY) is None and last_parity_run(db, airflow_conn) is None
    assert not (tmp_path / "notice.json").exists()
    # what the skip says, and a run someone started is refused
    assert phase.nightly_waits(db, airflow_conn, "scheduled") == (
        "nightly verification skipped: phase 'verify' cannot start: backfill not completed yet"
        " (run user_trades_backfill first)")
    assert phase.nightly_waits(db, airflow_conn, "manual") is None
    assert str(fresh().test(run_conf=FAST).state) == "failed"


def test_the_nightly_run_heals_repairs_and_resolves_and_says_so(verify_env, airflow_conn, db, monkeypatch):
    orphans, lost = faults(db, airflow_conn)
    dr = scheduled(monkeypatch, {**FAST, "mode": "full"})
    assert str(dr.state) == "success"
    assert states(dr) == {"plan": {"success"}, "heal": {"success"}, "survey": {"success"}, "narrow": {"success"},
                          "inspect": {"success"}, "resolve": {"success"}, "conclude": {"success"},
                          "record_unfinished": {"success"}}
    row = last_parity_run(db, airflow_conn)
    assert (row.run_id, *fixes(row)) == (dr.run_id, "repaired", 1, 2, 1, 2, 0, 0, 0)
    assert present(db, airflow_conn, orphans + lost) == [False, False, True]
    audited = [(e.actor, json.loads(e.details)) for e in phases.State(db, airflow_conn).audit_log(100)
               if e.action == RESOLVED]
    assert sorted((who, d["run_id"], d["key"]["side"]) for who, d in audited) == [
        ("alice", dr.run_id, "BUY"), ("alice", dr.run_id, "SELL")]
    with (Path(row.report_path) / "differences.csv").open() as f:
        assert sorted((r["kind"], r["side"], r["repair"]) for r in csv.DictReader(f)) == [
            ("missing", "SELL", "run_start"), ("orphan", "BUY", DELETED), ("orphan", "SELL", DELETED)]
    summary = json.loads((Path(row.report_path) / "summary.json").read_text())
    assert (summary["repair"], summary["resolve_orphans"], summary["healed"], summary["resolved"]) == (True, True, 0, 2)
    notice = json.loads((verify_env / "notice.json").read_text())
    assert notice["subject"] == f"user_trades parity repaired: run {dr.run_id} healed 0, repaired 1, resolved 2"
    assert notice["body"] == (f"figures: missing 1, mismatched 0, orphans 2, rejected {summary['rejected']},"
                              f" repaired 1, resolved 2, healed 0\nreport: {row.report_path}")


def test_an_adhoc_run_without_params_only_reports(verify_env, airflow_conn, db):
    orphans, lost = faults(db, airflow_conn)
    dr = fresh().test(run_conf=FAST)   # manual: full, no repair, no resolve
    assert str(dr.state) == "failed" and states(dr)["heal"] == {"success"}
    row = last_parity_run(db, airflow_conn)
    assert (row.run_id, *fixes(row)) == (dr.run_id, "broken", 1, 2, 0, 0, None, None, None)
    assert present(db, airflow_conn, orphans + lost) == [True, True, False]
    notice = json.loads((verify_env / "notice.json").read_text())
    assert notice["subject"] == f"user_trades parity broken: user_trades_verify run {dr.run_id}"
    assert "figures: missing 1, mismatched 0, orphans 2, rejected " in notice["body"]
    assert ", repaired 0, resolved 0\n" in notice["body"]   # healed: not run, not named


def test_params_win_over_the_policy(verify_env, airflow_conn, db, monkeypatch):
    orphans, lost = faults(db, airflow_conn)
    dr = scheduled(monkeypatch, {**FAST, "mode": "full", "repair": False, "resolve_orphans": False})
    assert str(dr.state) == "failed"
    assert fixes(last_parity_run(db, airflow_conn)) == ("broken", 1, 2, 0, 0, None, None, None)
    assert present(db, airflow_conn, orphans + lost) == [True, True, False]

    monkeypatch.setenv("TM_NIGHTLY_REPAIR", "off")   # the deployment's policy is not asked when Params are given
    dr = fresh().test(run_conf={**FAST, "repair": True, "resolve_orphans": True})
    assert str(dr.state) == "success"
    assert fixes(last_parity_run(db, airflow_conn)) == ("repaired", 1, 2, 1, 2, 0, 0, 0)
    assert present(db, airflow_conn, orphans + lost) == [False, False, True]


def test_the_deployment_can_turn_the_nightly_fixes_off(verify_env, airflow_conn, db, monkeypatch):
    monkeypatch.setenv("TM_NIGHTLY_REPAIR", "off")
    monkeypatch.setenv("TM_NIGHTLY_RESOLVE_ORPHANS", "off")
    faults(db, airflow_conn)
    dr = scheduled(monkeypatch, {**FAST, "mode": "full"})
    assert str(dr.state) == "failed"
    assert fixes(last_parity_run(db, airflow_conn)) == ("broken", 1, 2, 0, 0, None, None, None)
