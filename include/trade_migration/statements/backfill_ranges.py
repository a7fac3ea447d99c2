"""backfill_ranges: the backfill's ledger, one row per token range."""
from __future__ import annotations

from trade_migration.statements.text import in_keyspace


def ledger_insert_if_absent(keyspace: str) -> str:
    return in_keyspace("INSERT INTO {ks}.backfill_ranges (backfill_id, range_start, range_end, parent_start,"
                       " status, checkpoint, rows_read, rows_written, rows_rejected, attempts, resplit,"
                       " updated_at) VALUES (?, ?, ?, ?, 'pending', ?, 0, 0, 0, 0, false, ?) IF NOT EXISTS",
                       keyspace)


def ledger_select(keyspace: str) -> str:
    return in_keyspace("SELECT range_start, range_end, parent_start, status, checkpoint, rows_read,"
                       " rows_written, rows_rejected, attempts, last_error, resplit, started_at, finished_at,"
                       " updated_at FROM {ks}.backfill_ranges WHERE backfill_id = ?", keyspace)


def _update(assignments: str, keyspace: str) -> str:
    return in_keyspace("UPDATE {ks}.backfill_ranges SET " + assignments + " WHERE backfill_id = ? AND range_start = ?",
                       keyspace)


def ledger_start(keyspace: str) -> str:
    return _update("status = 'running', attempts = ?, started_at = ?, updated_at = ?, last_error = null", keyspace)


def ledger_checkpoint(keyspace: str) -> str:
    return _update("checkpoint = ?, rows_read = ?, rows_written = ?, rows_rejected = ?, updated_at = ?", keyspace)


def ledger_finish(keyspace: str) -> str:
    return _update("status = ?, checkpoint = ?, rows_read = ?, rows_written = ?, rows_rejected = ?, last_error = ?,"
                   " resplit = ?, finished_at = ?, updated_at = ?", keyspace)


def ledger_shrink(keyspace: str) -> str:
    return _update("range_end = ?, status = 'pending', resplit = false, last_error = ?, updated_at = ?", keyspace)


def ledger_reset(keyspace: str) -> str:
    return _update("status = 'pending', checkpoint = ?, rows_read = 0, rows_written = 0, rows_rejected = 0,"
                   " updated_at = ?", keyspace)


def ledger_ids(keyspace: str) -> str:
    """Every backfill_id (one partition each)."""
    return in_keyspace("SELECT DISTINCT backfill_id FROM {ks}.backfill_ranges", keyspace)
