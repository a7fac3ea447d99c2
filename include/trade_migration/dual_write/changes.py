"""One change of a trade as user_trades and rejected_trades see it: keys deleted, rows written.

The writer (a settlement, bust or correction) and the healer (finishing one that failed) build a
Change and send it the same way. Every statement carries an explicit write time, never "now":
the writer's is the settlement's, the healer's the recorded or the source's, so the newest
version of a trade wins whatever order the writes land in. A key is never both deleted and
written by one Change: at equal timestamps Cassandra lets the delete win.
"""
from __future__ import annotations

from typing import NamedTuple

from cassandra.cluster import Session

from trade_migration.core.clock import now
from trade_migration.core.config import TARGET_TABLE, Config
from trade_migration.core.convert import Reject, convert, raw_values
from trade_migration.core.model import USER_TRADE_REGULAR, SettledTrade, UserTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import execute_all
from trade_migration.core.tokens import settled_token
from trade_migration.statements.rejected_trades import reject_delete_at, reject_insert_at
from trade_migration.statements.user_trades import delete_user_trade_from, insert_user_trade_into, insert_values


class Change(NamedTuple):
    trade_id: int
    deletes: tuple[tuple[tuple, int], ...]                 # (UserTrade.key, write time)
    rows: tuple[tuple[UserTrade, frozenset[str]], ...]     # (row, columns it must clear)
    at: int                                                # write time of the rows and the reject
    reject: tuple[SettledTrade, Reject] | None = None      # the version to record as a reject
    unreject_at: int | None = None                         # drop the trade's reject, at this time

    def __bool__(self) -> bool:
        return bool(self.deletes or self.rows or self.reject or self.unreject_at is not None)


def converted(trade: SettledTrade | None, symbol_ids: dict[str, int]) -> tuple[tuple[UserTrade, ...], Reject | None]:
    """A version's user_trades rows, or its reject; a trade gone (None) has neither."""
    if trade is None:
        return (), None
    out = convert(trade, symbol_ids)
    return ((), out) if isinstance(out, Reject) else (out, None)


def cleared(before: UserTrade | None, after: UserTrade) -> frozenset[str]:
    """The columns a rewrite of the same key must clear: null now, set before (nulls are
    otherwise left unset, so no tombstone is written for them)."""
    if before is None:
        return frozenset()
    return frozenset(c for c in USER_TRADE_REGULAR if getattr(after, c) is None and getattr(before, c) is not None)


def change(old: SettledTrade | None, new: SettledTrade | None, at: int, symbol_ids: dict[str, int]) -> Change:
    """user_trades from `old`'s conversion to `new`'s, all at `at`: a settlement (no old), a bust
    (no new) or a correction. Keys of old not among new's are deleted; new's rows are written."""
    old_rows, old_reject = converted(old, symbol_ids)
    new_rows, new_reject = converted(new, symbol_ids)
    keys, before = {r.key for r in new_rows}, {r.key: r for r in old_rows}
    return Change(
        (new or old).trade_id,
        tuple((r.key, at) for r in old_rows if r.key not in keys),
        tuple((r, cleared(before.get(r.key), r)) for r in new_rows),
        at,
        (new, new_reject) if new_reject else None,
        at if old_reject and not new_reject else None)


class TargetWrites:
    """Sends Changes to user_trades (or the table named) and rejected_trades."""

    def __init__(self, session: Session, config: Config, table: str = TARGET_TABLE, *, source: str = "writer"):
        ks, cl = config.keyspace, config.write_cl
        self.session, self.source = session, source
        self.insert_row = prepared(session, insert_user_trade_into(ks, table), consistency=cl)
        self.delete_row = prepared(session, delete_user_trade_from(ks, table), consistency=cl)
        self.insert_reject = prepared(session, reject_insert_at(ks), consistency=cl)
        self.delete_reject = prepared(session, reject_delete_at(ks), consistency=cl)

    def send(self, c: Change) -> None:
        """Every statement of the change, in flight together; raises on the first that fails."""
        work = [(self.delete_row, (at, *key)) for key, at in c.deletes]
        work += [(self.insert_row, insert_values(row, c.at, clear=clear)) for row, clear in c.rows]
        if c.reject is not None:
            trade, reject = c.reject
            work.append((self.insert_reject, (c.trade_id, settled_token(c.trade_id), reject.reason,
                                              raw_values(trade), self.source, now(), c.at)))
        if c.unreject_at is not None:
            work.append((self.delete_reject, (c.unreject_at, c.trade_id)))
        execute_all(self.session, work)
