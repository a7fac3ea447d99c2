"""Restore a cleanup archive into a table: the original write times and TTLs, resumable per range.

restore reads the archive's manifest (an archive without one is incomplete and refused), creates
the target with settled_trades' columns if it is missing, refuses a target that already holds rows
(unless allow_non_empty, or this same restore started it), checks each object's sha256 and writes
its rows back range by range, recording each range in restore_ranges: a rerun (or a retry) skips
the ranges done. Its start and end are audited (phase `restore`) with who and why. The same as
`python -m trade_migration.restore`.
"""
from __future__ import annotations

from airflow.sdk import Param, get_current_context, task
from archive_storage import ARCHIVE_PARAMS_HELP, CONN_ID_PATTERN, given_store
from migration_common import actor, cassandra, phase_dag, text_params, who_and_why

from trade_migration.core.config import IDENTIFIER
from trade_migration.restore.run import Target, restore_archive

TARGET_PATTERN = rf"^{IDENTIFIER.pattern}\.{IDENTIFIER.pattern}(?![\s\S])"


@phase_dag(
    "user_trades_restore",
    doc=__doc__,
    params={
        "archive_url": Param(type="string", minLength=1, maxLength=1000,
                             description="The archive's run folder (the one holding manifest.json), e.g."
                                         " s3://bucket/prefix/manual__2026-11-24T10_00_00_00_00."),
        "into": Param("trading.settled_trades_restored", type="string", pattern=TARGET_PATTERN,
                      description="KEYSPACE.TABLE to restore into (created with settled_trades' columns if missing)."),
        "ranges": Param([], type="array", items={"type": "string"},
                        description="Only these ranges: labels '(start, end]' or start tokens (empty: all)."),
        "allow_non_empty": Param(False, type="boolean",
                                 description="Write into a table that already holds rows (each row keeps its write"
                                             " time, so a newer row in the table wins)."),
        "archive_conn_id": Param(None, type=["null", "string"], pattern=CONN_ID_PATTERN,
                                 description=ARCHIVE_PARAMS_HELP["archive_conn_id"]),
        **who_and_why(),
    },
)
def user_trades_restore():
    @task
    def restore() -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        store = given_store(p["archive_url"], p["archive_conn_id"])
        with cassandra() as (session, config):
            return restore_archive(session, config, store, Target.parse(p["into"]), ranges=p["ranges"],
                                   allow_non_empty=p["allow_non_empty"], actor=actor(ctx), reason=p["reason"])

    restore()


user_trades_restore()
