"""Every CQL statement the migration runs (DDL lives in schema/).

Only validated identifiers (config.identifier) are formatted in; values are always bound.
"""
from __future__ import annotations

from .config import identifier

SETTLED_COLUMNS = ("trade_id", "output_seq", "symbol", "price", "quantity", "buyer_user_id",
                   "seller_user_id", "buyer_order_id", "seller_order_id", "taker_side",
                   "buyer_fee", "seller_fee", "matched_at", "settled_at")
USER_TRADE_COLUMNS = ("user_id", "symbol_id", "settled_at", "trade_id", "side", "price", "quantity",
                      "fee", "order_id", "counterparty_user_id", "is_taker", "matched_at",
                      "output_seq")
# The source row's write time is the newest write to any of its regular columns.
_WRITETIME_COLUMNS = SETTLED_COLUMNS[1:]


def _q(template: str, keyspace: str) -> str:
    return template.format(ks=identifier(keyspace, what="keyspace"))


def _cols(cols: tuple[str, ...]) -> str:
    return ", ".join(cols)


def _marks(cols: tuple[str, ...]) -> str:
    return ", ".join("?" for _ in cols)


def _writetimes() -> str:
    return ", ".join(f"WRITETIME({c})" for c in _WRITETIME_COLUMNS)


def scan_settled(keyspace: str, *, bypass_cache: bool = False) -> str:
    """Token-range scan of settled_trades: the row, its token and write times."""
    tail = " BYPASS CACHE" if bypass_cache else ""
    return _q("SELECT token(trade_id), " + _cols(SETTLED_COLUMNS) + ", " + _writetimes()
              + " FROM {ks}.settled_trades WHERE token(trade_id) > ? AND token(trade_id) <= ?" + tail,
              keyspace)


def scan_user_trades(keyspace: str, *, bypass_cache: bool = False) -> str:
    tail = " BYPASS CACHE" if bypass_cache else ""
    return _q("SELECT token(user_id, symbol_id), " + _cols(USER_TRADE_COLUMNS)
              + " FROM {ks}.user_trades WHERE token(user_id, symbol_id) > ?"
              " AND token(user_id, symbol_id) <= ?" + tail, keyspace)


def count_settled_range(keyspace: str) -> str:
    return _q("SELECT count(*) FROM {ks}.settled_trades WHERE token(trade_id) > ? AND token(trade_id) <= ?",
              keyspace)


def count_user_trades_range(keyspace: str) -> str:
    return _q("SELECT count(*) FROM {ks}.user_trades WHERE token(user_id, symbol_id) > ?"
              " AND token(user_id, symbol_id) <= ?", keyspace)


def count_all(keyspace: str, table: str) -> str:
    """The single full-table COUNT(*) the benchmarks compare against; never used by the DAGs."""
    return _q("SELECT count(*) FROM {ks}." + identifier(table, what="table"), keyspace)


def insert_user_trade(keyspace: str) -> str:
    return _q("INSERT INTO {ks}.user_trades (" + _cols(USER_TRADE_COLUMNS) + ") VALUES ("
              + _marks(USER_TRADE_COLUMNS) + ") USING TIMESTAMP ?", keyspace)


def insert_settled(keyspace: str) -> str:
    return _q("INSERT INTO {ks}.settled_trades (" + _cols(SETTLED_COLUMNS) + ") VALUES ("
              + _marks(SETTLED_COLUMNS) + ") USING TIMESTAMP ?", keyspace)


def select_settled(keyspace: str) -> str:
    return _q("SELECT token(trade_id), " + _cols(SETTLED_COLUMNS) + ", " + _writetimes()
              + " FROM {ks}.settled_trades WHERE trade_id = ?", keyspace)


def select_user_trade(keyspace: str) -> str:
    return _q("SELECT " + _cols(USER_TRADE_COLUMNS) + " FROM {ks}.user_trades WHERE user_id = ?"
              " AND symbol_id = ? AND settled_at = ? AND trade_id = ? AND side = ?", keyspace)


