"""Phase 6, cleanup: the gates, what the approver reads, the archive, the drop, the phase record.

Each step after the approval takes the person's Decision (approval.require_approval) and checks
the gates again, so nothing is archived or dropped on a state that changed since the approval.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from cassandra.cluster import Session

from trade_migration.cleanup import approval, archive, drop, gates
from trade_migration.core.config import Config
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, Flags, in_effect_from

log = logging.getLogger(__name__)


def over(session: Session, config: Config) -> str | None:
    """Why there is nothing to do when the migration is over (cleanup completed, the table gone), else None."""
    done = drop.finished(session, config)
    if done is None:
        return None
    return (f"the migration is over: {config.keyspace}.settled_trades was dropped by run {done.run_id}"
            f" ({done.actor}, {done.finished_at}); nothing to do")


def check_gates(session: Session, config: Config, opts: gates.GateOptions, *, run_id: str, actor: str) -> dict:
    """Every gate, with what a person asserted to pass one audited; GatesFailed unless all pass."""
    report = gates.evaluate(session, config, opts)
    gates.record_overrides(session, config, report, opts, actor=actor, run_id=run_id)
    log.info("%s", report.text())
    report.raise_if_failed()
    return report.to_dict()


def summarize(session: Session, config: Config, report: dict, *, archive_dir: str, skip_archive_reason: str,
              run_id: str, response_timeout: timedelta) -> dict:
    """What the approver reads (gates, row counts, parity history, where the archive goes)."""
    where = str(archive.run_dir(archive.archive_root(archive_dir), run_id))
    counts = archive.table_counts(session, config)
    text = approval.body(report, counts, archive_dir=where, skip_archive_reason=skip_archive_reason,
                         run_id=run_id, response_timeout=response_timeout)
    log.info("approval request:\n%s", text)
    return {"body": text, "archive_dir": where, "counts": counts}


def archive_table(session: Session, config: Config, opts: gates.GateOptions, decision: approval.Decision, *,
                  archive_dir: str, skip_archive_reason: str, refresh_bound_s: float, parallelism: int,
                  run_id: str) -> dict:
    """The phase running, then settled_trades in Parquet (or the audited reason to skip it).

    Rows written after dual_write=new_only plus the services' refresh bound mean a writer still
    writes the table: the archive refuses them."""
    gates.evaluate(session, config, opts).raise_if_failed()
    state = phases.State(session, config)
    state.mark(phases.CLEANUP, phases.RUNNING, run_id=run_id, actor=decision.user, reason=decision.line(),
               details={"archive_dir": archive_dir})
    skip = skip_archive_reason.strip()
    if skip:
        state.audit(phases.CLEANUP, drop.ARCHIVE_SKIPPED, actor=decision.user, reason=skip,
                    details={"run_id": run_id})
        return {"directory": None, "rows": None, "skipped": skip}
    flag = Flags(session, config).get(DUAL_WRITE, serial=True)
    manifest = archive.write_archive(
        session, config, Path(archive_dir), run_id=run_id,
        written_before=in_effect_from(flag.changed_at, refresh_bound_s),
        options=archive.ArchiveOptions(parallelism=parallelism))
    result = {"directory": archive_dir, "rows": manifest["rows"], "files": manifest["files"],
              "counted": manifest["counted"]}
    state.audit(phases.CLEANUP, drop.ARCHIVED, actor=decision.user, reason=decision.line(),
                details={"run_id": run_id, **result})
    return result


def drop_table(session: Session, config: Config, opts: gates.GateOptions, decision: approval.Decision, *,
               archived: dict, run_id: str) -> dict:
    """The gates once more, then dual_write retired and settled_trades dropped."""
    gates.evaluate(session, config, opts).raise_if_failed()
    return drop.drop_legacy(session, config, actor=decision.user, run_id=run_id,
                             details={"approved": decision.line(), "archive": archived})


def finish(session: Session, config: Config, decision: approval.Decision, *, archived: dict, dropped: dict,
           run_id: str) -> None:
    """Record phase cleanup completed: the end of the migration."""
    phases.State(session, config).mark(
        phases.CLEANUP, phases.COMPLETED, run_id=run_id, actor=decision.user, reason=decision.line(),
        details={"approved_by": decision.user, "approved_at": decision.at, "dropped": dropped["table"],
                 "archive_dir": archived["directory"], "archived_rows": archived["rows"],
                 "archive_skipped": archived.get("skipped", "")})
    log.info("the migration is complete: %s dropped, archive %s", dropped["table"], archived["directory"])
