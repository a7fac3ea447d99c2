"""Row counts of both tables per token range, many ranges at once.

One COUNT(*) over a whole table is a single coordinator walking the ring alone, and times out on
big tables; one COUNT(*) per range spreads the work over every replica. A range whose count times
out (a busy node drops or delays it) is counted again in pieces, as the backfill re-splits a range
whose page timed out, rather than failing the run. Verification counts both tables, the cleanup's
archive checks its files against these.
"""
from __future__ import annotations

import logging
from collections import deque

from cassandra.cluster import Session

from trade_migration.core.config import LEGACY_TABLE, TARGET_TABLE, Config
from trade_migration.core.errors import RangeTimeout
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import READ_TIMEOUTS
from trade_migration.core.settings import COUNTS_IN_FLIGHT, PAGE_TIMEOUT_S
from trade_migration.core.splits import ring_ranges
from trade_migration.core.tokens import MIN_RESPLIT_WIDTH, TokenRange, divide
from trade_migration.statements.settled_trades import count_settled_range
from trade_migration.statements.user_trades import count_user_trades_range
from trade_migration.verify.parity_run import FULL, Run, Tally

log = logging.getLogger(__name__)
RECOUNT_PIECES = 4


def settled_counts(session: Session, config: Config, ranges: list[TokenRange], *,
                   concurrency: int = COUNTS_IN_FLIGHT, timeout: float = PAGE_TIMEOUT_S) -> list[int]:
    """settled_trades rows in each range, in order."""
    stmt = prepared(session, count_settled_range(config.keyspace), consistency=config.read_cl)
    return _Counter(session, concurrency, timeout).counts([stmt], ranges)


def range_counts(session: Session, config: Config, ranges: list[TokenRange], *,
                 concurrency: int = COUNTS_IN_FLIGHT, timeout: float = PAGE_TIMEOUT_S) -> list[tuple[int, int]]:
    """(settled_trades rows, user_trades rows) in each range, in order."""
    ks = config.keyspace
    settled = prepared(session, count_settled_range(ks), consistency=config.read_cl)
    target = prepared(session, count_user_trades_range(ks), consistency=config.read_cl)
    values = _Counter(session, concurrency, timeout).counts([settled, target], ranges)
    return list(zip(values[:len(ranges)], values[len(ranges):], strict=True))


class _Counter:
    """COUNT(*)s of ranges, `concurrency` in flight, each given `timeout` seconds by the client (a
    count is one request however many pages the node reads for it)."""

    def __init__(self, session: Session, concurrency: int, timeout: float) -> None:
        self.session, self.concurrency, self.timeout = session, concurrency, timeout

    def counts(self, stmts: list, ranges: list[TokenRange]) -> list[int]:
        """Each statement's count of each range (statement by statement, range by range); a count
        that timed out is the sum of its range's pieces, counted the same way, down to
        MIN_RESPLIT_WIDTH (narrower than that, the range fails: RangeTimeout)."""
        work = [(stmt, rng) for stmt in stmts for rng in ranges]
        out = []
        for (stmt, rng), result in zip(work, self._results(work), strict=True):
            if isinstance(result, READ_TIMEOUTS):
                out.append(self._in_pieces(stmt, rng, result))
            elif isinstance(result, Exception):
                raise result
            else:
                out.append(result)
        return out

    def _results(self, work: list[tuple]) -> list:
        """Each count, or the error it ended with, in order. Not the driver's execute_concurrent:
        it sends every request without a client timeout."""
        results: list = []
        window: deque = deque()

        def settle() -> None:
            try:
                results.append(window.popleft().result().one()[0])
            except Exception as exc:   # noqa: BLE001 - judged by counts(), with the range it belongs to
                results.append(exc)

        for stmt, rng in work:
            if len(window) >= self.concurrency:
                settle()
            window.append(self.session.execute_async(stmt, (rng.start, rng.end), timeout=self.timeout))
        while window:
            settle()
        return results

    def _in_pieces(self, stmt, rng: TokenRange, error: Exception) -> int:
        what = f"{type(error).__name__}: {error}"
        if rng.width < 2 * MIN_RESPLIT_WIDTH:
            raise RangeTimeout(f"counting range {rng.label} timed out at the minimum range size (1/8192 of the"
                               f" ring) ({what})") from error
        log.warning("counting range %s timed out (%s); counting it again in %d pieces", rng.label, what,
                    RECOUNT_PIECES)
        return sum(self.counts([stmt], divide(rng, RECOUNT_PIECES)))


def table_counts(session: Session, config: Config) -> dict:
    """Rows of both tables over the whole ring, counted by range (the cleanup approval's summary)."""
    ranges = ring_ranges(session, config.keyspace)
    counts = range_counts(session, config, ranges, concurrency=2 * COUNTS_IN_FLIGHT)
    return {LEGACY_TABLE: sum(s for s, _ in counts), TARGET_TABLE: sum(t for _, t in counts), "ranges": len(ranges)}


def whole_table_counts(run: Run, total: Tally) -> dict | None:
    """user_trades rows against 2 x convertible settled trades, over the whole ring (full runs).

    Counts include rows written while the run was going, so they are reported, not judged:
    in a quiet table the difference equals orphans + new_only - missing, which the row check
    explains (before orphans are resolved: the counts are taken first). new_only: rows of trades
    settled once the writer had left settled_trades, which no settled trade accounts for; listed
    only once the run knows when that was.
    """
    if run.mode != FULL:
        return None
    expected = 2 * (total.settled - total.rejected)
    delta = total.user_trades - expected
    counts = {"settled_trades": total.settled, "rejected": total.rejected, "user_trades": total.user_trades,
              "expected_user_trades": expected, "difference": delta,
              "explained_by_rows": delta == total.orphans + total.new_only - total.missing}
    if run.new_only_since_us is not None:
        counts["new_only"] = total.new_only
    return counts
