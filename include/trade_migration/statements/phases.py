"""migration_phases: one record per phase (status, run, who, when)."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace, select_from

_COLUMNS = "phase, status, run_id, actor, started_at, finished_at, details"


def phase_upsert(keyspace: str) -> str:
    return in_keyspace("UPDATE {ks}.migration_phases SET status = ?, run_id = ?, actor = ?, started_at = ?,"
                       " finished_at = ?, details = details + ? WHERE phase = ?", keyspace)


def phase_select(keyspace: str, *, every: bool = False) -> str:
    """One phase by phase, or every phase."""
    return select_from(_COLUMNS, "migration_phases", keyspace, "" if every else "phase = ?")
