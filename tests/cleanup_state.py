"""A migration state in which every cleanup gate passes, and the ways to break one gate at a time.

Shared by the cleanup's integration, DAG and end-to-end tests. Everything is written through the
project's own statements, the way the earlier phases write it; only times are set back, with the
flags' own compare-and-set, so the 30 days and the parity runs' ages are what a test says.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import load_trades, mark_done
from testkit import generator

from trade_migration.backfill import copier
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, READ_PATH, Flags
from trade_migration.state.ledger import Ledger
from trade_migration.statements.flags import flag_compare_and_set
from trade_migration.statements.parity_runs import parity_insert
from trade_migration.statements.settled_trades import decode_scanned_trade, scan_settled

RING = [TokenRange(MIN_TOKEN, MAX_TOKEN)]


def utcnow() -> datetime:
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)   # as stored: milliseconds


def set_flag(db, cfg, name: str, value: str, *, at: datetime | None = None) -> None:
    """Set a flag as an operator would, then (if `at` is given) move its changed_at back to `at`."""
    flag = Flags(db, cfg).set(name, value, actor="pytest", reason=f"test sets {name}={value}")
    if at is not None:
        stmt = db.prepare(flag_compare_and_set(cfg.keyspace))
        applied = db.execute(stmt, (value, flag.version + 1, at, "pytest", "backdated by the test", name,
                                    value, flag.version)).one()[0]
        assert applied


def add_parity_run(db, cfg, started_at: datetime, *, status: str = "clean", run_id: str | None = None,
                   missing: int = 0, repaired: int = 0) -> None:
    db.execute(db.prepare(parity_insert(cfg.keyspace)),
               (started_at, run_id or f"scheduled__{started_at:%Y-%m-%dT%H%M}", "sampled", 7, 4, 64, 1000,
                missing, 0, 0, 0, repaired, status, 1.5, None, 0, None, None, None))


def prepare(db, cfg, *, trades: int = 2000, seed: int = 5, read_days: float = 40, parity: int = 7,
            backfill_id: str = "main", verify_done: bool = True) -> generator.Plan:
    """settled_trades with `trades` generated trades, backfilled under `backfill_id`; reads on
    user_trades for `read_days`; dual_write new_only for a day; `parity` clean nightly runs, the
    newest 2 hours old; phases up to verify completed. Returns the generator's plan."""
    plan = load_trades(db, cfg, trades, seed)
    mark_done(db, cfg, phases.CREATE_TABLE, phases.DUAL_WRITE, phases.READ_PATH, phases.BACKFILL)
    if verify_done:
        mark_done(db, cfg, phases.VERIFY)
    Ledger(db, cfg, backfill_id).plan(RING)
    copier.run_batch(db, cfg, backfill_id, RING)
    now = utcnow()
    set_flag(db, cfg, READ_PATH, "user_trades", at=now - timedelta(days=read_days))
    set_flag(db, cfg, DUAL_WRITE, "on", at=now - timedelta(days=read_days + 5))
    set_flag(db, cfg, DUAL_WRITE, NEW_ONLY, at=now - timedelta(days=1))
    for night in range(parity):
        add_parity_run(db, cfg, now - timedelta(days=night, hours=2))
    return plan


def settled_rows(db, cfg) -> set[tuple]:
    """Every settled_trades row with its newest write time, as the archive stores it."""
    rows = set()
    for row in db.execute(db.prepare(scan_settled(cfg.keyspace)), (MIN_TOKEN, MAX_TOKEN)):
        scanned = decode_scanned_trade(row)
        rows.add((*scanned.trade, scanned.written or None))
    return rows