def delete_user_trade(keyspace: str) -> str:
    return _q("DELETE FROM {ks}.user_trades WHERE user_id = ? AND symbol_id = ? AND settled_at = ?"
              " AND trade_id = ? AND side = ?", keyspace)


def select_symbols(keyspace: str) -> str:
    return _q("SELECT symbol, symbol_id, base_asset, quote_asset, price_scale, qty_scale"
              " FROM {ks}.symbols", keyspace)


def insert_symbol(keyspace: str) -> str:
    return _q("INSERT INTO {ks}.symbols (symbol, symbol_id, base_asset, quote_asset, price_scale,"
              " qty_scale) VALUES (?, ?, ?, ?, ?, ?)", keyspace)


def delete_symbol(keyspace: str) -> str:
    return _q("DELETE FROM {ks}.symbols WHERE symbol = ?", keyspace)


# --- read paths -------------------------------------------------------------------------------
def old_trades_by_buyer(keyspace: str) -> str:
    return _q("SELECT " + _cols(SETTLED_COLUMNS) + " FROM {ks}.settled_trades WHERE buyer_user_id = ?",
              keyspace)


def old_trades_by_seller(keyspace: str) -> str:
    return _q("SELECT " + _cols(SETTLED_COLUMNS) + " FROM {ks}.settled_trades WHERE seller_user_id = ?",
              keyspace)


def new_user_trades(keyspace: str) -> str:
    return _q("SELECT " + _cols(USER_TRADE_COLUMNS) + " FROM {ks}.user_trades WHERE user_id = ?"
              " AND symbol_id = ? LIMIT ?", keyspace)


# --- migration state --------------------------------------------------------------------------
def flag_insert_if_absent(keyspace: str) -> str:
    return _q("INSERT INTO {ks}.migration_flags (name, value, version, changed_at, changed_by, reason)"
              " VALUES (?, ?, 0, ?, ?, ?) IF NOT EXISTS", keyspace)


def flag_compare_and_set(keyspace: str) -> str:
    return _q("UPDATE {ks}.migration_flags SET value = ?, version = ?, changed_at = ?, changed_by = ?,"
              " reason = ? WHERE name = ? IF value = ? AND version = ?", keyspace)


def flag_select(keyspace: str) -> str:
    return _q("SELECT name, value, version, changed_at, changed_by, reason FROM {ks}.migration_flags"
              " WHERE name = ?", keyspace)


def flags_select_all(keyspace: str) -> str:
    return _q("SELECT name, value, version, changed_at, changed_by, reason FROM {ks}.migration_flags",
              keyspace)


def phase_upsert(keyspace: str) -> str:
    return _q("UPDATE {ks}.migration_phases SET status = ?, run_id = ?, actor = ?, started_at = ?,"
              " finished_at = ?, details = details + ? WHERE phase = ?", keyspace)


def phase_select(keyspace: str) -> str:
    return _q("SELECT phase, status, run_id, actor, started_at, finished_at, details"
              " FROM {ks}.migration_phases WHERE phase = ?", keyspace)


def phases_select_all(keyspace: str) -> str:
    return _q("SELECT phase, status, run_id, actor, started_at, finished_at, details"
              " FROM {ks}.migration_phases", keyspace)


def audit_insert(keyspace: str) -> str:
    return _q("INSERT INTO {ks}.audit_log (scope, at, phase, action, actor, reason, details)"
              " VALUES ('migration', now(), ?, ?, ?, ?, ?)", keyspace)


def audit_select(keyspace: str) -> str:
    return _q("SELECT toTimestamp(at) AS at, phase, action, actor, reason, details FROM {ks}.audit_log"
              " WHERE scope = 'migration' LIMIT ?", keyspace)


