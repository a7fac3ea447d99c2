"""Running a DAG twice in a row leaves the database exactly as one run does (dag.test(), real node).

Every table of the test keyspace is read after run 1 and after run 2 (user_trades and
settled_trades with the write time of each row, so a row rewritten with the same values would
still show) and compared. Excluded, because they record each run rather than the migration's
data, and only these:

- audit_log: every row. It is the append-only record of who did what, when and why; each run
  adds its own entries (timeuuid keys), by design.
- migration_phases: run_id, started_at, finished_at. The phase record names the run that last
  touched the phase and when.
- migration_phases.details, per DAG, only the keys that describe a run rather than the data:
  backfill "ranges" (ranges that run had to copy: all of them, then 0), verify "seed" (derived
  from the run id), dual_write "confirmed_trades" (how many dual-written trades that run's sensor
  happened to see). Every other key is compared. A verification with repair=True after a row was
  lost is the one case where two runs differ in what they found: run 1 "repaired" 1 missing row,
  run 2 finds the table "clean"; its phase keys status/missing/repaired are left out of the
  comparison and checked explicitly instead.
- parity_runs: one row per verification run, by design (the cleanup gate reads the newest
  nights). Run 2 must add exactly one row, and its results (mode, ranges, rows checked, missing,
  mismatched, orphans, rejected, repaired, status) must equal run 1's; its started_at, run_id,
  seed, duration_s and report_path identify the run.

user_trades_migration is not run here: it only triggers the phase DAGs and waits for them, which
needs a scheduler (dag.test() cannot start the triggered runs); each phase DAG is covered below.

Needs a migrated Airflow metadata DB (`bin/airflow db migrate`) and the settings of bin/airflow-env.
"""
from __future__ import annotations

import pytest
from cleanup_state import prepare
from conftest import REPO, load_trades, mark_done
from db_snapshot import schema_of, snapshot
from hitl_answer import Answer
from testkit import generator
from testkit.statements import delete_user_trade
from testkit.traffic import live_traffic

from trade_migration.backfill import copier
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.create_table import schema
from trade_migration.state import phases
from trade_migration.state.ledger import Ledger

RING = [TokenRange(MIN_TOKEN, MAX_TOKEN)]
PHASE_RUN_COLUMNS = ("run_id", "started_at", "finished_at")
PARITY_RUN_COLUMNS = ("started_at", "run_id", "seed", "duration_s", "report_path")
WHO = {"actor": "alice", "reason": "idempotency test"}


def fresh(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py")).get_dag(dag_id)


def states(dr) -> dict[str, set]:
    from airflow.utils.session import create_session

    with create_session() as session:
        out: dict[str, set] = {}
        for ti in dr.get_task_instances(session=session):
            out.setdefault(ti.task_id, set()).add(str(ti.state))
        return out


def comparable(snap: dict, run_keys: tuple = ()) -> dict:
    """The snapshot without what records a run (see the module's docstring)."""
    out = {t: rows for t, rows in snap.items() if t not in ("audit_log", "parity_runs")}
    out["migration_phases"] = [
        {**{k: v for k, v in r.items() if k not in PHASE_RUN_COLUMNS},
         "details": {k: v for k, v in (r["details"] or {}).items() if k not in run_keys}}
        for r in snap["migration_phases"]]
    return out


def parity_results(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in PARITY_RUN_COLUMNS} for r in rows]


def differences(a: dict, b: dict) -> dict:
    return {t: (a.get(t), b.get(t)) for t in a.keys() | b.keys() if a.get(t) != b.get(t)}


def twice(db, cfg, dag_id: str, conf: dict, *, run_keys: tuple = (), expect: str = "success", between=None,
          **test_kwargs) -> tuple[dict, dict]:
    """Run the DAG, snapshot, run it again with the same conf, snapshot; assert the two agree."""
    shape = schema_of(db, cfg.keyspace)
    first = fresh(dag_id).test(run_conf=conf, **test_kwargs)
    assert str(first.state) == expect, states(first)
    if between:
        between()
    after_one = snapshot(db, cfg.keyspace)
    second = fresh(dag_id).test(run_conf=conf, **test_kwargs)
    assert str(second.state) == expect, states(second)
    after_two = snapshot(db, cfg.keyspace)
    assert schema_of(db, cfg.keyspace) == shape or dag_id == "user_trades_cleanup"
    assert differences(comparable(after_one, run_keys), comparable(after_two, run_keys)) == {}
    return after_one, after_two


def test_create_table_twice(airflow_conn, db):
    one, two = twice(db, airflow_conn, "user_trades_create_table", WHO)
    assert [r["status"] for r in one["migration_phases"]] == ["completed"]


def test_dual_write_on_twice(airflow_conn, db):
    cfg = airflow_conn
    mark_done(db, cfg, phases.CREATE_TABLE)
    generator.write_symbols(db, cfg.keyspace)
    writer = live_traffic(db, cfg, flag_refresh_s=0.5, trades_per_second=40)
    conf = {**WHO, "value": "on", "refresh_bound_s": 1, "min_trades": 5}
    with writer.running():   # live settlements while the first run waits for dual writes to land
        first = fresh("user_trades_dual_write").test(run_conf=conf)
    assert str(first.state) == "success", states(first)
    after_one = snapshot(db, cfg.keyspace)
    # the second run: the flag is already on (unchanged, same version), and the dual-written
    # trades the first run waited for are still there to be found
    second = fresh("user_trades_dual_write").test(run_conf=conf)
    assert str(second.state) == "success", states(second)
    after_two = snapshot(db, cfg.keyspace)
    assert differences(comparable(after_one, ("confirmed_trades",)),
                       comparable(after_two, ("confirmed_trades",))) == {}
    [flag] = after_two["migration_flags"]
    assert (flag["value"], flag["version"]) == ("on", 1)


