"""Phase 6, cleanup: the gates, what the approver reads, the archive and its check, the drop, the phase record.

Each step after the approval takes the person's Decision (approval.require_approval) and checks
the gates again, so nothing is archived or dropped on a state that changed since the approval.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from cassandra.cluster import Session

from trade_migration.archive import check, store, writer
from trade_migration.archive.store import Store
from trade_migration.cleanup import approval, drop, gates
from trade_migration.core import notify
from trade_migration.core.clock import now
from trade_migration.core.config import LEGACY_TABLE, Config
from trade_migration.core.errors import ArchiveMismatch, ArchiveStoreError
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, Flags, in_effect_from
from trade_migration.verify.counts import table_counts

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


def archive_store(archive_url: str, run_id: str, storage_options: dict | None = None) -> Store:
    """This run's archive folder: the Param's URL (or TM_ARCHIVE_URL, or $TM_REPORT_DIR/archive) / run id."""
    return store.open_store(store.run_url(store.archive_url(archive_url), run_id), storage_options)


def summarize(session: Session, config: Config, report: dict, *, archive_url: str, skip_archive_reason: str,
              run_id: str, response_timeout: timedelta, sample_share: float) -> dict:
    """What the approver reads (a title naming the table, the gates, row counts, parity history, where
    the archive goes) and when it was asked (the approval watch counts from it)."""
    where = store.run_url(store.archive_url(archive_url), run_id)
    counts = table_counts(session, config)
    text = approval.body(report, counts, archive_url=where, skip_archive_reason=skip_archive_reason,
                         run_id=run_id, response_timeout=response_timeout, sample_share=sample_share)
    log.info("approval request:\n%s", text)
    return {"subject": approval.subject(config), "table": f"{config.keyspace}.{LEGACY_TABLE}", "body": text,
            "archive_url": where, "counts": counts, "asked_at": now().isoformat()}


def archive_table(session: Session, config: Config, opts: gates.GateOptions, decision: approval.Decision, *,
                  archive: Store, skip_archive_reason: str, refresh_bound_s: float, parallelism: int,
                  run_id: str) -> dict:
    """The phase running, then settled_trades archived (or the audited reason to skip it).

    A store that cannot be used fails first, before anything is recorded or written. Rows written
    after dual_write=new_only plus the services' refresh bound mean a writer still writes the
    table: the archive refuses them."""
    gates.evaluate(session, config, opts).raise_if_failed()
    skip = skip_archive_reason.strip()
    if not skip:
        store.probe(archive)
    state = phases.State(session, config)
    state.mark(phases.CLEANUP, phases.RUNNING, run_id=run_id, actor=decision.user, reason=decision.line(),
               details={"archive_url": archive.url})
    if skip:
        state.audit(phases.CLEANUP, drop.ARCHIVE_SKIPPED, actor=decision.user, reason=skip,
                    details={"run_id": run_id})
        return {"url": None, "rows": None, "skipped": skip}
    flag = Flags(session, config).get(DUAL_WRITE, serial=True)
    manifest = writer.write_archive(
        session, config, archive, run_id=run_id, written_before=in_effect_from(flag.changed_at, refresh_bound_s),
        options=writer.ArchiveOptions(parallelism=parallelism))
    result = {"url": archive.url, "rows": manifest["rows"], "objects": manifest["objects"],
              "bytes": manifest["bytes"], "counted": manifest["counted"]}
    state.audit(phases.CLEANUP, drop.ARCHIVED, actor=decision.user, reason=decision.line(),
                details={"run_id": run_id, **result})
    return result


def verify_archive(session: Session, config: Config, decision: approval.Decision, *, archive: Store, archived: dict,
                   options: check.CheckOptions, run_id: str) -> dict:
    """The archive read back before the drop: every object's sha256 and rows against the manifest,
    a seeded sample of ranges against settled_trades. Any difference: the notifier hears of it, the
    refusal is audited and ArchiveMismatch fails the run, naming what differed; nothing is dropped."""
    if archived.get("skipped"):
        return {**archived, "verified": None}
    try:
        verified = check.check_archive(session, config, archive, options)
    except (ArchiveMismatch, ArchiveStoreError) as exc:
        phases.State(session, config).audit(phases.CLEANUP, drop.ARCHIVE_REFUSED, actor=decision.user,
                                            reason=str(exc)[:2000], details={"run_id": run_id, "url": archive.url})
        notify.send(notify.Notice(f"cleanup stopped before the drop: the archive of {config.keyspace}.settled_trades"
                                  f" does not match (run {run_id})",
                                  f"{exc}\nNothing was dropped.", {"run_id": run_id, "url": archive.url}))
        raise
    phases.State(session, config).audit(phases.CLEANUP, drop.ARCHIVE_VERIFIED, actor=decision.user,
                                        reason=decision.line(), details={"run_id": run_id, **verified})
    return {**archived, "verified": verified}


def drop_table(session: Session, config: Config, opts: gates.GateOptions, decision: approval.Decision, *,
               archived: dict, run_id: str) -> dict:
    """The gates once more, then dual_write retired and settled_trades dropped: only after the
    archive was verified (or skipped with a reason)."""
    if not archived.get("skipped") and not archived.get("verified"):
        raise ArchiveMismatch(f"the archive {archived.get('url')} was not verified; nothing was dropped")
    gates.evaluate(session, config, opts).raise_if_failed()
    return drop.drop_legacy(session, config, actor=decision.user, run_id=run_id,
                             details={"approved": decision.line(), "archive": archived})


def finish(session: Session, config: Config, decision: approval.Decision, *, archived: dict, dropped: dict,
           run_id: str) -> None:
    """Record phase cleanup completed: the end of the migration."""
    phases.State(session, config).mark(
        phases.CLEANUP, phases.COMPLETED, run_id=run_id, actor=decision.user, reason=decision.line(),
        details={"approved_by": decision.user, "approved_at": decision.at, "dropped": dropped["table"],
                 "archive_url": archived["url"], "archived_rows": archived["rows"],
                 "archive_skipped": archived.get("skipped", "")})
    log.info("the migration is complete: %s dropped, archive %s", dropped["table"], archived["url"])
