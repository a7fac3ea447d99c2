"""The rows the migration reads and writes, named: the column order of schema/ in one place."""
from __future__ import annotations

SETTLED_COLUMNS = ("trade_id", "output_seq", "symbol", "price", "quantity", "buyer_user_id",
                   "seller_user_id", "buyer_order_id", "seller_order_id", "taker_side",
                   "buyer_fee", "seller_fee", "matched_at", "settled_at")
USER_TRADE_COLUMNS = ("user_id", "symbol_id", "settled_at", "trade_id", "side", "price", "quantity",
                      "fee", "order_id", "counterparty_user_id", "is_taker", "matched_at",
                      "output_seq")
