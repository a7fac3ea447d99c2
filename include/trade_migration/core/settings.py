"""Every TM_* environment variable, with its default and what it is for; read here and nowhere else.

Also the defaults of how hard one task works the cluster, which the DAGs' Params, the Options
classes and the command line share.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from trade_migration.core.errors import ConfigError

# How hard one task works the cluster (Params, Options and the command line start from these).
FETCH_SIZE = 1000          # rows per page of a scan
IN_FLIGHT = 128            # writes (backfill) or key lookups (verify) in flight per task
PAGE_TIMEOUT_S = 60.0      # client-side seconds per page request
COUNTS_IN_FLIGHT = 8       # per-range COUNT(*)s in flight per task
# Rows per unlogged batch of the backfill. A user_trades row holds only fixed-width values (and a 3-4
# byte side): measured on Cassandra 5.0, at most 299 bytes of batch size with a TTL (285 without), so
# 16 rows (4,784 bytes) stay under batch_size_warn_threshold (5 KiB: the node logs every
# multi-partition batch above it; above batch_size_fail_threshold, 50 KiB, it refuses the batch).
BATCH_ROWS = 16
# Partitions per unlogged batch of the backfill: above unlogged_batch_across_partitions_warn_threshold
# (10) the node warns in every response, and the driver logs each of those warnings.
BATCH_PARTITIONS = 10
# Rows per batch of a partition with more rows than BATCH_ROWS in one page: a single-partition batch is
# one mutation, which neither threshold checks.
PARTITION_BATCH_ROWS = 50


@dataclass(frozen=True)
class Setting:
    name: str                                  # the environment variable
    default: object
    doc: str
    parse: Callable[[str], object] = str

    def get(self, env: Mapping[str, str] | None = None) -> object:
        """The variable's value from `env` (the process environment by default), else the default."""
        env = os.environ if env is None else env
        if self.name not in env:
            return self.default
        try:
            return self.parse(env[self.name])
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc}") from exc