def test_read_path_switch_twice(airflow_conn, db):
    cfg = airflow_conn
    mark_done(db, cfg, phases.CREATE_TABLE)
    load_trades(db, cfg, 1500, seed=41)
    Ledger(db, cfg, "rp").plan(RING)
    copier.run_batch(db, cfg, "rp", RING)
    _, two = twice(db, cfg, "user_trades_read_path", {**WHO, "value": "user_trades", "sample_users": 20,
                                                       "page_size": 20, "seed": 3})
    assert [(f["name"], f["value"], f["version"]) for f in two["migration_flags"]] == [("read_path", "user_trades", 1)]


def test_backfill_twice(airflow_conn, db):
    cfg = airflow_conn
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE)
    generated = load_trades(db, cfg, 3000, seed=42)
    one, _ = twice(db, cfg, "user_trades_backfill", {**WHO, "backfill_id": "idem", "splits": 8, "parallelism": 2},
                   run_keys=("ranges",))
    assert len(one["user_trades"]) == generated.user_trade_rows
    assert len(one["rejected_trades"]) == sum(generated.rejects.values())


@pytest.mark.parametrize("repair", [False, True])
def test_verify_twice(airflow_conn, db, tmp_path, monkeypatch, repair):
    cfg = airflow_conn
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    load_trades(db, cfg, 1500, seed=43)
    Ledger(db, cfg, "v").plan(RING)
    copier.run_batch(db, cfg, "v", RING)
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE, phases.BACKFILL)
    if repair:   # a row lost: the first run writes it back, the second finds nothing to do
        victim = next(iter(db.execute(f"SELECT user_id, symbol_id, settled_at, trade_id, side"
                                      f" FROM {cfg.keyspace}.user_trades LIMIT 1")))
        db.execute(db.prepare(delete_user_trade(cfg.keyspace)), tuple(victim))
    conf = {**WHO, "splits": 8, "parallelism": 2, "recheck_delay_s": 0.1, "repair": repair}
    one, two = twice(db, cfg, "user_trades_verify", conf, run_keys=("seed", "repaired", "missing", "status")
                     if repair else ("seed",))
    assert len(one["parity_runs"]) == 1 and len(two["parity_runs"]) == 2
    first, = one["parity_runs"]
    second = next(r for r in two["parity_runs"] if r["run_id"] != first["run_id"])
    if not repair:
        assert parity_results([second]) == parity_results([first]) and first["status"] == "clean"
    else:
        # run 1 found and repaired the lost row; run 2, on the repaired table, finds it clean
        assert (first["status"], first["missing"], first["repaired"]) == ("repaired", 1, 1)
        assert (second["status"], second["missing"], second["repaired"]) == ("clean", 0, 0)
        same = ("mode", "ranges_checked", "ranges_total", "mismatched", "orphans", "rejected")
        assert {k: second[k] for k in same} == {k: first[k] for k in same}
        assert second["rows_checked"] == first["rows_checked"] + 1            # the repaired row, now there


def test_cleanup_twice_approved_then_over(airflow_conn, db, tmp_path, monkeypatch, cluster_session):
    """Run 1 is approved: archive, drop, record. Run 2 finds the migration over and skips every
    task, writing nothing at all: here even the audit log is compared."""
    cfg = airflow_conn
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    prepare(db, cfg, trades=500)
    conf = {**WHO, "acknowledge_rejects": "the two generated rejects stay in the archive"}
    try:
        with Answer("user_trades_cleanup") as answer:
            first = fresh("user_trades_cleanup").test(run_conf=conf)
        assert answer.error is None and answer.answered_run == first.run_id
        assert str(first.state) == "success", states(first)
        after_one = snapshot(db, cfg.keyspace)
        assert after_one["settled_trades"] is None
        second = fresh("user_trades_cleanup").test(run_conf=conf)
        assert str(second.state) == "success"
        assert states(second) == {**{t: {"skipped"} for t in ("check_gates", "summarize", "approve", "approval_watch",
                                                              "archive_table",
                                                              "verify_archive", "drop_table", "record")},
                                  "record_unfinished": {"success"}}
        assert differences(after_one, snapshot(db, cfg.keyspace)) == {}
    finally:
        schema.apply(cluster_session, cfg)


def test_cleanup_twice_without_an_answer(airflow_conn, db, tmp_path, monkeypatch):
    """Gates pass, the approval is only marked (no person answered): both runs stop before the
    archive, and the database is as after one."""
    cfg = airflow_conn
    monkeypatch.setenv("TM_REPORT_DIR", str(tmp_path / "reports"))
    prepare(db, cfg, trades=500)
    conf = {**WHO, "acknowledge_rejects": "the two generated rejects stay in the archive"}
    one, _ = twice(db, cfg, "user_trades_cleanup", conf, expect="failed", mark_success_pattern="approve")
    assert one["settled_trades"] is not None
