"""Restoring an archive: the target table (settled_trades' columns under any name), its rows
written back with their write times and TTLs, and the per-range progress (restore_ranges)."""
from __future__ import annotations

import re

from trade_migration.core.config import identifier
from trade_migration.core.model import SETTLED_COLUMNS
from trade_migration.create_table.schema import SCHEMA_DIR
from trade_migration.statements.text import column_list, in_keyspace, markers

# settled_trades' definition as schema/01_legacy.cql has it (one home for the DDL), without its
# indexes: a restored table is history to read back, not the old read path.
_LEGACY_DDL = re.compile(r"CREATE TABLE IF NOT EXISTS \$\{keyspace\}\.settled_trades \((.*?)\);", re.S)


def _settled_definition() -> str:
    text = (SCHEMA_DIR / "01_legacy.cql").read_text()
    body = "\n".join(line.split("--", 1)[0] for line in _LEGACY_DDL.search(text).group(1).splitlines())
    return " ".join(body.split())


def _table(keyspace: str, table: str) -> str:
    return in_keyspace("{ks}." + identifier(table, what="table"), keyspace)


def create_settled_like(keyspace: str, table: str) -> str:
    """A table with settled_trades' columns and key, if none of that name exists."""
    return f"CREATE TABLE IF NOT EXISTS {_table(keyspace, table)} ({_settled_definition()})"


def any_row(keyspace: str, table: str) -> str:
    """One key of the table, if it has any row: the restore's emptiness check."""
    return f"SELECT trade_id FROM {_table(keyspace, table)} LIMIT 1"


def insert_restored(keyspace: str, table: str) -> str:
    """A row as archived, at its source write time and with the TTL it has left (0: none)."""
    return (f"INSERT INTO {_table(keyspace, table)} ({column_list(SETTLED_COLUMNS)})"
            f" VALUES ({markers(SETTLED_COLUMNS)}) USING TIMESTAMP ? AND TTL ?")


def restored_ranges(keyspace: str) -> str:
    """The ranges of one archive already restored into one target."""
    return in_keyspace("SELECT range_start, range_end, rows, expired, finished_at FROM {ks}.restore_ranges"
                       " WHERE target = ? AND archive = ?", keyspace)


def range_restored(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.restore_ranges (target, archive, range_start, range_end, rows, expired,"
                       " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)", keyspace)
