"""The rows the migration reads and writes, named: the column order of schema/ in one place.

Code reads a row's values by name (trade.symbol, row.user_id), never by position, so a column
added to a table changes this module, schema/ and the statements, and nothing else.
tests/integration/test_schema_and_generator.py checks these against schema/.
"""
from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from typing import NamedTuple


class SettledTrade(NamedTuple):
    """A settled_trades row. Anything but trade_id may be null: convert() rejects what breaks the contract."""
    trade_id: int
    output_seq: int | None
    symbol: str | None
    price: int | None
    quantity: int | None
    buyer_user_id: int | None
    seller_user_id: int | None
    buyer_order_id: int | None
    seller_order_id: int | None
    taker_side: str | None
    buyer_fee: int | None
    seller_fee: int | None
    matched_at: datetime | None
    settled_at: datetime | None


SETTLED_COLUMNS = SettledTrade._fields
SETTLED_KEY = ("trade_id",)
SETTLED_REGULAR = tuple(c for c in SETTLED_COLUMNS if c not in SETTLED_KEY)

USER_TRADE_PARTITION = ("user_id", "symbol_id")
USER_TRADE_KEY = (*USER_TRADE_PARTITION, "settled_at", "trade_id", "side")


class UserTrade(NamedTuple):
    """A user_trades row: one side of a trade, as seen by that side's user."""
    user_id: int
    symbol_id: int
    settled_at: datetime
    trade_id: int
    side: str
    price: int
    quantity: int
    fee: int | None
    order_id: int | None
    counterparty_user_id: int
    is_taker: bool
    matched_at: datetime | None
    output_seq: int | None

    key = property(attrgetter(*USER_TRADE_KEY), doc="The primary key: what a lookup or a delete binds.")


USER_TRADE_COLUMNS = UserTrade._fields
USER_TRADE_REGULAR = tuple(c for c in USER_TRADE_COLUMNS if c not in USER_TRADE_KEY)
