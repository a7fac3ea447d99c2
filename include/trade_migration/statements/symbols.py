"""symbols: the symbol -> symbol_id lookup the conversion needs."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace


def select_symbols(keyspace: str) -> str:
    return in_keyspace("SELECT symbol, symbol_id, base_asset, quote_asset, price_scale, qty_scale"
                       " FROM {ks}.symbols", keyspace)
