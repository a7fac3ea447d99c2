"""The healer: finishes the dual writes the writer recorded as failed, without a human.

For each trade in dual_write_retries it reads the trade's current settled_trades row and makes
user_trades that version's conversion: the keys the failed writes meant to delete are deleted at
the recorded write time, the current rows written at the source's write time (never "now"), so a
newer dual write, correction or bust made since always wins. A trade gone from settled_trades
(busted) gets only the deletes. Only then is the record removed. Running it twice, or next to
the writer, or next to another healer, changes nothing more: every write it makes is one the
trade's own history already implies.
"""
from __future__ import annotations

import logging
from collections import defaultdict

from cassandra import Unauthorized
from cassandra.cluster import Session

from trade_migration.core import metrics
from trade_migration.core.config import TARGET_TABLE, Config
from trade_migration.core.model import USER_TRADE_REGULAR, UserTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import lookup
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.dual_write.changes import Change, TargetWrites, converted
from trade_migration.dual_write.retries import WRITE, RetryLog, error_text
from trade_migration.statements.dual_write_retries import Retry
from trade_migration.statements.settled_trades import decode_scanned_trade, select_settled
from trade_migration.statements.user_trades import select_user_trade

log = logging.getLogger(__name__)
MAX_ERRORS = 10   # error messages kept in the summary


class Healer:
    def __init__(self, session: Session, config: Config):
        ks = config.keyspace
        self.session, self.config = session, config
        self.retries = RetryLog(session, config)
        self.target = TargetWrites(session, config, TARGET_TABLE, source="writer")
        self.get_source = prepared(session, select_settled(ks), consistency=config.read_cl)
        self.get_target = prepared(session, select_user_trade(ks), consistency=config.read_cl)
        self.symbol_ids = load_symbol_ids(session, ks)

    def plan(self, trade_id: int, records: list[Retry]) -> Change:
        """What makes user_trades the trade's current version, at the times that keep newer writes winning."""
        found = self.session.execute(self.get_source, (trade_id,)).one()
        current = decode_scanned_trade(found) if found is not None else None
        recorded_at = max(r.write_time for r in records)
        at = (current.written if current is not None else 0) or recorded_at
        rows, reject = converted(current.trade if current is not None else None, self.symbol_ids)
        keys = {r.key for r in rows}
        deletes: dict[tuple, int] = {}
        for r in records:
            for key in r.stale_keys - keys:        # never delete a key this change writes
                deletes[key] = max(deletes.get(key, 0), r.write_time)
        had_versions = [r.write_time for r in records if r.action not in (WRITE, None)]
        return Change(trade_id, tuple(deletes.items()), self.with_clears(rows), at,
                      (current.trade, reject) if reject else None,
                      max(had_versions) if had_versions and not reject else None)

    def with_clears(self, rows: tuple[UserTrade, ...]) -> tuple[tuple[UserTrade, frozenset[str]], ...]:
        """Each row with the columns null at the source that user_trades still holds a value for (a
        correction to null that failed): those, and only those, are cleared, so no other tombstone
        is written."""
        found = lookup(self.session, self.get_target, [row.key for row in rows])
        return tuple((row, frozenset() if target is None else frozenset(
            c for c in USER_TRADE_REGULAR if getattr(row, c) is None and getattr(target, c) is not None))
            for row, target in zip(rows, found, strict=True))


def heal(session: Session, config: Config, *, limit: int | None = None) -> dict:
    """Finish the recorded failed dual writes (at most `limit` trades, all of a trade's records
    together); a JSON-ready summary. Records counted in pending, healed and left; a record
    that fails again stays, with its attempts and last error, for the next run."""
    healer = Healer(session, config)
    records = healer.retries.pending()
    by_trade: dict[int, list[Retry]] = defaultdict(list)
    for r in records:
        by_trade[r.trade_id].append(r)
    out = {"pending": len(records), "healed": 0, "left": 0, "failed": 0, "trades_healed": 0, "busted": 0,
           "rows_written": 0, "keys_deleted": 0, "errors": []}
    for n, (trade_id, recs) in enumerate(sorted(by_trade.items())):
        if limit is not None and n >= limit:
            break
        try:
            c = healer.plan(trade_id, recs)
            healer.target.send(c)
            for r in recs:
                healer.retries.done(r)
        except Unauthorized:
            raise                         # a missing grant: every trade would fail the same way
        except Exception as exc:  # noqa: BLE001 - left recorded for the next run
            out["failed"] += len(recs)
            if len(out["errors"]) < MAX_ERRORS:
                out["errors"].append(f"trade {trade_id}: {error_text(exc)}")
            log.warning("cannot heal trade %s yet: %s", trade_id, error_text(exc))
            _note_failure(healer.retries, recs, exc)
            continue
        out["healed"] += len(recs)
        out["trades_healed"] += 1
        out["busted"] += not c.rows and c.reject is None
        out["rows_written"] += len(c.rows)
        out["keys_deleted"] += len(c.deletes)
    out["left"] = out["pending"] - out["healed"]
    log.info("healer: %s", {k: v for k, v in out.items() if k != "errors"})
    metrics.gauges("dual_write", {"heal_pending": out["pending"], "heal_left": out["left"]})
    metrics.counters("dual_write", {"healed": out["healed"], "heal_failed": out["failed"]})
    return out


def _note_failure(retries: RetryLog, records: list[Retry], error: BaseException) -> None:
    for r in records:
        try:
            retries.failed_again(r, error)
        except Exception as exc:  # noqa: BLE001 - the record stays as it was; still pending
            log.warning("cannot note the failed heal of trade %s: %s", r.trade_id, error_text(exc))
