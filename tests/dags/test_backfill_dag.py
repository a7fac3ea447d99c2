"""user_trades_backfill end to end through dag.test(): mapped ranges, order guard, rerun."""
import pytest
from airflow.sdk.exceptions import ParamValidationError
from conftest import dagbag, load_trades, mark_done

from trade_migration.state import phases
from trade_migration.state.ledger import DONE, FAILED, Ledger

N = 8000


@pytest.fixture(scope="module")
def dag():
    return dagbag().get_dag("user_trades_backfill")


def ti_states(run):
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def test_refuses_to_start_before_dual_write(dag, db, airflow_conn):
    mark_done(db, airflow_conn, "create_table")
    run = dag.test(run_conf={"backfill_id": "guard"})
    assert run.state == "failed"
    assert ti_states(run)[("plan_ranges", -1)] == "failed"
    assert Ledger(db, airflow_conn, "guard").load() == []


def test_mapped_backfill_then_rerun_writes_nothing(dag, db, airflow_conn):
    plan = load_trades(db, airflow_conn, N, seed=5)
    mark_done(db, airflow_conn, "create_table", "dual_write")
    run = dag.test(run_conf={"backfill_id": "dagrun", "splits": 12, "parallelism": 3})
    assert run.state == "success"
    states = ti_states(run)
    assert sorted(k[1] for k in states if k[0] == "copy_ranges") == [0, 1, 2]
    names = {ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "copy_ranges"}
    assert all(n.startswith("(") and "] x4" in n for n in names), names
    count = db.execute(f"SELECT count(*) FROM {airflow_conn.keyspace}.user_trades").one()[0]
    assert count == plan.user_trade_rows
    phase = db.execute(f"SELECT status FROM {airflow_conn.keyspace}.migration_phases WHERE phase='backfill'").one()
    assert phase.status == "completed"

    again = dag.test(run_conf={"backfill_id": "dagrun"})
    assert again.state == "success"
    assert [k for k in ti_states(again) if k[0] == "copy_ranges"] in ([], [("copy_ranges", -1)])
    assert db.execute(f"SELECT count(*) FROM {airflow_conn.keyspace}.user_trades").one()[0] == count


def test_bad_params_are_refused_before_anything_runs(dag, db, airflow_conn):
    for conf in ({"backfill_id": "Robert'); DROP TABLE"}, {"parallelism": 0}, {"fetch_size": "many"}):
        with pytest.raises(ParamValidationError):
            dag.test(run_conf=conf)


def test_a_task_failing_for_good_records_the_phase_failed(dag, db, airflow_conn, monkeypatch):
    """Without the teardown the phase would stay 'running' after the run failed."""
    from trade_migration.backfill import copier
    from trade_migration.core.errors import ConfigError

    def planted(*args, **kwargs):
        raise ConfigError("planted: a failure no retry can fix")

    mark_done(db, airflow_conn, "create_table", "dual_write")
    monkeypatch.setattr(copier, "run_batch", planted)
    run = dag.test(run_conf={"backfill_id": "doomed", "splits": 4, "parallelism": 2})
    assert run.state == "failed"   # the teardown's success does not hide the failure
    states = ti_states(run)
    assert (states[("copy_ranges", 0)], states[("copy_ranges", 1)], states[("summarize", -1)],
            states[("record_unfinished", -1)]) == ("failed", "failed", "upstream_failed", "success")
    state = phases.State(db, airflow_conn)
    phase = state.phase(phases.BACKFILL)
    assert (phase.status, phase.run_id) == ("failed", run.run_id)
    [last] = state.audit_log(1)
    assert (last.action, last.reason) == ("failed", "a task of the run failed; see its log")


def test_a_rerun_of_one_failed_range_ends_green_and_names_what_is_still_open(dag, db, airflow_conn):
    """The 3 a.m. rerun: one range of a ledger with two failed ones. Its own range done, the run is
    green, the summary names the other failed range, and verification is not announced; the run
    of everything left then completes the ledger and announces it."""
    load_trades(db, airflow_conn, N, seed=7)
    mark_done(db, airflow_conn, "create_table", "dual_write")
    assert dag.test(run_conf={"backfill_id": "oncall", "splits": 8, "parallelism": 2}).state == "success"
    ledger = Ledger(db, airflow_conn, "oncall")
    first, second = sorted(ledger.load(), key=lambda s: s.range_start)[2:4]
    for rs in (first, second):
        ledger.finish(rs, FAILED, error="planted failure")

    one = dag.test(run_conf={"backfill_id": "oncall", "ranges": [first.label]})
    assert one.state == "success"
    states = ti_states(one)
    assert (states[("summarize", -1)], states[("announce_complete", -1)]) == ("success", "skipped")
    report = next(ti for ti in one.get_task_instances() if ti.task_id == "summarize").xcom_pull(task_ids="summarize")
    total = len(ledger.load())
    assert report["complete"] is False and report["by_status"] == {DONE: total - 1, FAILED: 1}
    assert f"failed: {second.label}" in report["still_open"]
    assert {s.range_start: s.status for s in ledger.load()}[first.range_start] == DONE

    rest = dag.test(run_conf={"backfill_id": "oncall", "ranges": None})   # dag.test keeps the last conf
    assert rest.state == "success" and ti_states(rest)[("announce_complete", -1)] == "success"
    assert all(s.status == DONE for s in ledger.load())
