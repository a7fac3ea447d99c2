"""A settled trade becomes two user_trades rows (one per side), or a reject with its reason.

The backfill, the reference writer and the parity check all call convert(): one conversion,
so the three can never disagree about what a trade should look like in user_trades.
"""
from __future__ import annotations

from typing import NamedTuple

from trade_migration.core.model import SETTLED_COLUMNS

# Positions in a settled_trades row tuple (SETTLED_COLUMNS order).
(TRADE_ID, OUTPUT_SEQ, SYMBOL, PRICE, QUANTITY, BUYER, SELLER, BUYER_ORDER, SELLER_ORDER,
 TAKER_SIDE, BUYER_FEE, SELLER_FEE, MATCHED_AT, SETTLED_AT) = range(len(SETTLED_COLUMNS))

REJECT_REASONS = ("unknown_symbol", "null_buyer_user_id", "null_seller_user_id", "null_settled_at",
                  "bad_price", "bad_quantity", "bad_taker_side")


class Reject(NamedTuple):
    code: str     # one of REJECT_REASONS
    detail: str   # readable, with the offending value

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


def reject_reason(trade: tuple, symbol_ids: dict[str, int]) -> Reject | None:
    """The first rule of the contract this trade breaks, or None when it converts."""
    if trade[SYMBOL] not in symbol_ids:
        return Reject("unknown_symbol", f"symbol {trade[SYMBOL]!r} is not in symbols")
    if trade[BUYER] is None:
        return Reject("null_buyer_user_id", "buyer_user_id is null")
    if trade[SELLER] is None:
        return Reject("null_seller_user_id", "seller_user_id is null")
    if trade[SETTLED_AT] is None:
        return Reject("null_settled_at", "settled_at is null")
    if trade[PRICE] is None or trade[PRICE] <= 0:
        return Reject("bad_price", f"price must be positive, got {trade[PRICE]!r}")
    if trade[QUANTITY] is None or trade[QUANTITY] <= 0:
        return Reject("bad_quantity", f"quantity must be positive, got {trade[QUANTITY]!r}")
    if trade[TAKER_SIDE] not in ("BUY", "SELL"):
        return Reject("bad_taker_side", f"taker_side must be 'BUY' or 'SELL', got {trade[TAKER_SIDE]!r}")
    return None


def user_trade_rows(trade: tuple, symbol_id: int) -> tuple[tuple, tuple]:
    """The buyer's and the seller's row, in statements.USER_TRADE_COLUMNS order."""
    buyer, seller, taker = trade[BUYER], trade[SELLER], trade[TAKER_SIDE]
    settled_at, trade_id, price, qty = trade[SETTLED_AT], trade[TRADE_ID], trade[PRICE], trade[QUANTITY]
    matched_at, seq = trade[MATCHED_AT], trade[OUTPUT_SEQ]
    return (
        (buyer, symbol_id, settled_at, trade_id, "BUY", price, qty, trade[BUYER_FEE],
         trade[BUYER_ORDER], seller, taker == "BUY", matched_at, seq),
        (seller, symbol_id, settled_at, trade_id, "SELL", price, qty, trade[SELLER_FEE],
         trade[SELLER_ORDER], buyer, taker == "SELL", matched_at, seq),
    )


def convert(trade: tuple, symbol_ids: dict[str, int]) -> tuple[tuple, tuple] | Reject:
    reject = reject_reason(trade, symbol_ids)
    if reject is not None:
        return reject
    return user_trade_rows(trade, symbol_ids[trade[SYMBOL]])


def raw_values(trade: tuple) -> dict[str, str]:
    """The trade's values as text, kept with a reject so nothing is lost."""
    return {name: ("null" if value is None else str(value)) for name, value in zip(SETTLED_COLUMNS, trade, strict=True)}


def row_key(row: tuple) -> tuple:
    """The user_trades primary key of a row tuple."""
    return row[0], row[1], row[2], row[3], row[4]
