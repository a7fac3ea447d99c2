"""A backfill ledger of any size in known states, for the status page's test and benchmark.

Range i of n (the ring cut into n equal ranges, in token order) is done, running, pending or
failed by i % 10, and a done range took a distinct number of milliseconds, so which ranges are
the slowest is known without reading them back. Written with plain upserts: planting 5,000
ranges takes seconds, where planning them with compare-and-set takes far longer.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import UNSET_VALUE

from testkit.statements import ledger_plant
from trade_migration.core.config import Config, identifier
from trade_migration.core.prepared import prepared
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange, divide
from trade_migration.state.ledger import DONE, FAILED, PENDING, RUNNING, RangeState

STATUS_BY_DIGIT = (DONE,) * 7 + (RUNNING, PENDING, FAILED)
ATTEMPTS = {DONE: 1, RUNNING: 2, PENDING: 0, FAILED: 3}


def status_of(i: int) -> str:
    return STATUS_BY_DIGIT[i % 10]


def millis_of(i: int, n: int) -> int:
    """How long done range i took: distinct for every i < n when n is coprime with 7919."""
    return 500 + (i * 7919) % n * 10


def rows_of(i: int) -> tuple[int, int, int]:
    """(read, written, rejected): two user_trades rows per converted trade."""
    read, rejected = 1000 + i % 97, i % 3
    return read, 2 * (read - rejected), rejected


def states(n: int, *, at: datetime) -> list[RangeState]:
    """The ledger of n ranges as planted, ranges started one second apart ending near `at`."""
    out = []
    for i, rng in enumerate(divide(TokenRange(MIN_TOKEN, MAX_TOKEN), n)):
        status = status_of(i)
        read, written, rejected = rows_of(i) if status != PENDING else (0, 0, 0)
        started = at - timedelta(seconds=n - i + 600) if status != PENDING else None
        finished = started + timedelta(milliseconds=millis_of(i, n)) if status == DONE else None
        out.append(RangeState(
            range_start=rng.start, range_end=rng.end, status=status,
            checkpoint=rng.end if status == DONE else rng.start, rows_read=read, rows_written=written,
            rows_rejected=rejected, attempts=ATTEMPTS[status],
            last_error=f"WriteTimeout after 3 attempts (range {i})" if status == FAILED else None,
            started_at=started, finished_at=finished, updated_at=finished or started or at))
    if len(out) != n:
        raise ValueError(f"the ring cannot be cut into {n} ranges")
    return out


def plant(session: Session, config: Config, backfill_id: str, n: int, *, at: datetime) -> list[RangeState]:
    """Write states(n, at=at) under backfill_id (adding to, or overwriting, what is there)."""
    planted = states(n, at=at)
    stmt = prepared(session, ledger_plant(config.keyspace), consistency=config.write_cl)
    bid = identifier(backfill_id, what="backfill_id")
    params = [tuple(UNSET_VALUE if v is None else v for v in (   # unset, not null: no tombstones
        bid, s.range_start, s.range_end, s.parent_start, s.status, s.checkpoint, s.rows_read, s.rows_written,
        s.rows_rejected, s.attempts, s.last_error, s.resplit, s.started_at, s.finished_at, s.updated_at))
        for s in planted]
    for ok, res in execute_concurrent_with_args(session, stmt, params, concurrency=64, raise_on_first_error=False):
        if not ok:
            raise res
    return planted
