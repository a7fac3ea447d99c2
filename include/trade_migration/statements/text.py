"""How statements are spelled: the keyspace filled in once validated, column and marker lists,
and the write times they select read back."""
from __future__ import annotations

from trade_migration.core.config import identifier


def in_keyspace(template: str, keyspace: str) -> str:
    """template with {ks} replaced by the keyspace, which must be a safe identifier."""
    return template.format(ks=identifier(keyspace, what="keyspace"))


def select_from(columns: str, table: str, keyspace: str, where: str = "") -> str:
    """SELECT columns FROM keyspace.table [WHERE ...]; columns, table and where are the caller's constants."""
    return in_keyspace(f"SELECT {columns} FROM {{ks}}.{table}" + (f" WHERE {where}" if where else ""), keyspace)


# Rows settled in a window [from, to), both tables having settled_at: the node filters a range's rows
SETTLED_IN_WINDOW = " AND settled_at >= ? AND settled_at < ? ALLOW FILTERING"


def column_list(cols: tuple[str, ...]) -> str:
    return ", ".join(cols)


def markers(cols: tuple[str, ...]) -> str:
    return ", ".join("?" for _ in cols)


def writetimes(cols: tuple[str, ...]) -> str:
    return ", ".join(f"WRITETIME({c})" for c in cols)


def newest(stamps) -> int:
    """A row's write time: the newest of its columns' WRITETIME (null columns have none; 0 if none has)."""
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else 0
