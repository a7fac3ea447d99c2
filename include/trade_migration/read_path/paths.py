"""The gateway's two read paths, old (indexes + a filter) and new (one partition), and the user sample.

"My trades in SYMBOL, newest first" for one user:
- old: every trade of the user through the buyer and the seller index of settled_trades, then
  filtered by symbol, de-duplicated (a self-trade is found by both), converted and sorted here;
- new: the first rows of one user_trades partition, already in that order.
Both return user_trades rows (UserTrade), so gateway code can
swap one for the other and the shadow compare can diff them row by row.
"""
from __future__ import annotations

import random
from collections.abc import Collection

from cassandra.cluster import Session

from trade_migration.core.clock import millis
from trade_migration.core.config import Config
from trade_migration.core.convert import Reject, convert
from trade_migration.core.model import SettledTrade, UserTrade
from trade_migration.core.prepared import prepared
from trade_migration.core.symbols import load_symbol_ids
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN
from trade_migration.statements.settled_trades import old_trades_by_buyer, old_trades_by_seller, sample_settled_parties
from trade_migration.statements.user_trades import new_user_trades

DEFAULT_LIMIT = 100   # one page of the gateway's trade history


def order_key(row: UserTrade) -> tuple:
    """user_trades clustering order: settled_at DESC, trade_id DESC, side ASC."""
    return -millis(row.settled_at), -row.trade_id, row.side


class ReadPaths:
    """Both read paths of one keyspace; symbols and statements are loaded once."""

    def __init__(self, session: Session, config: Config):
        ks, cl = config.keyspace, config.read_cl
        self.session = session
        self.by_buyer = prepared(session, old_trades_by_buyer(ks), consistency=cl)
        self.by_seller = prepared(session, old_trades_by_seller(ks), consistency=cl)
        self.partition = prepared(session, new_user_trades(ks), consistency=cl)
        self.symbol_ids = load_symbol_ids(session, ks)

    def old(self, user_id: int, symbol: str, limit: int | None = DEFAULT_LIMIT) -> list[UserTrade]:
        """The old path. Trades that cannot be converted (rejects) are left out, as in user_trades."""
        if symbol not in self.symbol_ids:
            return []
        seen: set[int] = set()
        rows: list[UserTrade] = []
        for stmt in (self.by_buyer, self.by_seller):
            for trade in self.session.execute(stmt, (user_id,)):
                if trade.symbol != symbol or trade.trade_id in seen:
                    continue
                seen.add(trade.trade_id)
                out = convert(SettledTrade._make(trade), self.symbol_ids)
                if not isinstance(out, Reject):
                    rows += [r for r in out if r.user_id == user_id]
        rows.sort(key=order_key)
        return rows if limit is None else rows[:limit]

    def new(self, user_id: int, symbol: str, limit: int = DEFAULT_LIMIT) -> list[UserTrade]:
        """The new path: one partition, LIMIT n, in clustering order."""
        symbol_id = self.symbol_ids.get(symbol)
        if symbol_id is None:
            return []
        return [UserTrade._make(r) for r in self.session.execute(self.partition, (user_id, symbol_id, limit))]


def sample_pairs(session: Session, config: Config, count: int, *, seed: int,
                 symbols: Collection[str] | None = None) -> list[tuple[int, str]]:
    """Up to `count` distinct (user_id, symbol) pairs with trades, chosen by a seeded random walk
    over settled_trades tokens (so active users are more likely, as in the gateway's traffic)."""
    rng = random.Random(seed)
    stmt = prepared(session, sample_settled_parties(config.keyspace), consistency=config.read_cl)
    pairs: list[tuple[int, str]] = []
    seen: set[tuple[int, str]] = set()
    for _ in range(count * 4):
        if len(pairs) >= count:
            break
        row = session.execute(stmt, (rng.randint(MIN_TOKEN, MAX_TOKEN - 1), 1)).one()
        side = rng.random() < 0.5
        if row is None:
            continue
        user = row.buyer_user_id if side else row.seller_user_id
        pair = (user, row.symbol)
        if user is None or pair in seen or (symbols is not None and row.symbol not in symbols):
            continue
        seen.add(pair)
        pairs.append(pair)
    return pairs
