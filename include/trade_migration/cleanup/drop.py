"""The one step that cannot be undone: settled_trades dropped, once the gates pass and a person approved.

The drop first moves dual_write to 'retired' by compare-and-set, so an operator rolling the
writer back at the same moment either wins (nothing is dropped) or loses (the rollback is
refused). Whether the migration is over is read from the same two facts: the cleanup phase
completed and the table gone.
"""
from __future__ import annotations

from cassandra.cluster import Session

from trade_migration.core.config import LEGACY_TABLE, Config
from trade_migration.core.errors import GatesFailed
from trade_migration.core.prepared import prepared
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, RETIRED, Flags
from trade_migration.statements.system import drop_table, select_table_name

# audit_log actions of the archive and the drop
ARCHIVED, ARCHIVE_SKIPPED, DROPPED = "archived", "archive skipped", "dropped"
ARCHIVE_VERIFIED, ARCHIVE_REFUSED = "archive verified", "archive refused"
SCHEMA_AGREEMENT_S = 60


def finished(session: Session, config: Config) -> phases.Phase | None:
    """The cleanup phase record, if the migration is over (cleanup completed, the table gone)."""
    phase = phases.State(session, config).phase(phases.CLEANUP)
    if phase and phase.status == phases.COMPLETED and not table_exists(session, config.keyspace, LEGACY_TABLE):
        return phase
    return None


def table_exists(session: Session, keyspace: str, table: str) -> bool:
    return session.execute(prepared(session, select_table_name()), (keyspace, table)).one() is not None


def drop_legacy(session: Session, config: Config, *, actor: str, run_id: str, details: dict) -> dict:
    """Retire dual_write (compare-and-set from new_only), then DROP TABLE IF EXISTS settled_trades.

    The table's name comes from config.LEGACY_TABLE only. A dual_write flag that moved away from
    new_only since the gates were checked stops the drop: the compare-and-set refuses it.
    """
    ks = config.keyspace
    flags = Flags(session, config)
    seen = flags.get(DUAL_WRITE, serial=True)
    if seen.value not in (NEW_ONLY, RETIRED):
        raise GatesFailed(f"dual_write is {seen.value!r} (set by {seen.changed_by} at {seen.changed_at}):"
                          f" the settlement service writes {LEGACY_TABLE} again; nothing was dropped")
    flag = flags.set(DUAL_WRITE, RETIRED, actor=actor, expected=seen,
                     reason=f"{LEGACY_TABLE} dropped by cleanup run {run_id}")
    existed = table_exists(session, ks, LEGACY_TABLE)
    session.execute(drop_table(ks, LEGACY_TABLE), timeout=120)
    if not session.wait_for_schema_agreement(wait_time=SCHEMA_AGREEMENT_S):
        raise RuntimeError(f"schema agreement not reached within {SCHEMA_AGREEMENT_S} s after the drop;"
                           " check the cluster")
    if table_exists(session, ks, LEGACY_TABLE):
        raise RuntimeError(f"{ks}.{LEGACY_TABLE} still exists after DROP TABLE")
    result = {"table": f"{ks}.{LEGACY_TABLE}", "existed": existed, "dual_write": flag.value,
              "flag_version": flag.version}
    phases.State(session, config).audit(phases.CLEANUP, DROPPED, actor=actor, reason=f"cleanup run {run_id}",
                                        details={"run_id": run_id, **result, **details})
    return result
