"""Backfill one token range: paged scan, convert, write with the source write time, checkpoint.

Every page is checkpointed in the ledger once its writes (and all earlier ones) are acknowledged,
so a retry or a rerun resumes where the range stopped. Writes carry USING TIMESTAMP of the
source row's newest write (rejects too), so a backfill can never overwrite a newer dual-write or
correction, nor bring back a row or reject a newer bust or correction deleted. Null columns are left unset (no
tombstones); a source row with a TTL is refused or keeps its TTL (backfill/ttl.py).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from trade_migration.backfill.stall_watch import StallWatch
from trade_migration.backfill.ttl import PRESERVE, REFUSE, check_policy, mixed, refused
from trade_migration.core import metrics
from trade_migration.core.alerts import note_range
from trade_migration.core.binding import Binder
from trade_migration.core.clock import now
from trade_migration.core.config import Config
from trade_migration.core.convert import Reject, convert, raw_values
from trade_migration.core.errors import RangeTimeout
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import READ_TIMEOUTS, paged
from trade_migration.core.settings import (
    BATCH_PARTITIONS,
    BATCH_ROWS,
    FETCH_SIZE,
    IN_FLIGHT,
    PAGE_TIMEOUT_S,
    PARTITION_BATCH_ROWS,
)
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import MIN_RESPLIT_WIDTH
from trade_migration.core.writes import TRANSIENT as TRANSIENT_ERRORS
from trade_migration.core.writes import BoundedWriter
from trade_migration.state.ledger import DONE, FAILED, PENDING, RUNNING, Ledger, RangeState, within
from trade_migration.statements.rejected_trades import reject_insert_at
from trade_migration.statements.settled_trades import decode_scanned_trade, expiries_differ, scan_settled
from trade_migration.statements.user_trades import insert_user_trade, insert_user_trade_ttl, insert_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    fetch_size: int = FETCH_SIZE
    max_in_flight: int = IN_FLIGHT
    rows_per_second: float = 0.0      # source rows per second for this process; 0 = unlimited
    page_timeout: float = PAGE_TIMEOUT_S   # client-side seconds per page request
    progress_every: float = 30.0      # seconds between progress log lines
    bypass_cache: bool = False        # ScyllaDB: scans do not evict the live working set
    ttl_policy: str = REFUSE          # a source row with a TTL: refuse (fail the range) or preserve it
    source: str = "backfill"
    run_id: str | None = None         # the run and DAG an alert of this copy names (none: the command line's)
    dag_id: str | None = None


@dataclass
class Totals:
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    ranges_done: int = 0
    tokens_done: int = 0
    tokens_total: int = 0
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        """Source rows read per second since this process started copying."""
        return self.rows_read / max(time.monotonic() - self.started, 1e-6)

    def line(self) -> str:
        took = max(time.monotonic() - self.started, 1e-6)
        rate = self.rate()
        frac = self.tokens_done / self.tokens_total if self.tokens_total else 1.0
        eta = took * (1 - frac) / frac if frac > 0 else float("inf")
        return (f"{self.rows_read:,} read, {self.rows_written:,} written, {self.rows_rejected:,} rejected,"
                f" {rate:,.0f} rows/s, {frac:.1%} of tokens, ETA {eta:,.0f}s")


def replica_groups(metadata, bound_by_partition) -> list[list[list]]:
    """Each partition's bound inserts, gathered by the replicas that own that partition: rows of one
    group can share an unlogged batch whose coordinator (token-aware) is a replica of every row, so
    the batch costs one request and no extra hop. Without a token map every partition is one group."""
    groups: dict[frozenset, list] = {}
    for rows in bound_by_partition:
        replicas = frozenset(metadata.get_replicas(rows[0].keyspace, rows[0].routing_key))
        groups.setdefault(replicas, []).append(rows)
    return list(groups.values())


def batches(partitions: list[list], *, batch_rows: int, batch_partitions: int, partition_rows: int) -> list[list]:
    """Rows of one replica group cut into batches: partitions with up to batch_rows rows share
    batches of at most batch_rows rows and batch_partitions partitions, a partition's rows together;
    a larger partition (a market maker's) takes batches of its own of up to partition_rows rows, as
    the node checks neither warn threshold on a single-partition batch (one mutation)."""
    out, current, parts = [], [], 0
    for rows in partitions:
        if len(rows) > batch_rows:
            out += [rows[i:i + partition_rows] for i in range(0, len(rows), partition_rows)]
            continue
        if current and (len(current) + len(rows) > batch_rows or parts == batch_partitions):
            out.append(current)
            current, parts = [], 0
        current += rows
        parts += 1
    if current:
        out.append(current)
    return out


def submit_batched(writer: BoundedWriter, insert: Binder, by_partition: dict, group, *, metadata, consistency: int,
                   batch_rows: int = BATCH_ROWS, batch_partitions: int = BATCH_PARTITIONS,
                   partition_rows: int = PARTITION_BATCH_ROWS) -> None:
    """A page's rows as unlogged batches, each within one replica set: as COPY FROM and the Spark
    connector write, a request per batch rather than per row. Each row keeps its own USING TIMESTAMP
    (and TTL) inside the batch."""
    bound_by_partition = ([insert.bind(p) for p in params] for params in by_partition.values())
    for partitions in replica_groups(metadata, bound_by_partition):
        for rows in batches(partitions, batch_rows=batch_rows, batch_partitions=batch_partitions,
                            partition_rows=partition_rows):
            if len(rows) == 1:
                writer.submit(rows[0], None, group)
                continue
            batch = BatchStatement(BatchType.UNLOGGED, consistency_level=consistency)
            for bound in rows:
                batch.add(bound)
            writer.submit(batch, None, group)


class _Counts(NamedTuple):
    """Rows read, written and rejected: up to a checkpoint, or carried over past the last one."""
    read: int = 0
    written: int = 0
    rejected: int = 0


class _Page:
    """A page's write group: once acknowledged, the checkpoint and the counts up to it."""
    __slots__ = ("checkpoint", "counts")

    def __init__(self) -> None:
        self.checkpoint, self.counts = None, _Counts()


class RangeCopier:
    """Copies ranges for one task; symbols and prepared statements are loaded once."""

    def __init__(self, session: Session, config: Config, ledger: Ledger, options: Options = Options()):
        self.session, self.config, self.ledger, self.opt = session, config, ledger, options
        ks = config.keyspace
        self.scan = prepared(session, scan_settled(ks, bypass_cache=options.bypass_cache),
                             consistency=config.read_cl, fetch_size=options.fetch_size)
        self.preserve_ttl = check_policy(options.ttl_policy) == PRESERVE
        insert = insert_user_trade_ttl if self.preserve_ttl else insert_user_trade
        self.insert = Binder(prepared(session, insert(ks), consistency=config.write_cl))
        self.reject = prepared(session, reject_insert_at(ks), consistency=config.write_cl)
        self.symbol_ids = load_symbol_ids(session, ks)
        self.totals = Totals()
        self._last_log = time.monotonic()

    def copy(self, rs: RangeState) -> RangeState:
        """Copy (checkpoint, end] of one range; the ledger row ends done, or failed with the error."""
        self.ledger.start(rs)
        began = time.monotonic()
        try:
            self._copy(rs)
        except READ_TIMEOUTS as exc:
            error = self._timed_out(rs, exc)
            metrics.incr("backfill.ranges_failed")
            raise note_range(RangeTimeout(f"range {rs.label}: {error}"), rs.label) from exc
        except Exception as exc:
            self.ledger.finish(rs, FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
            metrics.incr("backfill.ranges_failed")
            note_range(exc, rs.label)
            raise
        self.ledger.finish(rs, DONE)
        self.totals.ranges_done += 1
        metrics.incr("backfill.ranges_done")
        metrics.timing("backfill.range_seconds", (time.monotonic() - began) * 1000)
        return rs

    def _timed_out(self, rs: RangeState, exc: Exception) -> str:
        """Record the timeout: re-split before the next attempt while the range is wider than the
        floor, else failed with what to change (a retry with the same page timeout fails again)."""
        resplit = rs.range_end - rs.resume_from >= 2 * MIN_RESPLIT_WIDTH
        what = (f"timed out at token {rs.resume_from} ({type(exc).__name__}: {exc});"
                + (" re-split before its next attempt" if resplit else
                   " not re-split: it is at the minimum range size (1/8192 of the ring)")
                + f". If the node is not overloaded, page_timeout_s={self.opt.page_timeout:g} or"
                  f" fetch_size={self.opt.fetch_size} is the cause: rerun the range with a larger"
                  " page_timeout_s or a smaller fetch_size")
        self.ledger.finish(rs, FAILED, error=what[:2000], resplit=resplit)
        return what

    def _copy(self, rs: RangeState) -> None:
        writer = BoundedWriter(self.session, self.opt.max_in_flight)
        began, read_at_start = time.monotonic(), self.totals.rows_read
        carry = _Counts()   # rows after the last checkpoint, not yet in a group
        scan = paged(self.session, self.scan, (rs.resume_from, rs.range_end), timeout=self.opt.page_timeout)
        for rows, last in scan:   # the next page is read while this one is written
            carry = self._write_page(rs, rows, writer, carry, final=last)
            self._settle(rs, writer.completed())
            self._throttle(self.totals.rows_read - read_at_start, began)
            self._progress()
        self._settle(rs, writer.drain())

    def _write_page(self, rs: RangeState, rows, writer: BoundedWriter, carry: _Counts, final: bool) -> _Counts:
        """Submit a page's writes as one group that, once acknowledged, moves the checkpoint.

        Rows sharing the page's last token may continue on the next page, so the checkpoint
        stops just before that token and their counts carry over to the next group; a resumed
        scan re-reads them (writes are idempotent). Returns the counts carried over.
        """
        read, written, rejected = carry
        tail_token, tail = None, carry   # the counts before the page's last token
        group = _Page()
        writer.open_group(group)
        symbol_ids, preserve_ttl = self.symbol_ids, self.preserve_ttl
        by_partition: dict[tuple, list] = {}
        for row in rows:
            token, trade, writetime, ttl = decode_scanned_trade(row)
            if ttl is not None:
                if not preserve_ttl:
                    raise refused(trade.trade_id, ttl)
                if expiries_differ(row):
                    raise mixed(trade.trade_id)
            if token != tail_token:
                tail_token, tail = token, (read, written, rejected)
            out = convert(trade, symbol_ids)
            read += 1
            if isinstance(out, Reject):
                writer.submit(self.reject, (trade.trade_id, token, out.reason, raw_values(trade),
                                            self.opt.source, now(), writetime), group)
                rejected += 1
                continue
            for urow in out:
                params = insert_values(urow, writetime)
                by_partition.setdefault((urow.user_id, urow.symbol_id), []).append(
                    (*params, ttl or 0) if preserve_ttl else params)
            written += 2
        submit_batched(writer, self.insert, by_partition, group, metadata=self.session.cluster.metadata,
                       consistency=self.config.write_cl)
        self.totals.rows_read += read - carry.read
        self.totals.rows_written += written - carry.written
        self.totals.rows_rejected += rejected - carry.rejected
        if final:
            group.checkpoint, group.counts = rs.range_end, _Counts(read, written, rejected)
            carry = _Counts()
        elif tail_token is not None and tail != carry:
            tail = _Counts._make(tail)
            group.checkpoint, group.counts = tail_token - 1, tail
            carry = _Counts(read - tail.read, written - tail.written, rejected - tail.rejected)
        else:
            carry = _Counts(read, written, rejected)   # the whole page shares one token
        writer.close_group(group)
        return carry

    def _settle(self, rs: RangeState, groups: list) -> None:
        for page in groups:
            if page.checkpoint is None:
                continue
            self.totals.tokens_done += page.checkpoint - rs.resume_from
            rs.rows_read += page.counts.read
            rs.rows_written += page.counts.written
            rs.rows_rejected += page.counts.rejected
            rs.checkpoint = page.checkpoint
            self.ledger.checkpoint(rs)
            # sent once the ledger holds them: the metric never runs ahead of what a resume keeps
            metrics.counters("backfill", {"rows_read": page.counts.read, "rows_written": page.counts.written,
                                          "rows_rejected": page.counts.rejected})

    def _throttle(self, rows: int, began: float) -> None:
        if self.opt.rows_per_second > 0:
            ahead = rows / self.opt.rows_per_second - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)

    def _progress(self) -> None:
        if time.monotonic() - self._last_log >= self.opt.progress_every:
            self._last_log = time.monotonic()
            log.info("progress: %s", self.totals.line())
            metrics.gauge("backfill.rows_per_second", round(self.totals.rate()))

def ranges_by_status(states: list[RangeState]) -> None:
    """The gauges trade_migration.backfill.ranges.<status> of the whole ledger."""
    counts = dict.fromkeys((PENDING, RUNNING, DONE, FAILED), 0)
    for rs in states:
        if rs.status in counts:
            counts[rs.status] += 1
    metrics.gauges("backfill.ranges", counts)


def run_batch(session: Session, config: Config, backfill_id: str, spans: list, options: Options = Options(),
              *, resplit_pieces: int = 4) -> dict:
    """Run every unfinished ledger range inside `spans` (one mapped task's work).

    A range flagged after a timeout is re-split first. A failing range does not stop the others;
    the first failure is raised at the end so the task retries only what is left.
    """
    ledger = Ledger(session, config, backfill_id)
    states = within(ledger.load(), spans)
    work: list[RangeState] = []
    for rs in states:
        if rs.status == DONE:
            continue
        work += ledger.resplit(rs, resplit_pieces) if rs.resplit else [rs]
    copier = RangeCopier(session, config, ledger, options)
    copier.totals.tokens_total = sum(rs.range_end - rs.resume_from for rs in work)
    if not work:
        log.info("all %d ranges of this batch are already done: nothing to write", len(states))
    failures = []
    with StallWatch(ledger, spans, run_id=options.run_id, dag_id=options.dag_id):
        for rs in work:
            try:
                copier.copy(rs)
            except (RangeTimeout, *READ_TIMEOUTS, *TRANSIENT_ERRORS) as exc:
                log.warning("range %s failed (%s); continuing with the others", rs.label, exc)
                failures.append(exc)
    log.info("batch finished: %s", copier.totals.line())
    metrics.gauge("backfill.rows_per_second", round(copier.totals.rate()))
    ranges_by_status(ledger.load())
    if failures:
        raise failures[0]
    t = copier.totals
    return {"ranges": len(work), "rows_read": t.rows_read, "rows_written": t.rows_written,
            "rows_rejected": t.rows_rejected}
