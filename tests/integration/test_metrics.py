"""StatsD metrics of a real backfill, caught by a UDP listener: the rows_written counter, sent per
checkpointed page from the command line's process, adds up to the ledger's rows written."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import load_trades, mark_done
from statsd_listener import StatsdListener

from trade_migration.core import metrics
from trade_migration.state.ledger import DONE, Ledger

N = 3000
SPLITS = 8


@pytest.fixture
def statsd(monkeypatch):
    listener = StatsdListener()
    monkeypatch.setenv("TM_STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("TM_STATSD_PORT", str(listener.port))
    yield listener
    listener.stop()


def test_the_command_line_backfill_sends_rows_written_as_pages_are_acknowledged(statsd, db, cfg):
    plan = load_trades(db, cfg, N, seed=17)
    mark_done(db, cfg, "create_table", "dual_write")
    env = {**os.environ, "TM_KEYSPACE": cfg.keyspace}
    done = subprocess.run([sys.executable, "-m", "trade_migration.backfill_cli", "--backfill-id", "metered",
                           "--splits", str(SPLITS), "--fetch-size", "100"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    ledger = Ledger(db, cfg, "metered").load()
    assert {rs.status for rs in ledger} == {DONE}
    written = sum(rs.rows_written for rs in ledger)
    assert written == plan.user_trade_rows                     # the ledger is right (an exact backfill)
    sums = statsd.counters()
    assert sums["trade_migration.backfill.rows_written"] == written
    assert sums["trade_migration.backfill.rows_read"] == sum(rs.rows_read for rs in ledger) == N
    assert sums["trade_migration.backfill.rows_rejected"] == sum(rs.rows_rejected for rs in ledger)
    assert sums["trade_migration.backfill.ranges_done"] == len(ledger)
    # sent page by page (100-row pages, about 375 trades per range), not once at the end
    sends = [v for name, v, _ in statsd.lines() if name == "trade_migration.backfill.rows_written"]
    assert len(sends) >= N // 100 - SPLITS
    assert (sums["trade_migration.phase.backfill.running"], sums["trade_migration.phase.backfill.completed"]) == (1, 1)
    gauges = statsd.gauges()
    assert gauges["trade_migration.backfill.ranges.done"] == len(ledger)
    assert gauges["trade_migration.backfill.ranges.running"] == 0
    assert gauges["trade_migration.backfill.rows_per_second"] > 0
    assert all(name.startswith("trade_migration.") for name, _, _ in statsd.lines())


def test_metrics_are_off_without_a_host_and_never_fail_the_work(monkeypatch):
    monkeypatch.delenv("TM_STATSD_HOST", raising=False)
    assert metrics.client() is None
    metrics.incr("backfill.rows_written", 5)                   # a no-op, no error
    monkeypatch.setenv("TM_STATSD_HOST", "no-such-host.invalid")
    assert metrics.client() is None                            # logged once, then off for that host
    metrics.gauge("backfill.ranges.done", 1)
