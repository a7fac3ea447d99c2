"""Phase 4, backfill: start, copy, finish, for the DAG and the command line alike.

start is the order guard (create_table and dual_write completed), the ledger planned or resumed,
the ranges chosen and the phase recorded running; copy is one batch of ranges; finish summarizes
the ledger and records the phase completed once every range is done. A run that fails leaves
the phase failed through fail_unfinished (the DAG's teardown, the command line's error path).
"""
from __future__ import annotations

import logging

from cassandra.cluster import Session

from trade_migration.backfill import copier, plan, ttl
from trade_migration.backfill.summary import backfill_summary, format_backfill
from trade_migration.core.config import Config
from trade_migration.core.errors import BackfillIncomplete
from trade_migration.core.session import is_scylla
from trade_migration.state import phases
from trade_migration.state.ledger import DONE, Ledger, RangeState

log = logging.getLogger(__name__)
RECORDED = ("rows_read", "rows_written", "rows_rejected")   # the summary's numbers kept in the phase record


def start(session: Session, config: Config, backfill_id: str, *, splits: int | None, ranges: list[str],
          run_id: str, actor: str, reason: str, ttl_policy: str = ttl.REFUSE) -> list[RangeState]:
    """The ranges this run copies (every unfinished one, or exactly those listed); the phase running.
    A settled_trades whose rows all expire (a default TTL) fails here under ttl_policy "refuse"."""
    state = phases.State(session, config)
    state.require(phases.BACKFILL)
    ledger = Ledger(session, config, backfill_id)
    work = plan.select(plan.ensure_ledger(session, config, ledger, splits, ttl_policy=ttl_policy), ledger, ranges)
    state.mark(phases.BACKFILL, phases.RUNNING, run_id=run_id, actor=actor, reason=reason,
               details={"backfill_id": backfill_id, "ranges": len(work), "ttl_policy": ttl_policy})
    if not work:
        log.info("backfill %s is complete: every range is done, nothing to write", backfill_id)
    return work


def copy(session: Session, config: Config, backfill_id: str, spans: list, **options) -> dict:
    """Copy the ledger's unfinished ranges inside `spans`; `options` are copier.Options' fields
    (ttl_policy among them: what a source row with a TTL does, backfill/ttl.py)."""
    return copier.run_batch(session, config, backfill_id, spans,
                            copier.Options(**options, bypass_cache=is_scylla(session)))


def finish(session: Session, config: Config, backfill_id: str, *, run_id: str, actor: str, reason: str,
           require_complete: bool = True) -> dict:
    """The ledger's summary; the phase completed if every range is done. An unfinished ledger
    raises BackfillIncomplete when `require_complete` (a run that should have copied it all),
    else is reported and leaves the phase as it is (a rerun of some ranges, or one of several
    runs at once: its own ranges are done, the rest is someone else's)."""
    report = backfill_summary(Ledger(session, config, backfill_id).load())
    log.info("%s", format_backfill(report))
    if not report["complete"]:
        still_open = open_ranges(backfill_id, report)
        if require_complete:
            raise BackfillIncomplete(still_open)
        log.info("this run's ranges are done; %s", still_open)
        return {**report, "still_open": still_open}
    phases.State(session, config).mark(phases.BACKFILL, phases.COMPLETED, run_id=run_id, actor=actor,
                                       reason=reason, details={k: report[k] for k in RECORDED})
    return report


def open_ranges(backfill_id: str, report: dict) -> str:
    """What is not done in the ledger, and the command that resumes it."""
    open_ = {k: v for k, v in report["by_status"].items() if k != DONE}
    failed = [f["range"] for f in report["failed"]]
    return (f"backfill {backfill_id} is not complete: {sum(open_.values())} of {report['ranges']} ranges not done"
            f" {open_}" + (f", failed: {', '.join(failed[:5])}{' …' if len(failed) > 5 else ''}" if failed else "")
            + f". Resume them: trigger user_trades_backfill with backfill_id={backfill_id} (every unfinished"
            " range), or ranges=[labels] for some")
