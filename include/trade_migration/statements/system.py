"""The cluster's own tables (estimates, schema) and the one DROP the cleanup runs."""
from __future__ import annotations

from trade_migration.core.config import identifier
from trade_migration.statements.text import in_keyspace

# system.size_estimates is keyed by keyspace name: bound, not formatted.
SIZE_ESTIMATES = ("SELECT range_start, range_end, partitions_count FROM system.size_estimates"
                  " WHERE keyspace_name = ? AND table_name = ?")
SCYLLA_PROBE = "SELECT * FROM system.versions"  # exists on ScyllaDB only


def select_table_name() -> str:
    """Whether a table exists (keyspace and table bound, not formatted): the drop's before/after."""
    return "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?"


def drop_table(keyspace: str, table: str) -> str:
    return in_keyspace("DROP TABLE IF EXISTS {ks}." + identifier(table, what="table"), keyspace)
