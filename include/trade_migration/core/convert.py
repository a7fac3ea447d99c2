"""A settled trade becomes two user_trades rows (one per side), or a reject with its reason.

The backfill, the reference writer and the parity check all call convert(): one conversion,
so the three can never disagree about what a trade should look like in user_trades.
"""
from __future__ import annotations

from typing import NamedTuple

from trade_migration.core.model import SETTLED_COLUMNS, SettledTrade, UserTrade

REJECT_REASONS = ("unknown_symbol", "null_buyer_user_id", "null_seller_user_id", "null_settled_at",
                  "bad_price", "bad_quantity", "bad_taker_side")


class Reject(NamedTuple):
    code: str     # one of REJECT_REASONS
    detail: str   # readable, with the offending value

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


def reject_reason(trade: SettledTrade, symbol_ids: dict[str, int]) -> Reject | None:
    """The first rule of the contract this trade breaks, or None when it converts."""
    if trade.symbol not in symbol_ids:
        return Reject("unknown_symbol", f"symbol {trade.symbol!r} is not in symbols")
    if trade.buyer_user_id is None:
        return Reject("null_buyer_user_id", "buyer_user_id is null")
    if trade.seller_user_id is None:
        return Reject("null_seller_user_id", "seller_user_id is null")
    if trade.settled_at is None:
        return Reject("null_settled_at", "settled_at is null")
    price, quantity, taker = trade.price, trade.quantity, trade.taker_side
    if price is None or price <= 0:
        return Reject("bad_price", f"price must be positive, got {price!r}")
    if quantity is None or quantity <= 0:
        return Reject("bad_quantity", f"quantity must be positive, got {quantity!r}")
    if taker not in ("BUY", "SELL"):
        return Reject("bad_taker_side", f"taker_side must be 'BUY' or 'SELL', got {taker!r}")
    return None


def user_trade_rows(trade: SettledTrade, symbol_id: int) -> tuple[UserTrade, UserTrade]:
    """The buyer's and the seller's row. Built positionally, in UserTrade's field order, as keyword
    construction would triple the backfill's conversion cost; tests/unit/test_trades.py pins the order."""
    buyer, seller, taker = trade.buyer_user_id, trade.seller_user_id, trade.taker_side
    settled_at, trade_id, price, quantity = trade.settled_at, trade.trade_id, trade.price, trade.quantity
    matched_at, output_seq = trade.matched_at, trade.output_seq
    return (
        UserTrade(buyer, symbol_id, settled_at, trade_id, "BUY", price, quantity, trade.buyer_fee,
                  trade.buyer_order_id, seller, taker == "BUY", matched_at, output_seq),
        UserTrade(seller, symbol_id, settled_at, trade_id, "SELL", price, quantity, trade.seller_fee,
                  trade.seller_order_id, buyer, taker == "SELL", matched_at, output_seq),
    )


def convert(trade: SettledTrade, symbol_ids: dict[str, int]) -> tuple[UserTrade, UserTrade] | Reject:
    reject = reject_reason(trade, symbol_ids)
    if reject is not None:
        return reject
    return user_trade_rows(trade, symbol_ids[trade.symbol])


def raw_values(trade: SettledTrade) -> dict[str, str]:
    """The trade's values as text, kept with a reject so nothing is lost."""
    return {name: ("null" if value is None else str(value)) for name, value in zip(SETTLED_COLUMNS, trade, strict=True)}
