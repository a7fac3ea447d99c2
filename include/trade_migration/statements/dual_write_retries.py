"""dual_write_retries: failed dual writes, recorded by the writer and finished by the healer."""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from trade_migration.statements.text import column_list, in_keyspace, markers, select_from

_WHERE = "bucket = ? AND trade_id = ? AND write_time = ?"


class Retry(NamedTuple):
    """A dual_write_retries row. A row only an update recreated (another healer removed it first)
    has no action and no keys: healing it again is harmless."""
    bucket: int
    trade_id: int
    write_time: int                  # microseconds: the failed write's USING TIMESTAMP
    action: str | None               # write / bust / correct
    stale_keys: frozenset[tuple]     # user_trades keys (UserTrade.key) to delete at write_time
    recorded_at: datetime | None
    attempts: int | None
    last_error: str | None


RETRY_COLUMNS = Retry._fields


def decode_retry(row) -> Retry:
    values = Retry._make(row)
    return values._replace(stale_keys=frozenset(tuple(k) for k in values.stale_keys or ()))


def retry_insert(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.dual_write_retries (" + column_list(RETRY_COLUMNS) + ") VALUES ("
                       + markers(RETRY_COLUMNS) + ")", keyspace)


def retry_select_bucket(keyspace: str) -> str:
    return select_from(column_list(RETRY_COLUMNS), "dual_write_retries", keyspace, "bucket = ?")


def retry_failed_again(keyspace: str) -> str:
    return in_keyspace("UPDATE {ks}.dual_write_retries SET attempts = ?, last_error = ? WHERE " + _WHERE, keyspace)


def retry_delete(keyspace: str) -> str:
    return in_keyspace("DELETE FROM {ks}.dual_write_retries WHERE " + _WHERE, keyspace)
