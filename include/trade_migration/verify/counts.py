"""Row counts of both tables per token range, many ranges at once.

One COUNT(*) over a whole table is a single coordinator walking the ring alone, and times out on
big tables; one COUNT(*) per range spreads the work over every replica and can be retried range
by range.
"""
from __future__ import annotations

from cassandra.cluster import Session

from trade_migration.core.config import Config
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import execute_all
from trade_migration.core.tokens import TokenRange
from trade_migration.statements.settled_trades import count_settled_range
from trade_migration.statements.user_trades import count_user_trades_range


def range_counts(session: Session, config: Config, ranges: list[TokenRange], *,
                 concurrency: int = 8) -> list[tuple[int, int]]:
    """(settled_trades rows, user_trades rows) in each range, in order."""
    ks = config.keyspace
    settled = prepared(session, count_settled_range(ks), consistency=config.read_cl)
    target = prepared(session, count_user_trades_range(ks), consistency=config.read_cl)
    work = [(settled, (r.start, r.end)) for r in ranges] + [(target, (r.start, r.end)) for r in ranges]
    values = [rs.one()[0] for rs in execute_all(session, work, concurrency=concurrency)]
    return list(zip(values[:len(ranges)], values[len(ranges):], strict=True))

