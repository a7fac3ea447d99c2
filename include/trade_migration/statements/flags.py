"""migration_flags: the dual_write and read_path flags, changed only by compare-and-set."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace

_COLUMNS = "name, value, version, changed_at, changed_by, reason"


def flag_insert_if_absent(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.migration_flags (" + _COLUMNS + ") VALUES (?, ?, 0, ?, ?, ?)"
                       " IF NOT EXISTS", keyspace)


def flag_compare_and_set(keyspace: str) -> str:
    return in_keyspace("UPDATE {ks}.migration_flags SET value = ?, version = ?, changed_at = ?, changed_by = ?,"
                       " reason = ? WHERE name = ? IF value = ? AND version = ?", keyspace)


def flag_select(keyspace: str) -> str:
    return in_keyspace("SELECT " + _COLUMNS + " FROM {ks}.migration_flags WHERE name = ?", keyspace)


def flags_select_all(keyspace: str) -> str:
    return in_keyspace("SELECT " + _COLUMNS + " FROM {ks}.migration_flags", keyspace)
