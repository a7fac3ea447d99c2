"""migration_phases: one record per phase (status, run, who, when)."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace

_COLUMNS = "phase, status, run_id, actor, started_at, finished_at, details"


def phase_upsert(keyspace: str) -> str:
    return in_keyspace("UPDATE {ks}.migration_phases SET status = ?, run_id = ?, actor = ?, started_at = ?,"
                       " finished_at = ?, details = details + ? WHERE phase = ?", keyspace)


def phase_select(keyspace: str) -> str:
    return in_keyspace("SELECT " + _COLUMNS + " FROM {ks}.migration_phases WHERE phase = ?", keyspace)


def phases_select_all(keyspace: str) -> str:
    return in_keyspace("SELECT " + _COLUMNS + " FROM {ks}.migration_phases", keyspace)
