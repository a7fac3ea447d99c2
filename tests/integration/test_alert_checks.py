"""The alert checks that need no Airflow, on the real node: a range that stops checkpointing (the
copier's stall watch over the ledger) and a dual-write failure rate above the limit (the
verification's heal step over dual_write_retries), each told to the notifier once."""
from __future__ import annotations

from datetime import timedelta

import pytest
from cassandra import OperationTimedOut
from conftest import load_trades

from trade_migration.backfill import copier, plan
from trade_migration.core.clock import now, now_micros
from trade_migration.core.notify import Notice
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.dual_write.retries import WRITE, RetryLog
from trade_migration.state.ledger import DONE, RUNNING, Ledger, RangeState, silent_for, stalled
from trade_migration.verify import phase

TOLD: list[Notice] = []


def told(notice: Notice) -> None:
    """TM_NOTIFIER for these tests."""
    TOLD.append(notice)


@pytest.fixture
def notices(monkeypatch):
    TOLD.clear()
    monkeypatch.setenv("TM_NOTIFIER", f"{__name__}:told")
    return TOLD


def test_stalled_is_running_with_an_old_checkpoint():
    at = now()
    fresh = RangeState(1, 2, status=RUNNING, started_at=at - timedelta(hours=1), updated_at=at - timedelta(seconds=5))
    old = RangeState(3, 4, status=RUNNING, started_at=at - timedelta(seconds=61))       # no checkpoint yet
    done = RangeState(5, 6, status=DONE, updated_at=at - timedelta(hours=2))
    naive = RangeState(7, 8, status=RUNNING, updated_at=(at - timedelta(seconds=90)).replace(tzinfo=None))  # driver's
    assert [rs.range_start for rs in stalled([fresh, old, done, naive], at=at, after_s=60)] == [3, 7]
    assert silent_for(done, at) is None and round(silent_for(naive, at)) == 90


def test_a_throttled_copy_is_reported_stalled_once_per_range(notices, monkeypatch, db, cfg):
    """25 rows/s and 50-row pages: a checkpoint every 2 s, longer than the 0.5 s allowed."""
    monkeypatch.setenv("TM_STALL_AFTER_S", "0.5")
    load_trades(db, cfg, 200, seed=31)
    ledger = Ledger(db, cfg, "slow")
    plan.ensure_ledger(db, cfg, ledger, 2)
    result = copier.run_batch(db, cfg, "slow", [TokenRange(MIN_TOKEN, MAX_TOKEN)],
                              copier.Options(fetch_size=50, rows_per_second=25, run_id="r-slow", dag_id="d"))
    assert result["rows_read"] == 200
    labels = sorted(rs.label for rs in ledger.load())
    assert sorted(n.details["range"] for n in notices) == labels              # each range once, every attempt
    for n in notices:
        assert (n.details["alert"], n.details["phase"], n.details["run_id"], n.details["dag_id"]) == (
            "range_stalled", "backfill", "r-slow", "d")
        assert n.details["stalled_s"] >= 0.5 and n.details["error"].startswith("no checkpoint for ")  # 0.1 s steps


def test_a_copy_that_keeps_checkpointing_is_not_reported(notices, monkeypatch, db, cfg):
    monkeypatch.setenv("TM_STALL_AFTER_S", "30")
    load_trades(db, cfg, 200, seed=37)
    plan.ensure_ledger(db, cfg, Ledger(db, cfg, "quick"), 2)
    copier.run_batch(db, cfg, "quick", [TokenRange(MIN_TOKEN, MAX_TOKEN)], copier.Options(fetch_size=50))
    assert notices == []


def test_the_dual_write_failure_rate_alerts_above_the_limit(notices, monkeypatch, db, cfg):
    retries = RetryLog(db, cfg)
    for trade_id in range(30):
        retries.record(trade_id, now_micros(), WRITE, (), OperationTimedOut(errors="planted"))
    monkeypatch.setenv("TM_DUAL_WRITE_ALERT_WINDOW_S", "3600")
    monkeypatch.setenv("TM_DUAL_WRITE_ALERT_PER_HOUR", "30")      # 30 in the last hour: not above
    assert phase.check_dual_writes(db, cfg, dag_id="user_trades_verify", run_id="r1") == {
        "pending": 30, "recorded": 30, "per_hour": 30.0, "alerted": False}
    assert notices == []
    monkeypatch.setenv("TM_DUAL_WRITE_ALERT_PER_HOUR", "29.5")
    assert phase.check_dual_writes(db, cfg, dag_id="user_trades_verify", run_id="r2")["alerted"] is True
    [n] = notices
    assert tuple(n.details[k] for k in ("alert", "dag_id", "run_id", "phase", "recorded")) == (
        "dual_write_failures", "user_trades_verify", "r2", "dual_write", 30)
    assert n.subject == "user_trades dual writes failing: 30.0 per hour"
