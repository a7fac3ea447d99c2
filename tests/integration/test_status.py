"""The migration page's data (trade_migration.status) and HTML, against the real node.

A planted ledger of 5,000 ranges must come back counted by status, with the exact slowest and
failed ranges; the page's gates must be exactly gates.evaluate's (the page composes them from
one read of each table, so a gate added to evaluate and not here fails this test); days
remaining count down from the read_path switch.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cleanup_state import prepare, utcnow
from conftest import mark_done
from testkit import synthetic_ledger

from trade_migration.cleanup import gates
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange, divide
from trade_migration.state import phases
from trade_migration.ui import status, status_page

N = 5000
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_a_ledger_of_5000_ranges_is_summarised_exactly(db, cfg):
    synthetic_ledger.plant(db, cfg, "big", N, at=AT)
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE)

    got = status.migration_status(db, cfg, backfill_id="big", at=AT + timedelta(hours=1))
    live_keys = ("rows_per_s", "eta_s", "share_read", "pass_started_at", "stalled")
    live = {k: got["backfill"][k] for k in live_keys}

    labels = [r.label for r in divide(TokenRange(MIN_TOKEN, MAX_TOKEN), N)]
    digit = [i % 10 for i in range(N)]
    done = [i for i in range(N) if digit[i] < 7]
    failed = [i for i in range(N) if digit[i] == 9]
    not_pending = [i for i in range(N) if digit[i] != 8]
    # done range i took 500 + (i * 7919 % 5000) * 10 ms: the slowest ten, longest first
    slowest = sorted(done, key=lambda i: -(i * 7919 % N))[:10]
    assert slowest[0] == 2321 and 2321 * 7919 % N == 4999    # the one that took 500 + 4999 * 10 ms
    assert {k: v for k, v in got["backfill"].items() if k not in live_keys} == {
        "backfill_id": "big",
        "ranges": 5000,
        "by_status": {"done": 3500, "failed": 500, "pending": 500, "running": 500},
        "complete": False,
        "done_share": 0.7,
        "rows_read": sum(1000 + i % 97 for i in not_pending),
        "rows_written": sum(2 * (1000 + i % 97 - i % 3) for i in not_pending),
        "rows_rejected": sum(i % 3 for i in not_pending),
        "attempts": 3500 * 1 + 500 * 2 + 500 * 3,
        "slowest": [{"range": labels[i], "seconds": (500 + (i * 7919 % N) * 10) / 1000, "rows_read": 1000 + i % 97}
                    for i in slowest],
        "failed": [{"range": labels[i], "error": f"WriteTimeout after 3 attempts (range {i})", "attempts": 3,
                    "parent": None} for i in failed[:20]],
        "failed_total": 500,
        "coverage_error": None,
    }
    assert got["backfill"]["slowest"][0]["seconds"] == 50.49
    # one pass: range 0 started 5,600 s before AT, ranges still run an hour after it; done ranges are 70%
    # of the ring and every running range has been silent for over TM_STALL_AFTER_S (900 s)
    rows = got["backfill"]["rows_read"]
    assert live["pass_started_at"] == AT - timedelta(seconds=N + 600)
    assert live["rows_per_s"] == round(rows / (N + 600 + 3600), 1)
    assert live["share_read"] == 0.7
    assert live["eta_s"] == round(rows * 0.3 / 0.7 / (rows / (N + 600 + 3600)))
    running = [i for i in range(N) if digit[i] == 7]
    assert [s["range"] for s in live["stalled"]] == [labels[i] for i in running]
    assert live["stalled"][0]["silent_s"] == 3600 + N - running[0] + 600
    assert got["ledgers"] == ["big"] and got["stall_after_s"] == 900.0
    assert [(p["phase"], p["status"]) for p in got["phases"]] == [
        ("create_table", "completed"), ("dual_write", "completed"), ("read_path", None), ("backfill", None),
        ("verify", None), ("cleanup", None)]
    assert {k: (f["value"], f["version"]) for k, f in got["flags"].items()} == {
        "dual_write": ("off", 0), "read_path": ("settled_trades", 0)}
    assert got["parity"] == []
    assert {g["name"]: g["passed"] for g in got["cleanup"]["gates"]} == {
        "order": False, "read_path": False, "writer": False, "parity": False, "backfill": False, "rejects": True}
    assert (got["cleanup"]["passed"], got["cleanup"]["finished"],
            got["cleanup"]["days_remaining"]) == (False, False, None)

    page = status_page.render(got)
    assert "3,500 of 5,000 ranges done (70.0%)" in page
    assert "500 failed ranges (the first 20 in token order)" in page
    assert f"<code>{labels[slowest[0]]}</code></td><td class=n>50.490</td>" in page
    # header + body rows per table: phases, flags, counts, slowest, stalled, failed, gates, schedules, audit
    assert page.count("<tr>") == 1 + 6 + 1 + 2 + 1 + 4 + 1 + 10 + 1 + 500 + 1 + 20 + 1 + 6 + 1 + 2 + 1 + 2
    assert page.count('action="actions/rerun"') == 500 + 20
    assert "500 ranges of backfill big stalled" in page and "500 failed ranges in backfill big" in page
    assert "no parity runs yet" in page and "reads are not on user_trades yet" in page


def test_the_page_gates_are_cleanups_own(db, cfg):
    prepare(db, cfg, trades=500, read_days=40)
    at = utcnow()

    got = status.migration_status(db, cfg, at=at)
    want = gates.evaluate(db, cfg, gates.GateOptions(), at=at)

    assert got["cleanup"]["gates"] == [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in want.gates]
    # the generated trades include rejects that nobody acknowledged: that gate alone fails
    assert [g["name"] for g in got["cleanup"]["gates"] if not g["passed"]] == ["rejects"]
    assert (got["cleanup"]["days_remaining"], got["cleanup"]["passes_at"]) == (0.0, None)
    assert [p["status"] for p in got["phases"]] == ["completed"] * 5 + [None]
    assert {k: (f["value"], f["changed_by"]) for k, f in got["flags"].items()} == {
        "dual_write": ("new_only", "pytest"), "read_path": ("user_trades", "pytest")}
    assert [(r["status"], r["started_at"]) for r in got["parity"]] == [
        ("clean", r.started_at.replace(tzinfo=UTC)) for r in sorted(
            db.execute(f"SELECT started_at, status FROM {cfg.keyspace}.parity_runs"), key=lambda r: r.started_at)]
    assert len(got["parity"]) == 7
    backfill = got["backfill"]
    assert (backfill["ranges"], backfill["by_status"], backfill["complete"], backfill["rows_read"]) == (
        1, {"done": 1}, True, 500)


@pytest.mark.parametrize("read_days, remaining", [(25, 5.0), (29.5, 0.5)])
def test_days_remaining_count_down_from_the_switch(db, cfg, read_days, remaining):
    prepare(db, cfg, trades=100, read_days=read_days)
    got = status.migration_status(db, cfg, at=utcnow())
    reads = next(g for g in got["cleanup"]["gates"] if g["name"] == "read_path")
    assert reads["passed"] is False
    assert got["cleanup"]["days_remaining"] == remaining
    page = status_page.render(got)
    assert f"{remaining:.1f} days remaining of the 30 days of reads" in page
