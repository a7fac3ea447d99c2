"""Statements only tests, benchmarks and the demo run: planting and resetting state."""
from __future__ import annotations

from trade_migration.core.config import identifier
from trade_migration.statements.text import in_keyspace


def insert_symbol(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.symbols (symbol, symbol_id, base_asset, quote_asset, price_scale,"
                       " qty_scale) VALUES (?, ?, ?, ?, ?, ?)", keyspace)


def delete_symbol(keyspace: str) -> str:
    return in_keyspace("DELETE FROM {ks}.symbols WHERE symbol = ?", keyspace)


def delete_user_trade(keyspace: str) -> str:
    return in_keyspace("DELETE FROM {ks}.user_trades WHERE user_id = ? AND symbol_id = ? AND settled_at = ?"
                       " AND trade_id = ? AND side = ?", keyspace)


def count_all(keyspace: str, table: str) -> str:
    """The single full-table COUNT(*) the benchmarks compare against; never used by the DAGs."""
    return in_keyspace("SELECT count(*) FROM {ks}." + identifier(table, what="table"), keyspace)


def ledger_plant(keyspace: str) -> str:
    """One whole ledger row as a run leaves it: the status page's test and benchmark plant
    thousands of ranges in known states with it (plain upserts, no compare-and-set)."""
    return in_keyspace("INSERT INTO {ks}.backfill_ranges (backfill_id, range_start, range_end, parent_start,"
                       " status, checkpoint, rows_read, rows_written, rows_rejected, attempts, last_error, resplit,"
                       " started_at, finished_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       keyspace)


def drop_keyspace(keyspace: str) -> str:
    """Only the demo's local reset uses this (it refuses anything but a loopback node)."""
    return in_keyspace("DROP KEYSPACE IF EXISTS {ks}", keyspace)


def insert_settled_ttl(keyspace: str) -> str:
    """A trade with a TTL and only some columns (the archive tests' rows that expire)."""
    return in_keyspace("INSERT INTO {ks}.settled_trades (trade_id, symbol, price, settled_at) VALUES (?, ?, ?, ?)"
                       " USING TIMESTAMP ? AND TTL ?", keyspace)


SETTLED_REGULAR_COLUMNS = ("output_seq", "symbol", "price", "quantity", "buyer_user_id", "seller_user_id",
                           "buyer_order_id", "seller_order_id", "taker_side", "buyer_fee", "seller_fee", "matched_at",
                           "settled_at")


def cells_with_times(keyspace: str, table: str) -> str:
    """Every row of a table shaped like settled_trades, each column with its WRITETIME and TTL, written
    out here (not the product's scan) so a restore is compared independently."""
    cols = ", ".join(f"{c}, WRITETIME({c}), TTL({c})" for c in SETTLED_REGULAR_COLUMNS)
    return in_keyspace(f"SELECT trade_id, {cols} FROM {{ks}}." + identifier(table, what="table"), keyspace)


def sstable_tasks() -> str:
    """The node's running compactions and other sstable tasks (a virtual table): benchmarks wait for
    none before they measure, so one size's compactions do not land in the next's figures."""
    return "SELECT keyspace_name, table_name, kind FROM system_views.sstable_tasks"
