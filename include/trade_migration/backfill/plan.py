"""Planning a backfill run: the ledger's ranges, grouped into batches for the mapped tasks."""
from __future__ import annotations

import logging
import re

from cassandra.cluster import Session

from trade_migration.backfill import ttl
from trade_migration.core.config import Config
from trade_migration.core.errors import ConfigError
from trade_migration.core.splits import labelled_batches, ring_ranges
from trade_migration.core.tokens import TokenRange
from trade_migration.state.ledger import DONE, Ledger, RangeState, within
from trade_migration.statements.rejected_trades import reject_insert_at
from trade_migration.statements.settled_trades import scan_settled
from trade_migration.statements.user_trades import insert_user_trade

log = logging.getLogger(__name__)
LABEL = re.compile(r"\((-?\d+),\s*(-?\d+)\]")


def check_tables(session: Session, keyspace: str) -> None:
    """Fail fast, before anything is planned: preparing the scan and the writes raises
    InvalidRequest naming a missing keyspace or table, so no ledger is left for a table that is not there."""
    for cql in (scan_settled(keyspace), insert_user_trade(keyspace), reject_insert_at(keyspace)):
        session.prepare(cql)


def ensure_ledger(session: Session, config: Config, ledger: Ledger, splits: int | None, *,
                  ttl_policy: str = ttl.REFUSE) -> list[RangeState]:
    """Plan the ring into the ledger the first time; later runs reuse the ledger as it is.
    Every run first checks the tables, and that settled_trades' default TTL suits ttl_policy."""
    check_tables(session, config.keyspace)
    ttl.check_table(session, config.keyspace, ttl_policy)
    states = ledger.load()
    if states:
        if splits is not None and splits != len([s for s in states if s.parent_start is None]):
            log.warning("backfill %s already has a ledger of %d ranges; the splits Param (%d) applies"
                        " only to a new backfill_id", ledger.backfill_id, len(states), splits)
        return states
    ranges = ring_ranges(session, config.keyspace, splits)
    ledger.plan(ranges)
    log.info("planned %d token ranges aligned to the cluster's", len(ranges))
    return ledger.load()


def select(states: list[RangeState], ledger: Ledger, only: list[str] | None) -> list[RangeState]:
    """The ranges to run: every unfinished leaf (default), or exactly the ranges listed.

    `only` holds range labels "(start, end]" or start tokens. A label names every ledger range
    inside it, so a label copied before its range was re-split still names the pieces. A listed
    range that is done runs again from its first token; an unknown one is an error that names
    the valid form.
    """
    work = [s for s in states if s.status != DONE]
    if not only:
        return work
    by_start = {s.range_start: s for s in states}
    chosen: dict[int, RangeState] = {}
    for item in only:
        item = str(item).strip()
        span = _label_span(item)
        if span is not None:
            found = within(states, [span])
        else:
            found = [by_start[int(item)]] if item.lstrip("-").isdigit() and int(item) in by_start else []
        if not found:
            raise ConfigError(f"range {item!r} is not in backfill {ledger.backfill_id!r}; give a label like"
                              f" '(start, end]' or a range_start from the ledger")
        chosen.update((rs.range_start, rs) for rs in found)
    picked = sorted(chosen.values(), key=lambda rs: rs.range_start)
    ledger.reset([rs for rs in picked if rs.status == DONE])
    return picked


def _label_span(item: str) -> TokenRange | None:
    """The token span of a label "(start, end]", None if `item` is not one."""
    match = LABEL.fullmatch(item)
    return TokenRange(int(match[1]), int(match[2])) if match else None


def to_batches(work: list[RangeState], count: int, *, seed: str) -> list[dict]:
    """JSON-ready batches for task mapping: a label naming the token span, and its ranges."""
    return labelled_batches([w.token_range for w in work], count, seed=seed, encode=lambda r: [r.start, r.end])


def spans(batch: dict) -> list[TokenRange]:
    return [TokenRange(int(a), int(b)) for a, b in batch["ranges"]]
