"""user_trades: the writes every phase makes, the verification's scans and lookups, the new read path."""
from __future__ import annotations

from trade_migration.core.config import identifier
from trade_migration.core.model import USER_TRADE_COLUMNS
from trade_migration.statements.text import column_list, in_keyspace, markers, writetimes

# user_trades' regular columns: an insert writes them all, so their newest write time is the row's.
_WRITETIME_COLUMNS = USER_TRADE_COLUMNS[5:]
_TIMED = ("token(user_id, symbol_id), " + column_list(USER_TRADE_COLUMNS) + ", "
          + writetimes(_WRITETIME_COLUMNS))
_KEY = "user_id = ? AND symbol_id = ? AND settled_at = ? AND trade_id = ? AND side = ?"


def insert_user_trade(keyspace: str) -> str:
    """One row, at the write time given (the source row's, or the settlement's)."""
    return insert_user_trade_into(keyspace, "user_trades")


def insert_user_trade_into(keyspace: str, table: str) -> str:
    """The dual write, into a named table (the reference writer's; tests name a missing one)."""
    return in_keyspace("INSERT INTO {ks}." + identifier(table, what="table") + " ("
                       + column_list(USER_TRADE_COLUMNS) + ") VALUES (" + markers(USER_TRADE_COLUMNS)
                       + ") USING TIMESTAMP ?", keyspace)


def select_user_trade(keyspace: str) -> str:
    return in_keyspace("SELECT " + column_list(USER_TRADE_COLUMNS) + " FROM {ks}.user_trades WHERE " + _KEY,
                       keyspace)


def scan_user_trades_timed(keyspace: str, *, bypass_cache: bool = False) -> str:
    """Token-range scan of user_trades with each row's write times (a parity run skips newer rows)."""
    tail = " BYPASS CACHE" if bypass_cache else ""
    return in_keyspace("SELECT " + _TIMED + " FROM {ks}.user_trades WHERE token(user_id, symbol_id) > ?"
                       " AND token(user_id, symbol_id) <= ?" + tail, keyspace)


def select_user_trade_timed(keyspace: str) -> str:
    """One user_trades row by primary key, shaped like a scan_user_trades_timed row."""
    return in_keyspace("SELECT " + _TIMED + " FROM {ks}.user_trades WHERE " + _KEY, keyspace)


def count_user_trades_range(keyspace: str) -> str:
    return in_keyspace("SELECT count(*) FROM {ks}.user_trades WHERE token(user_id, symbol_id) > ?"
                       " AND token(user_id, symbol_id) <= ?", keyspace)


def new_user_trades(keyspace: str) -> str:
    """The new read path: one partition, newest first."""
    return in_keyspace("SELECT " + column_list(USER_TRADE_COLUMNS) + " FROM {ks}.user_trades WHERE user_id = ?"
                       " AND symbol_id = ? LIMIT ?", keyspace)
