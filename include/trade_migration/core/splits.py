"""The live ring cut into the ranges a run works on, and those ranges grouped into labelled batches.

The backfill's ledger, a verification run and the cleanup's counts and archive all cut the ring
the same way: along the cluster's own token ranges, about one range per ROWS_PER_SPLIT rows of
the table's size estimate, covering the ring exactly once.
"""
from __future__ import annotations

from collections.abc import Callable

from cassandra.cluster import Session

from trade_migration.core import tokens
from trade_migration.core.config import LEGACY_TABLE
from trade_migration.core.tokens import TokenRange
from trade_migration.statements.system import SIZE_ESTIMATES


def estimated_rows(session: Session, keyspace: str, table: str = LEGACY_TABLE) -> int | None:
    """The node's own estimate of the table's partitions (system.size_estimates), if any."""
    try:
        rows = session.execute(session.prepare(SIZE_ESTIMATES), (keyspace, table))
    except Exception:  # noqa: BLE001 - estimates are optional (ScyllaDB and old versions differ)
        return None
    total = sum(r.partitions_count or 0 for r in rows)
    return total or None


def ring_ranges(session: Session, keyspace: str, splits: int | None = None, *, table: str = LEGACY_TABLE,
                at_least: int = 0) -> list[TokenRange]:
    """About `splits` ranges aligned to the cluster's (None: from the table's size estimate, but
    at least `at_least` up to MAX_SPLITS), in token order, checked to cover the ring once."""
    ring = tokens.ring_tokens(session)
    if splits is None:
        splits = tokens.default_splits(estimated_rows(session, keyspace, table), len(tokens.cluster_ranges(ring)))
        if at_least:
            splits = min(tokens.MAX_SPLITS, max(splits, at_least))
    ranges = tokens.split_ring(ring, splits)
    tokens.check_coverage(ranges)
    return ranges


def span_label(group: list[TokenRange]) -> str:
    """A batch's name: "(start, end]" for one range, "(start, end] xN" for N contiguous ones."""
    return group[0].label if len(group) == 1 else f"({group[0].start}, {group[-1].end}] x{len(group)}"


def labelled_batches(ranges: list[TokenRange], count: int, *, seed: str,
                     encode: Callable[[TokenRange], object]) -> list[dict]:
    """JSON-ready batches for mapped tasks (tokens.batches): each its label and its ranges, encoded."""
    return [{"label": span_label(group), "ranges": [encode(r) for r in group]}
            for group in tokens.batches(ranges, count, seed=seed)]
