"""user_trades: the writes every phase makes, the verification's scans and lookups, the new read path."""
from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from cassandra.query import UNSET_VALUE

from trade_migration.core.config import identifier
from trade_migration.core.model import (
    USER_TRADE_COLUMNS,
    USER_TRADE_KEY,
    USER_TRADE_PARTITION,
    USER_TRADE_REGULAR,
    UserTrade,
)
from trade_migration.statements.text import SETTLED_IN_WINDOW, column_list, in_keyspace, markers, newest, writetimes

# A timed row is the token, the row's columns, then the write times of its regular columns (an
# insert writes them all, so their newest is the row's); the positions follow from that order.
_UNTIMED = "token(user_id, symbol_id), " + column_list(USER_TRADE_COLUMNS)   # stops after the columns
_TIMED = _UNTIMED + ", " + writetimes(USER_TRADE_REGULAR)
_TOKEN = 0
_ROW = slice(_TOKEN + 1, _TOKEN + 1 + len(USER_TRADE_COLUMNS))
_WRITETIMES = slice(_ROW.stop, None)
_KEY = " AND ".join(f"{c} = ?" for c in USER_TRADE_KEY)   # binds UserTrade.key


class ScannedUserTrade(NamedTuple):
    token: int
    row: UserTrade
    written: int      # the row's newest write time, microseconds (0 if untimed)


def decode_timed_user_trade(row) -> ScannedUserTrade:
    """A scan_user_trades_timed, select_user_trade_timed or select_user_trades_by_keys row, named
    (an untimed one: written 0)."""
    return ScannedUserTrade(row[_TOKEN], UserTrade._make(row[_ROW]), newest(row[_WRITETIMES]))


def insert_user_trade(keyspace: str) -> str:
    """One row, at the write time given (the source row's, or the settlement's)."""
    return insert_user_trade_into(keyspace, "user_trades")


def insert_values(row: UserTrade, write_time: int, *, clear: Collection[str] = ()) -> tuple:
    """Bind values for insert_user_trade(_into): a null column is left unset, so the insert writes
    no tombstone into the table the gateway reads, unless it is named in `clear` (a value that
    must go: a correction or a repair of a column that is null at the source)."""
    return (*(UNSET_VALUE if v is None and name not in clear else v for name, v in zip(USER_TRADE_COLUMNS, row,
                                                                                      strict=True)),
            write_time)


def insert_user_trade_into(keyspace: str, table: str) -> str:
    """The dual write, into a named table (the reference writer's; tests name a missing one)."""
    return in_keyspace("INSERT INTO {ks}." + identifier(table, what="table") + " ("
                       + column_list(USER_TRADE_COLUMNS) + ") VALUES (" + markers(USER_TRADE_COLUMNS)
                       + ") USING TIMESTAMP ?", keyspace)


def insert_user_trade_ttl(keyspace: str) -> str:
    """One row, at the source row's write time, expiring when the source row does (the backfill's
    ttl_policy "preserve"): bind insert_values(...) and then the seconds left (0: none)."""
    return insert_user_trade(keyspace) + " AND TTL ?"   # ... USING TIMESTAMP ? AND TTL ?


def delete_user_trade_from(keyspace: str, table: str) -> str:
    """One row gone, at the write time given (binds the time, then UserTrade.key): a bust, the key
    a correction moved away from, the healer finishing either."""
    return in_keyspace("DELETE FROM {ks}." + identifier(table, what="table") + " USING TIMESTAMP ? WHERE " + _KEY,
                       keyspace)


def select_user_trade(keyspace: str) -> str:
    return in_keyspace("SELECT " + column_list(USER_TRADE_COLUMNS) + " FROM {ks}.user_trades WHERE " + _KEY,
                       keyspace)


def scan_user_trades_timed(keyspace: str, *, bypass_cache: bool = False, windowed: bool = False) -> str:
    """Token-range scan of user_trades with each row's write times (a parity run skips newer rows).
    Windowed (binds start, end, then a settled_at window [from, to)): a sampled parity run's slice."""
    tail = (SETTLED_IN_WINDOW if windowed else "") + (
        " BYPASS CACHE" if bypass_cache else "")
    return in_keyspace("SELECT " + _TIMED + " FROM {ks}.user_trades WHERE token(user_id, symbol_id) > ?"
                       " AND token(user_id, symbol_id) <= ?" + tail, keyspace)


def select_user_trade_timed(keyspace: str) -> str:
    """One user_trades row by primary key, shaped like a scan_user_trades_timed row."""
    return in_keyspace("SELECT " + _TIMED + " FROM {ks}.user_trades WHERE " + _KEY, keyspace)


def select_user_trades_by_keys(keyspace: str, *, timed: bool = True) -> str:
    """Rows of one symbol by users and clustering keys (binds a list of user_id, the symbol_id, a
    list of (settled_at, trade_id, side)), shaped like scan_user_trades_timed rows (untimed: without
    write times): one request reads what a verification wants from several partitions. It returns
    every existing row of every user x key pair, so the caller keeps the pairs it asked for."""
    clustering = ", ".join(USER_TRADE_KEY[len(USER_TRADE_PARTITION):])
    return in_keyspace("SELECT " + (_TIMED if timed else _UNTIMED) + " FROM {ks}.user_trades"
                       " WHERE user_id IN ? AND symbol_id = ? AND (" + clustering + ") IN ?", keyspace)


def count_user_trades_range(keyspace: str) -> str:
    return in_keyspace("SELECT count(*) FROM {ks}.user_trades WHERE token(user_id, symbol_id) > ?"
                       " AND token(user_id, symbol_id) <= ?", keyspace)


def new_user_trades(keyspace: str) -> str:
    """The new read path: one partition, newest first."""
    return in_keyspace("SELECT " + column_list(USER_TRADE_COLUMNS) + " FROM {ks}.user_trades WHERE user_id = ?"
                       " AND symbol_id = ? LIMIT ?", keyspace)