def _hosts(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _switch(text: str) -> bool:
    """on/off (also true/false, yes/no, 1/0); anything else is refused rather than guessed."""
    value = {"on": True, "true": True, "yes": True, "1": True,
             "off": False, "false": False, "no": False, "0": False}.get(text.strip().lower())
    if value is None:
        raise ConfigError(f"expected on or off, got {text!r}")
    return value


KEYSPACE = Setting("TM_KEYSPACE", "trading", "keyspace of both tables and the migration's state")
CONTACT_POINTS = Setting("TM_CONTACT_POINTS", ("127.0.0.1",), "comma-separated hosts (commands and scripts;"
                         " the DAGs and the page use the Airflow connection)", _hosts)
PORT = Setting("TM_PORT", 9042, "the native protocol port", int)
REPLICATION = Setting("TM_REPLICATION", '{"class": "SimpleStrategy", "replication_factor": 1}',
                      "JSON replication map for a keyspace the schema step creates")
READ_CONSISTENCY = Setting("TM_READ_CONSISTENCY", "LOCAL_QUORUM", "consistency level of reads")
WRITE_CONSISTENCY = Setting("TM_WRITE_CONSISTENCY", "LOCAL_QUORUM", "consistency level of writes")
SERIAL_CONSISTENCY = Setting("TM_SERIAL_CONSISTENCY", "LOCAL_SERIAL", "serial consistency of compare-and-set")
LOCAL_DC = Setting("TM_LOCAL_DC", None, "the datacenter the driver prefers (none: the driver's choice)")
CONN_ID = Setting("TM_CONN_ID", "scylla_default", "the Airflow connection the DAGs and the page use")
REPORT_DIR = Setting("TM_REPORT_DIR", "reports", "where verification reports and the cleanup archive go")
NIGHTLY_MODE = Setting("TM_NIGHTLY_MODE", "sampled", "full or sampled: the scheduled verification's mode")
NIGHTLY_REPAIR = Setting("TM_NIGHTLY_REPAIR", True, "on/off: the scheduled verification heals queued dual"
                         " writes and rewrites missing and mismatched rows (a run's repair Param wins)", _switch)
NIGHTLY_RESOLVE_ORPHANS = Setting("TM_NIGHTLY_RESOLVE_ORPHANS", True, "on/off: the scheduled verification deletes"
                                  " confirmed orphans (a run's resolve_orphans Param wins)", _switch)
PARITY_NOTIFIER = Setting("TM_PARITY_NOTIFIER", None, "'package.module:function' told of a parity run that"
                          " is broken or healed, repaired or resolved anything (none: the log)")
APPROVAL_TIMEOUT_S = Setting("TM_APPROVAL_TIMEOUT_S", 24 * 3600, "seconds the cleanup waits for an answer"
                             " before Reject is taken by default", int)
ARCHIVE_URL = Setting("TM_ARCHIVE_URL", None, "where the cleanup archives settled_trades: file:///abs/dir, an"
                      " absolute path, s3://bucket/prefix, gs://..., abfs://... (none: $TM_REPORT_DIR/archive;"
                      " the archive_url Param wins)")
ARCHIVE_CONN_ID = Setting("TM_ARCHIVE_CONN_ID", None, "the Airflow connection holding the object store's"
                          " credentials (access key and secret, extra endpoint_url, region_name); none: the"
                          " store's own")
STATSD_HOST = Setting("TM_STATSD_HOST", None, "StatsD host the migration's metrics go to, every name prefixed"
                      " 'trade_migration.' (none: no metrics are sent)")
STATSD_PORT = Setting("TM_STATSD_PORT", 8125, "StatsD UDP port", int)
NOTIFIER = Setting("TM_NOTIFIER", None, "'package.module:function' told of every alert (a task failed for good, a"
                   " stalled range, ...) and parity notice; none: TM_PARITY_NOTIFIER, else the log")
ALERT_CONN_ID = Setting("TM_ALERT_CONN_ID", "tm_alerts", "the Airflow connection of the webhook notifier"
                        " (conn type http: host = the URL, its secret field = the signing secret)")
STALL_AFTER_S = Setting("TM_STALL_AFTER_S", 900.0, "seconds a running backfill range may go without a checkpoint"
                        " before it is reported stalled", float)
DUAL_WRITE_ALERT_PER_HOUR = Setting("TM_DUAL_WRITE_ALERT_PER_HOUR", 10.0, "failed dual writes per hour (over"
                                    " TM_DUAL_WRITE_ALERT_WINDOW_S) above which a verification run alerts", float)
DUAL_WRITE_ALERT_WINDOW_S = Setting("TM_DUAL_WRITE_ALERT_WINDOW_S", 24 * 3600, "seconds of dual_write_retries"
                                    " records the failure rate is measured over", int)
APPROVAL_ALERT_AFTER_S = Setting("TM_APPROVAL_ALERT_AFTER_S", 4 * 3600, "seconds the cleanup's approval may"
                                 " wait unanswered before the notifier is told (once per run)", int)
APPROVAL_WATCH_EVERY_S = Setting("TM_APPROVAL_WATCH_EVERY_S", 300, "seconds between two looks of the cleanup's"
                                 " approval watch (it ends at most this long after the approval is answered)", int)

REGISTRY = {s.name: s for s in (KEYSPACE, CONTACT_POINTS, PORT, REPLICATION, READ_CONSISTENCY, WRITE_CONSISTENCY,
                                SERIAL_CONSISTENCY, LOCAL_DC, CONN_ID, REPORT_DIR, NIGHTLY_MODE, NIGHTLY_REPAIR,
                                NIGHTLY_RESOLVE_ORPHANS, PARITY_NOTIFIER, APPROVAL_TIMEOUT_S, ARCHIVE_URL,
                                ARCHIVE_CONN_ID,
                                STATSD_HOST, STATSD_PORT, NOTIFIER, ALERT_CONN_ID, STALL_AFTER_S,
                                DUAL_WRITE_ALERT_PER_HOUR, DUAL_WRITE_ALERT_WINDOW_S, APPROVAL_ALERT_AFTER_S,
                                APPROVAL_WATCH_EVERY_S)}
# Config's fields and the variables they come from.
CONNECTION = {"keyspace": KEYSPACE, "contact_points": CONTACT_POINTS, "port": PORT, "replication": REPLICATION,
              "read_consistency": READ_CONSISTENCY, "write_consistency": WRITE_CONSISTENCY,
              "serial_consistency": SERIAL_CONSISTENCY, "local_dc": LOCAL_DC}


def report_root(env: Mapping[str, str] | None = None) -> Path:
    """The absolute folder of reports and archives ($TM_REPORT_DIR; empty or unset: ./reports)."""
    return Path(REPORT_DIR.get(env) or REPORT_DIR.default).resolve()
