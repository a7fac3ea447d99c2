"""rejected_trades: settled trades that cannot convert, with their reason and raw values."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace


def reject_insert(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.rejected_trades (trade_id, row_token, reason, raw, source, detected_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)", keyspace)


def reject_insert_at(keyspace: str) -> str:
    """The writer's and the healer's reject, at the trade's write time: a later correction or bust wins."""
    return reject_insert(keyspace) + " USING TIMESTAMP ?"


def reject_delete_at(keyspace: str) -> str:
    """A reject gone with its trade (bust) or made valid (correction), at that write's time."""
    return in_keyspace("DELETE FROM {ks}.rejected_trades USING TIMESTAMP ? WHERE trade_id = ?", keyspace)


def rejects_select_all(keyspace: str) -> str:
    return in_keyspace("SELECT trade_id, row_token, reason, raw, source, detected_at FROM {ks}.rejected_trades",
                       keyspace)


def rejects_select_ids(keyspace: str) -> str:
    """The rejects the cleanup counts and asks a human to acknowledge (without their raw values)."""
    return in_keyspace("SELECT trade_id, reason, source FROM {ks}.rejected_trades", keyspace)
