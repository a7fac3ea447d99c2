"""The repair after a verification: missing and mismatched rows written again from their trades.

Orphans are resolved elsewhere (verify/resolve.py). Each row is first written at its source's
write time, as the backfill writes it, so a dual write or correction made later wins. A row a
newer delete or value shadows (written before the run began, so a fault, not live traffic) is
written again at the run's start; writes made after the run started always win. Every write is
read back. A write sets only the row's non-null values, and clears (a tombstone) only a column
that holds a value where the source has none: no other tombstone lands in the table the gateway
reads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from cassandra.concurrent import execute_concurrent_with_args

from trade_migration.core.prepared import prepared
from trade_migration.statements.user_trades import decode_timed_user_trade, insert_user_trade, insert_values
from trade_migration.verify.diffs import MISMATCHED, MISSING, Diff

if TYPE_CHECKING:
    from trade_migration.verify.row_parity import Checker

# How a repaired row was written: at the source's write time, at the run's start, or not at all.
AT_SOURCE_TIME, AT_RUN_START, NOT_REPAIRED = "source_write_time", "run_start", "newer_write_wins"


def repair(checker: Checker) -> int:
    """Write back the rows of the checker's confirmed missing and mismatched differences, marking
    each Diff with how it was written; the number repaired."""
    session, run, concurrency = checker.session, checker.run, checker.concurrency
    todo = [d for d in checker.diffs if d.kind in (MISSING, MISMATCHED) and d.row is not None]
    insert = prepared(session, insert_user_trade(checker.config.keyspace), consistency=checker.config.write_cl)
    for label, stamp in ((AT_SOURCE_TIME, lambda d: d.source_written_us),
                         (AT_RUN_START, lambda d: max(d.source_written_us, run.started_us))):
        if not todo:
            break
        execute_concurrent_with_args(session, insert, [insert_values(d.row, stamp(d), clear=cleared(d)) for d in todo],
                                     concurrency=concurrency, raise_on_first_error=True)
        found = checker.targets([d.row.key for d in todo])
        left = []
        for d, got in zip(todo, found, strict=True):
            if got is not None and decode_timed_user_trade(got).row == d.row:
                d.repair = label
                checker.tally(d.range).repaired += 1
            else:
                left.append(d)
        todo = left
    for d in todo:
        d.repair = NOT_REPAIRED
    return sum(1 for d in checker.diffs if d.repair in (AT_SOURCE_TIME, AT_RUN_START))


def cleared(d: Diff) -> tuple[str, ...]:
    """The columns to clear: null at the source, holding a value in user_trades (mismatched only:
    a missing row holds nothing)."""
    return tuple(c for c in d.columns if d.expected[c] is None and d.actual[c] is not None)
