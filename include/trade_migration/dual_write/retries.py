"""The durable record of failed dual writes: the writer adds to it, the healer works it off.

A failed user_trades write would otherwise live only in a log line and a counter, and wait for
a human to run a repair. Each failure is one row in dual_write_retries, keyed by the trade and
the failed write's timestamp, so two failures of one trade are two rows and nothing is lost.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cassandra.cluster import Session

from trade_migration.core.clock import now, utc
from trade_migration.core.config import Config
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import pages
from trade_migration.statements.dual_write_retries import (
    Retry,
    decode_retry,
    retry_delete,
    retry_failed_again,
    retry_insert,
    retry_select_bucket,
)

BUCKETS = 8                                     # partitions of the table; each is read whole
WRITE, BUST, CORRECT = "write", "bust", "correct"   # what the failed write attempted
ACTIONS = (WRITE, BUST, CORRECT)


def bucket_of(trade_id: int) -> int:
    return trade_id % BUCKETS


def recorded_since(records: Iterable[Retry], since: datetime) -> int:
    """How many of the records were recorded at or after `since`."""
    return sum(1 for r in records if r.recorded_at is not None and utc(r.recorded_at) >= since)


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class RetryLog:
    """dual_write_retries at the configured consistency levels."""

    def __init__(self, session: Session, config: Config):
        ks, read, write = config.keyspace, config.read_cl, config.write_cl
        self.session = session
        self._insert = prepared(session, retry_insert(ks), consistency=write)
        self._select = prepared(session, retry_select_bucket(ks), consistency=read)
        self._again = prepared(session, retry_failed_again(ks), consistency=write)
        self._delete = prepared(session, retry_delete(ks), consistency=write)

    def record(self, trade_id: int, write_time: int, action: str, stale_keys: Iterable[tuple],
               error: BaseException) -> None:
        """One failed user_trades write: the healer deletes `stale_keys` and writes the trade's
        current rows, at `write_time` or the source's newer one."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        self.session.execute(self._insert, (bucket_of(trade_id), trade_id, write_time, action,
                                            set(stale_keys), now(), 1, error_text(error)))

    def pending(self) -> list[Retry]:
        """Every recorded failure, by bucket, then trade and write time."""
        return [decode_retry(row) for bucket in range(BUCKETS)
                for page in pages(self.session, self._select, (bucket,)) for row in page]

    def failed_again(self, retry: Retry, error: BaseException) -> None:
        self.session.execute(self._again, ((retry.attempts or 0) + 1, error_text(error),
                                           retry.bucket, retry.trade_id, retry.write_time))

    def done(self, retry: Retry) -> None:
        self.session.execute(self._delete, (retry.bucket, retry.trade_id, retry.write_time))
