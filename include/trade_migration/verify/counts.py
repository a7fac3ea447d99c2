"""Row counts of both tables per token range, many ranges at once.

One COUNT(*) over a whole table is a single coordinator walking the ring alone, and times out on
big tables; one COUNT(*) per range spreads the work over every replica and can be retried range
by range. Verification counts both tables, the cleanup's archive checks its files against these.
"""
from __future__ import annotations

from cassandra.cluster import Session

from trade_migration.core.config import LEGACY_TABLE, TARGET_TABLE, Config
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import execute_all
from trade_migration.core.settings import COUNTS_IN_FLIGHT
from trade_migration.core.splits import ring_ranges
from trade_migration.core.tokens import TokenRange
from trade_migration.statements.settled_trades import count_settled_range
from trade_migration.statements.user_trades import count_user_trades_range
from trade_migration.verify.parity_run import FULL, Run, Tally


def _work(session: Session, config: Config, cql: str, ranges: list[TokenRange]) -> list[tuple]:
    stmt = prepared(session, cql, consistency=config.read_cl)
    return [(stmt, (r.start, r.end)) for r in ranges]


def settled_counts(session: Session, config: Config, ranges: list[TokenRange], *,
                   concurrency: int = COUNTS_IN_FLIGHT) -> list[int]:
    """settled_trades rows in each range, in order."""
    work = _work(session, config, count_settled_range(config.keyspace), ranges)
    return [rs.one()[0] for rs in execute_all(session, work, concurrency=concurrency)]


def range_counts(session: Session, config: Config, ranges: list[TokenRange], *,
                 concurrency: int = COUNTS_IN_FLIGHT) -> list[tuple[int, int]]:
    """(settled_trades rows, user_trades rows) in each range, in order."""
    ks = config.keyspace
    work = (_work(session, config, count_settled_range(ks), ranges)
            + _work(session, config, count_user_trades_range(ks), ranges))
    values = [rs.one()[0] for rs in execute_all(session, work, concurrency=concurrency)]
    return list(zip(values[:len(ranges)], values[len(ranges):], strict=True))


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
