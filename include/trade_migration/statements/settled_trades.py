"""settled_trades: the backfill's and the verification's scans, lookups, the old read path."""
from __future__ import annotations

from typing import NamedTuple

from trade_migration.core.model import SETTLED_COLUMNS, SETTLED_REGULAR, SettledTrade
from trade_migration.statements.text import SETTLED_IN_WINDOW, column_list, in_keyspace, markers, newest, writetimes

# A scanned row is the token, the trade's columns, the write times of its regular columns (the
# source row's write time is the newest of those), then their TTLs (the row's is the soonest);
# the positions follow from that order.
# An untimed row stops after the columns (a verification's first look: write times matter only
# where values differ, and cost the node more per row).
_UNTIMED = "token(trade_id), " + column_list(SETTLED_COLUMNS)
_SCANNED = _UNTIMED + ", " + writetimes(SETTLED_REGULAR) + ", " + ", ".join(f"TTL({c})" for c in SETTLED_REGULAR)
_TOKEN = 0
_TRADE = slice(_TOKEN + 1, _TOKEN + 1 + len(SETTLED_COLUMNS))
_WRITETIMES = slice(_TRADE.stop, _TRADE.stop + len(SETTLED_REGULAR))
_TTLS = slice(_WRITETIMES.stop, None)
_TRADE_ID = SETTLED_COLUMNS.index("trade_id")


class ScannedTrade(NamedTuple):
    token: int
    trade: SettledTrade
    written: int      # the row's newest write time, microseconds (0 if every column is null, or untimed)
    ttl: int | None   # seconds until the first of its columns expires; None when none has a TTL (or untimed)


def soonest(ttls) -> int | None:
    """A row's TTL: the fewest seconds any of its columns has left (None when no column has one).
    The row as converted lasts only that long: then a column goes null, or the whole row goes."""
    left = [t for t in ttls if t is not None]
    return min(left) if left else None


def decode_scanned_trade(row) -> ScannedTrade:
    """A scan_settled or select_settled(_in) row, named (an untimed one: written 0, ttl None)."""
    return ScannedTrade(row[_TOKEN], SettledTrade._make(row[_TRADE]), newest(row[_WRITETIMES]), soonest(row[_TTLS]))


def scanned_trade_id(row) -> int:
    """The trade_id of a scan_settled row, without decoding the rest."""
    return row[_TRADE.start + _TRADE_ID]


def expiries_differ(row) -> bool:
    """Whether the scanned row's non-null columns expire at different times (or some never): cells
    of one write share their expiry, so this means later writes with other TTLs, and no single TTL
    on a copy can keep the row as the source keeps it."""
    trade = SettledTrade._make(row[_TRADE])
    values = (getattr(trade, c) for c in SETTLED_REGULAR)
    return len({ttl for value, ttl in zip(values, row[_TTLS], strict=True) if value is not None}) > 1


def scan_settled(keyspace: str, *, bypass_cache: bool = False, windowed: bool = False) -> str:
    """Token-range scan of settled_trades: the row, its token, write times and TTLs. Windowed (binds
    start, end, then a settled_at window [from, to)): a sampled parity run's slice of history, which
    the node picks out of the range (it reads every trade, and sends only those)."""
    tail = (SETTLED_IN_WINDOW if windowed else "") + (" BYPASS CACHE" if bypass_cache else "")
    return in_keyspace("SELECT " + _SCANNED + " FROM {ks}.settled_trades WHERE token(trade_id) > ?"
                       " AND token(trade_id) <= ?" + tail, keyspace)


def select_settled(keyspace: str) -> str:
    """One trade by id, shaped like a scan_settled row."""
    return in_keyspace("SELECT " + _SCANNED + " FROM {ks}.settled_trades WHERE trade_id = ?", keyspace)


def select_settled_in(keyspace: str, *, timed: bool = True) -> str:
    """Trades by a list of ids (bind a list), shaped like scan_settled rows (untimed: without write
    times and TTLs): a verification reads many trades in one request rather than one per trade."""
    return in_keyspace("SELECT " + (_SCANNED if timed else _UNTIMED) + " FROM {ks}.settled_trades"
                       " WHERE trade_id IN ?", keyspace)


def settled_times(keyspace: str) -> str:
    """Settlement times of the trades after a token (binds the token, a limit): what a sampled
    parity run picks its slice of history from, read at a few seeded places on the ring."""
    return in_keyspace("SELECT settled_at FROM {ks}.settled_trades WHERE token(trade_id) > ? LIMIT ?", keyspace)


def count_settled_range(keyspace: str) -> str:
    return in_keyspace("SELECT count(*) FROM {ks}.settled_trades WHERE token(trade_id) > ?"
                       " AND token(trade_id) <= ?", keyspace)


def insert_settled(keyspace: str) -> str:
    """The settlement itself (the reference writer)."""
    return in_keyspace("INSERT INTO {ks}.settled_trades (" + column_list(SETTLED_COLUMNS) + ") VALUES ("
                       + markers(SETTLED_COLUMNS) + ") USING TIMESTAMP ?", keyspace)


def delete_settled(keyspace: str) -> str:
    """A bust: the trade gone, at the write time given (binds the time, then trade_id)."""
    return in_keyspace("DELETE FROM {ks}.settled_trades USING TIMESTAMP ? WHERE trade_id = ?", keyspace)


def old_trades_by_buyer(keyspace: str) -> str:
    """The old read path, through the buyer index."""
    return in_keyspace("SELECT " + column_list(SETTLED_COLUMNS) + " FROM {ks}.settled_trades"
                       " WHERE buyer_user_id = ?", keyspace)


def old_trades_by_seller(keyspace: str) -> str:
    """The old read path, through the seller index."""
    return in_keyspace("SELECT " + column_list(SETTLED_COLUMNS) + " FROM {ks}.settled_trades"
                       " WHERE seller_user_id = ?", keyspace)


def sample_settled_parties(keyspace: str) -> str:
    """Who traded what, from a token onwards: the shadow compare's seeded user sample."""
    return in_keyspace("SELECT buyer_user_id, seller_user_id, symbol FROM {ks}.settled_trades"
                       " WHERE token(trade_id) > ? LIMIT ?", keyspace)
