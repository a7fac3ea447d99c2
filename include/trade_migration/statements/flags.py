"""migration_flags: the dual_write and read_path flags, changed only by compare-and-set."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace, select_from

_COLUMNS = "name, value, version, changed_at, changed_by, reason"


def flag_insert_if_absent(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.migration_flags (" + _COLUMNS + ") VALUES (?, ?, 0, ?, ?, ?)"
                       " IF NOT EXISTS", keyspace)


def flag_compare_and_set(keyspace: str) -> str:
    return in_keyspace("UPDATE {ks}.migration_flags SET value = ?, version = ?, changed_at = ?, changed_by = ?,"
                       " reason = ? WHERE name = ? IF value = ? AND version = ?", keyspace)


def flag_select(keyspace: str, *, every: bool = False) -> str:
    """One flag by name, or every flag."""
    return select_from(_COLUMNS, "migration_flags", keyspace, "" if every else "name = ?")
