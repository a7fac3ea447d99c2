"""Every table of a keyspace as data, to compare the database after one run and after two."""
from __future__ import annotations

from conftest import ALL_TABLES

# Write times are part of the snapshot where rows are copied: a rerun that rewrote a row, even with
# the same values, would show a newer write time (the backfill and repair keep the source's).
WRITETIME_OF = {"user_trades": "price", "settled_trades": "price"}


def table_rows(session, keyspace: str, table: str) -> list[dict]:
    cols = [r.column_name for r in session.execute(
        "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table))]
    extra = f", WRITETIME({WRITETIME_OF[table]}) AS writetime" if table in WRITETIME_OF else ""
    rows = session.execute(f"SELECT {', '.join(sorted(cols))}{extra} FROM {keyspace}.{table}")
    return [dict(r._asdict()) for r in rows]


def frozen(value):
    if isinstance(value, dict):
        return tuple(sorted((k, frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, set, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def snapshot(session, keyspace: str, tables=ALL_TABLES) -> dict[str, list[dict]]:
    """{table: rows as dicts, in a stable order}; a missing table maps to None."""
    present = {r.table_name for r in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))}
    out = {}
    for table in tables:
        if table not in present:
            out[table] = None
            continue
        rows = table_rows(session, keyspace, table)
        out[table] = sorted(rows, key=lambda r: repr(frozen(r)))
    return out


def schema_of(session, keyspace: str) -> dict:
    return {(r.table_name, r.column_name): r.type for r in session.execute(
        "SELECT table_name, column_name, type FROM system_schema.columns WHERE keyspace_name = %s", (keyspace,))}