def ledger_insert_if_absent(keyspace: str) -> str:
    return _q("INSERT INTO {ks}.backfill_ranges (backfill_id, range_start, range_end, parent_start,"
              " status, checkpoint, rows_read, rows_written, rows_rejected, attempts, resplit,"
              " updated_at) VALUES (?, ?, ?, ?, 'pending', ?, 0, 0, 0, 0, false, ?) IF NOT EXISTS",
              keyspace)


def ledger_select(keyspace: str) -> str:
    return _q("SELECT range_start, range_end, parent_start, status, checkpoint, rows_read,"
              " rows_written, rows_rejected, attempts, last_error, resplit, started_at, finished_at,"
              " updated_at FROM {ks}.backfill_ranges WHERE backfill_id = ?", keyspace)


def ledger_start(keyspace: str) -> str:
    return _q("UPDATE {ks}.backfill_ranges SET status = 'running', attempts = ?, started_at = ?,"
              " updated_at = ?, last_error = null WHERE backfill_id = ? AND range_start = ?", keyspace)


def ledger_checkpoint(keyspace: str) -> str:
    return _q("UPDATE {ks}.backfill_ranges SET checkpoint = ?, rows_read = ?, rows_written = ?,"
              " rows_rejected = ?, updated_at = ? WHERE backfill_id = ? AND range_start = ?", keyspace)


def ledger_finish(keyspace: str) -> str:
    return _q("UPDATE {ks}.backfill_ranges SET status = ?, checkpoint = ?, rows_read = ?,"
              " rows_written = ?, rows_rejected = ?, last_error = ?, resplit = ?, finished_at = ?,"
              " updated_at = ? WHERE backfill_id = ? AND range_start = ?", keyspace)


def ledger_shrink(keyspace: str) -> str:
    return _q("UPDATE {ks}.backfill_ranges SET range_end = ?, status = 'pending', resplit = false,"
              " last_error = ?, updated_at = ? WHERE backfill_id = ? AND range_start = ?", keyspace)


def ledger_reset(keyspace: str) -> str:
    return _q("UPDATE {ks}.backfill_ranges SET status = 'pending', checkpoint = ?, rows_read = 0,"
              " rows_written = 0, rows_rejected = 0, updated_at = ? WHERE backfill_id = ? AND range_start = ?",
              keyspace)


def reject_insert(keyspace: str) -> str:
    return _q("INSERT INTO {ks}.rejected_trades (trade_id, row_token, reason, raw, source, detected_at)"
              " VALUES (?, ?, ?, ?, ?, ?)", keyspace)


def rejects_select_all(keyspace: str) -> str:
    return _q("SELECT trade_id, row_token, reason, raw, source, detected_at FROM {ks}.rejected_trades",
              keyspace)


def parity_insert(keyspace: str) -> str:
    return _q("INSERT INTO {ks}.parity_runs (scope, started_at, run_id, mode, seed, ranges_checked,"
              " ranges_total, rows_checked, missing, mismatched, orphans, rejected, repaired, status,"
              " duration_s, report_path) VALUES ('user_trades', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
              " ?, ?)", keyspace)


def parity_select_recent(keyspace: str) -> str:
    return _q("SELECT started_at, run_id, mode, seed, ranges_checked, ranges_total, rows_checked,"
              " missing, mismatched, orphans, rejected, repaired, status, duration_s, report_path"
              " FROM {ks}.parity_runs WHERE scope = 'user_trades' LIMIT ?", keyspace)


def drop_table(keyspace: str, table: str) -> str:
    return _q("DROP TABLE IF EXISTS {ks}." + identifier(table, what="table"), keyspace)


# system.size_estimates is keyed by keyspace name: bound, not formatted.
SIZE_ESTIMATES = ("SELECT range_start, range_end, partitions_count FROM system.size_estimates"
                  " WHERE keyspace_name = ? AND table_name = ?")
RELEASE_VERSION = "SELECT release_version FROM system.local"
SCYLLA_PROBE = "SELECT * FROM system.versions"  # exists on ScyllaDB only


