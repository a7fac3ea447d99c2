"""parity_runs: one row per verification run, newest first; the cleanup gate reads them."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace

# The last four come from schema/04_parity_runs_fixes.cql: what the run resolved and healed.
_COLUMNS = ("started_at, run_id, mode, seed, ranges_checked, ranges_total, rows_checked, missing, mismatched,"
            " orphans, rejected, repaired, status, duration_s, report_path, resolved, heal_pending, healed,"
            " heal_left")


def parity_insert(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.parity_runs (scope, " + _COLUMNS + ") VALUES ('user_trades', ?, ?, ?,"
                       " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", keyspace)


def parity_select_recent(keyspace: str) -> str:
    return in_keyspace("SELECT " + _COLUMNS + " FROM {ks}.parity_runs WHERE scope = 'user_trades' LIMIT ?",
                       keyspace)
