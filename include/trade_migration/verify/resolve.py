"""Orphans resolved: a user_trades row no trade explains (busted, rejected, or moved to other keys
by a correction) deleted after a last look, by a tombstone that loses to any newer write.

An orphan comes here confirmed twice (the Checker's first look, then its recheck after a delay).
Right before the delete it is read a third time at the configured read consistency: the row must
still hold the write the check saw, and its trade, read again, must still not explain it. The
delete is stamped with that write's time + 1, so a write made since, or made later (a dual write
of a trade that comes back), wins; the row is read back, and each delete is audited (who, the
run, the key).

A run deletes nothing when it confirmed more orphans than its limit (a lost or truncated
settled_trades looks exactly like a table of orphans, and deleting them would lose the rows from
both tables: resolve by hand, or rerun with a higher limit), or while dual_write is new_only or
retired (settled_trades is no longer written, so a missing trade proves nothing). An orphan
whose trade names a symbol missing from trading.symbols is kept: a symbol removed by mistake
would otherwise empty a whole market from the read path; restore the symbol, or delete by hand.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from cassandra.cluster import Session

from trade_migration.core.config import TARGET_TABLE, Config
from trade_migration.core.convert import reject_reason
from trade_migration.core.model import USER_TRADE_KEY
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, RETIRED, Flags
from trade_migration.statements.settled_trades import decode_scanned_trade, select_settled
from trade_migration.statements.user_trades import (
    decode_timed_user_trade,
    delete_user_trade_from,
    select_user_trade_timed,
)
from trade_migration.verify.parity_run import Run
from trade_migration.verify.row_parity import counterpart

RESOLVED = "orphan resolved"   # the audit log's action
# How an orphan ended (differences.csv, column repair).
DELETED = "deleted"                          # tombstone at the row's write time + 1, read back gone
GONE = "already_gone"                        # deleted by someone else before the resolve
KEPT_EXPLAINED = "kept_trade_explains_it"    # its trade came back, or moved back to this key
KEPT_NEWER = "kept_newer_write"              # written again since the check: the next run's
KEPT_SYMBOL = "kept_unknown_symbol"          # its trade's symbol is not in trading.symbols
NOT_RESOLVED = "not_resolved"                # the run resolves orphans but refused to (resolve_refused)
GONE_LABELS = (DELETED, GONE)                # counted as resolved: the difference is gone
UNKNOWN_SYMBOL = "unknown_symbol"            # core.convert's reject code


def orphan_key(d: dict) -> tuple:
    """The user_trades key of an orphan's JSON (Diff.to_json), as a lookup or a delete binds it."""
    values = {**d, "settled_at": datetime.fromisoformat(d["settled_at"])}
    return tuple(values[c] for c in USER_TRADE_KEY)


def refusal(session: Session, config: Config, run: Run, counted: int) -> str:
    """Why this run deletes no orphan at all ('' when it may)."""
    if counted > run.resolve_limit:
        return (f"{counted} orphans confirmed, more than the limit of {run.resolve_limit}: a lost settled_trades"
                " looks like this; check it, then resolve by hand or rerun with a higher resolve_limit")
    writer = Flags(session, config).get(DUAL_WRITE).value
    if writer in (NEW_ONLY, RETIRED):
        return f"dual_write is {writer}: settled_trades is no longer written, so a missing trade proves nothing"
    return ""


class Resolver:
    """Deletes orphans one by one, each after its last look."""

    def __init__(self, session: Session, config: Config, run: Run, *, actor: str):
        ks = config.keyspace
        self.session, self.run, self.actor = session, run, actor
        self.get_row = prepared(session, select_user_trade_timed(ks), consistency=config.read_cl)
        self.get_trade = prepared(session, select_settled(ks), consistency=config.read_cl)
        self.delete = prepared(session, delete_user_trade_from(ks, TARGET_TABLE), consistency=config.write_cl)
        self.symbol_ids = load_symbol_ids(session, ks)
        self.state = phases.State(session, config)

    def resolve(self, d: dict) -> str:
        """One confirmed orphan (its Diff JSON): deleted, or why not."""
        key = orphan_key(d)
        found = self.session.execute(self.get_row, key).one()
        if found is None:
            return GONE
        row = decode_timed_user_trade(found)
        if row.written != d["target_written_us"]:
            return KEPT_NEWER
        source = self.session.execute(self.get_trade, (row.row.trade_id,)).one()
        trade = None if source is None else decode_scanned_trade(source).trade
        why = counterpart(trade, row.row, self.symbol_ids)
        if not isinstance(why, str):
            return KEPT_EXPLAINED
        reject = None if trade is None else reject_reason(trade, self.symbol_ids)
        if reject is not None and reject.code == UNKNOWN_SYMBOL:
            return KEPT_SYMBOL
        at = row.written + 1
        self.session.execute(self.delete, (at, *key))
        if self.session.execute(self.get_row, key).one() is not None:
            return KEPT_NEWER   # a write newer than the tombstone landed meanwhile, and won
        self.state.audit(phases.VERIFY, RESOLVED, actor=self.actor, reason=why, details={
            "run_id": self.run.run_id, "key": {c: d[c] for c in USER_TRADE_KEY},   # as the report lists it
            "row_written_us": row.written, "deleted_at_us": at})
        return DELETED


def identity(d: dict) -> tuple:
    """An orphan's identity in a run's JSON (its range and key as the report lists them)."""
    return (d["range"], *(d[c] for c in USER_TRADE_KEY))


def resolve(session: Session, config: Config, run: Run, orphans: list[dict], counted: int, *, actor: str) -> dict:
    """Resolve the run's confirmed orphans (`counted` of them, all listed in `orphans` when within
    the limit); JSON-ready: resolved per range, each orphan's outcome, and the refusal if any."""
    refused = refusal(session, config, run, counted)
    if refused or not orphans:
        return {"tallies": {}, "outcomes": [], "refused": refused}
    resolver = Resolver(session, config, run, actor=actor)
    outcomes = [[*identity(d), resolver.resolve(d)] for d in orphans]
    resolved = Counter(str(o[0]) for o in outcomes if o[-1] in GONE_LABELS)
    return {"tallies": {i: {"resolved": n} for i, n in resolved.items()}, "outcomes": outcomes, "refused": ""}
