"""The backfill's per-range ledger: what is done, where each range stopped, and why it failed.

Rows live in backfill_ranges under one backfill_id, so any process (a retried task, a rerun,
the UI page, an engineer with cqlsh) sees the same progress.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cassandra import OperationTimedOut, WriteTimeout
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import BatchStatement

from trade_migration.core.clock import now, utc
from trade_migration.core.config import Config, identifier
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import chunked
from trade_migration.core.tokens import TokenRange, divide
from trade_migration.statements.backfill_ranges import (
    ledger_checkpoint,
    ledger_finish,
    ledger_insert_if_absent,
    ledger_reset,
    ledger_select,
    ledger_shrink,
    ledger_start,
)
from trade_migration.statements.backfill_ranges import (
    ledger_ids as ledger_ids_cql,
)

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
PLAN_ATTEMPTS = 5
PLAN_BATCH = 40   # ledger rows per conditional batch (~4 KiB, under the node's batch size warning)
PLAN_RETRY = (WriteTimeout, OperationTimedOut)   # a compare-and-set whose outcome is unknown


@dataclass
class RangeState:
    range_start: int
    range_end: int
    parent_start: int | None = None
    status: str = PENDING
    checkpoint: int | None = None
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    attempts: int = 0
    last_error: str | None = None
    resplit: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def token_range(self) -> TokenRange:
        return TokenRange(self.range_start, self.range_end)

    @property
    def label(self) -> str:
        return self.token_range.label

    @property
    def resume_from(self) -> int:
        return self.range_start if self.checkpoint is None else self.checkpoint

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Ledger:
    def __init__(self, session: Session, config: Config, backfill_id: str):
        self.session = session
        self.ks = config.keyspace
        self.cl = config.write_cl
        self.backfill_id = identifier(backfill_id, what="backfill_id")

    def _stmt(self, cql: str):
        return prepared(self.session, cql, consistency=self.cl)

    def load(self) -> list[RangeState]:
        rows = self.session.execute(self._stmt(ledger_select(self.ks)), (self.backfill_id,))
        out = []
        for r in rows:
            out.append(RangeState(**{k: getattr(r, k) for k in RangeState.__dataclass_fields__}))
            for counter in ("rows_read", "rows_written", "rows_rejected", "attempts"):
                setattr(out[-1], counter, getattr(out[-1], counter) or 0)
            out[-1].resplit = bool(out[-1].resplit)
        return out

    def plan(self, ranges: list[TokenRange], *, parent_start: int | None = None) -> None:
        """Create ranges that are not in the ledger yet; existing ones keep their progress.

        The inserts are compare-and-set rounds on one partition, which serialise on its Paxos
        state: PLAN_BATCH rows per round in a conditional batch (one round per row made 8,192
        ranges take tens of seconds). A batch applies only if none of its rows exists, so the
        rows of one that did not apply (or timed out) go one by one, a few at a time; one that
        times out is sent again (IF NOT EXISTS makes that safe) before the error is raised.
        """
        stmt = prepared(self.session, ledger_insert_if_absent(self.ks))
        rows = [(self.backfill_id, r.start, r.end, parent_start, r.start, now()) for r in ranges]
        params = [p for chunk in chunked(rows, PLAN_BATCH) if not self._insert_all(stmt, chunk) for p in chunk]
        if not params:
            return
        for attempt in range(PLAN_ATTEMPTS):
            results = execute_concurrent_with_args(self.session, stmt, params, concurrency=4,
                                                   raise_on_first_error=False)
            failed = [(p, res) for p, (ok, res) in zip(params, results, strict=True) if not ok]
            if not failed:
                return
            if attempt + 1 == PLAN_ATTEMPTS or not all(isinstance(res, PLAN_RETRY) for _, res in failed):
                raise failed[0][1]
            params = [p for p, _ in failed]

    def _insert_all(self, stmt, rows: list[tuple]) -> bool:
        """Whether one conditional batch created all these rows (none of them existed)."""
        batch = BatchStatement()
        for row in rows:
            batch.add(stmt, row)
        try:
            return self.session.execute(batch).was_applied
        except PLAN_RETRY:
            return False

    def start(self, rs: RangeState) -> None:
        rs.attempts += 1
        rs.status, rs.started_at = RUNNING, now()
        self.session.execute(self._stmt(ledger_start(self.ks)),
                             (rs.attempts, rs.started_at, rs.started_at, self.backfill_id, rs.range_start))

    def checkpoint(self, rs: RangeState) -> None:
        self.session.execute(self._stmt(ledger_checkpoint(self.ks)),
                             (rs.checkpoint, rs.rows_read, rs.rows_written, rs.rows_rejected, now(),
                              self.backfill_id, rs.range_start))

    def finish(self, rs: RangeState, status: str, *, error: str | None = None,
               resplit: bool = False) -> None:
        rs.status, rs.last_error, rs.resplit = status, error, resplit
        rs.finished_at = now() if status == DONE else rs.finished_at
        self.session.execute(self._stmt(ledger_finish(self.ks)),
                             (status, rs.checkpoint, rs.rows_read, rs.rows_written, rs.rows_rejected,
                              error, resplit, rs.finished_at, now(), self.backfill_id, rs.range_start))

    def resplit(self, rs: RangeState, pieces: int = 4) -> list[RangeState]:
        """Cut what is left of a timed-out range, (checkpoint, end], into `pieces` ranges.

        The range keeps its row (and its checkpoint) and shrinks to the first piece; the other
        pieces become new rows that name it as their parent_start.
        """
        first, *rest = divide(TokenRange(rs.resume_from, rs.range_end), pieces)
        self.plan(rest, parent_start=rs.range_start)
        note = f"re-split into {1 + len(rest)} ranges after a timeout"
        self.session.execute(self._stmt(ledger_shrink(self.ks)),
                             (first.end, note, now(), self.backfill_id, rs.range_start))
        rs.range_end, rs.resplit, rs.status, rs.last_error = first.end, False, PENDING, note
        return [rs] + [RangeState(c.start, c.end, parent_start=rs.range_start, checkpoint=c.start)
                       for c in rest]

    def reset(self, states: list[RangeState]) -> None:
        """Start ranges again from their first token (an explicit on-call rerun)."""
        stmt = self._stmt(ledger_reset(self.ks))
        for rs in states:
            rs.status, rs.checkpoint, rs.rows_read, rs.rows_written, rs.rows_rejected = (
                PENDING, rs.range_start, 0, 0, 0)
            self.session.execute(stmt, (rs.range_start, now(), self.backfill_id, rs.range_start))


def within(states: list[RangeState], spans: list[TokenRange]) -> list[RangeState]:
    """Ledger ranges lying inside any of the spans (a batch's original splits)."""
    return [s for s in states if any(sp.start <= s.range_start and s.range_end <= sp.end for sp in spans)]


def silent_for(rs: RangeState, at: datetime) -> float | None:
    """Seconds since a running range last wrote its checkpoint (or started); None if not running."""
    last = utc(rs.updated_at or rs.started_at)
    return (at - last).total_seconds() if rs.status == RUNNING and last is not None else None


def stalled(states: list[RangeState], *, at: datetime, after_s: float) -> list[RangeState]:
    """Ranges the ledger shows running with no checkpoint for more than `after_s` seconds: a copier
    stuck in a page, or one that died without recording it (the status page can show these too)."""
    return [rs for rs in states if (silent_for(rs, at) or 0) > after_s]


def ledger_ids(session: Session, config: Config) -> list[str]:
    """Every backfill ledger's id, sorted."""
    rows = session.execute(prepared(session, ledger_ids_cql(config.keyspace), consistency=config.read_cl))
    return sorted(r.backfill_id for r in rows)