# --- reference writer, read-path sampling (issue 3) ---------------------------------------------
def insert_user_trade_into(keyspace: str, table: str) -> str:
    """The dual write, into a named table (the reference writer's; tests name a missing one)."""
    return _q("INSERT INTO {ks}." + identifier(table, what="table") + " (" + _cols(USER_TRADE_COLUMNS)
              + ") VALUES (" + _marks(USER_TRADE_COLUMNS) + ") USING TIMESTAMP ?", keyspace)


def sample_settled_parties(keyspace: str) -> str:
    """Who traded what, from a token onwards: the shadow compare's seeded user sample."""
    return _q("SELECT buyer_user_id, seller_user_id, symbol FROM {ks}.settled_trades"
              " WHERE token(trade_id) > ? LIMIT ?", keyspace)


# --- verification (issue 5) -------------------------------------------------------------------
# user_trades' regular columns: an insert writes them all, so their newest write time is the row's.
_USER_TRADE_WRITETIME_COLUMNS = USER_TRADE_COLUMNS[5:]


def _user_trade_writetimes() -> str:
    return ", ".join(f"WRITETIME({c})" for c in _USER_TRADE_WRITETIME_COLUMNS)


def scan_user_trades_timed(keyspace: str, *, bypass_cache: bool = False) -> str:
    """Token-range scan of user_trades with each row's write times (a parity run skips newer rows)."""
    tail = " BYPASS CACHE" if bypass_cache else ""
    return _q("SELECT token(user_id, symbol_id), " + _cols(USER_TRADE_COLUMNS) + ", " + _user_trade_writetimes()
              + " FROM {ks}.user_trades WHERE token(user_id, symbol_id) > ?"
              " AND token(user_id, symbol_id) <= ?" + tail, keyspace)


def select_user_trade_timed(keyspace: str) -> str:
    """One user_trades row by primary key, shaped like a scan_user_trades_timed row."""
    return _q("SELECT token(user_id, symbol_id), " + _cols(USER_TRADE_COLUMNS) + ", " + _user_trade_writetimes()
              + " FROM {ks}.user_trades WHERE user_id = ? AND symbol_id = ? AND settled_at = ? AND trade_id = ?"
              " AND side = ?", keyspace)


def scan_settled_times(keyspace: str) -> str:
    """Only trade_id and settled_at by token range: a sampled parity run picks the last day's
    trades from these client-side (no ALLOW FILTERING), then reads just those in full."""
    return _q("SELECT token(trade_id), trade_id, settled_at FROM {ks}.settled_trades"
              " WHERE token(trade_id) > ? AND token(trade_id) <= ?", keyspace)


# --- cleanup (issue 6) --------------------------------------------------------------------------
def rejects_select_ids(keyspace: str) -> str:
    """The rejects the cleanup counts and asks a human to acknowledge (without their raw values)."""
    return _q("SELECT trade_id, reason, source FROM {ks}.rejected_trades", keyspace)


def table_exists() -> str:
    """Whether a table exists (keyspace and table bound, not formatted): the drop's before/after."""
    return "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?"


# --- the status page (issue 7) ------------------------------------------------------------------
def ledger_plant(keyspace: str) -> str:
    """One whole ledger row as a run leaves it: the status page's test and benchmark plant
    thousands of ranges in known states with it (plain upserts, no compare-and-set)."""
    return _q("INSERT INTO {ks}.backfill_ranges (backfill_id, range_start, range_end, parent_start, status,"
              " checkpoint, rows_read, rows_written, rows_rejected, attempts, last_error, resplit, started_at,"
              " finished_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", keyspace)


def drop_keyspace(keyspace: str) -> str:
    """Only the demo's local reset uses this (it refuses anything but a loopback node)."""
    return _q("DROP KEYSPACE IF EXISTS {ks}", keyspace)
