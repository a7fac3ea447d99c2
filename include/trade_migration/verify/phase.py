"""Phase 5, verify: the run planned and the phase started; at the end the outcome reported,
recorded (parity_runs, the phase) and judged.

A broken outcome is recorded first and raised after (ParityBroken), so the cleanup gate and
the status page see it even though the run fails.
"""
from __future__ import annotations

import logging

from cassandra.cluster import Session

from trade_migration.core.config import Config
from trade_migration.core.errors import ParityBroken
from trade_migration.state import phases
from trade_migration.verify import parity, report
from trade_migration.verify.parity_run import Run, default_mode

log = logging.getLogger(__name__)
RECORDED = ("missing", "mismatched", "orphans", "rejected", "repaired")   # totals kept in the phase record


def start(session: Session, config: Config, *, run_id: str, actor: str, reason: str, mode: str | None,
          run_type: str, parallelism: int, seed: int | None = None, sample_share: float = 0.05,
          splits: int | None = None, repair: bool = False, exhaustive: bool = False, report_cap: int = 10_000,
          recheck_delay_s: float = 2.0) -> tuple[dict, list[dict]]:
    """The order guard, the run fixed (no mode: the nightly schedule's or full, by `run_type`) and
    the phase running; (the run, the survey's batches)."""
    state = phases.State(session, config)
    state.require(phases.VERIFY)
    run = parity.plan_run(session, config, run_id=run_id, mode=mode or default_mode(run_type), seed=seed,
                          sample_share=sample_share, splits=splits, repair=repair, narrow=not exhaustive,
                          report_cap=report_cap, recheck_delay=recheck_delay_s)
    state.mark(phases.VERIFY, phases.RUNNING, run_id=run.run_id, actor=actor, reason=reason,
               details={"mode": run.mode, "seed": run.seed, "ranges": len(run.checked_ranges), "repair": run.repair})
    log.info("%s run, seed %d: %d of %d token ranges checked row by row, rows written after %s left to"
             " the next run", run.mode, run.seed, len(run.checked_ranges), len(run.ranges), run.started_at)
    return run.to_json(), parity.batches(run, parity.survey_indexes(run), parallelism)


def finish(session: Session, config: Config, run: dict, surveys: list[dict], inspections: list[dict], *,
           actor: str, reason: str) -> dict:
    """Conclude, write the report, record the parity run and the phase (completed, or failed when
    broken); the outcome's summary, or ParityBroken naming the report."""
    r = Run.from_json(run)
    outcome = parity.conclude(r, list(surveys), list(inspections or []))
    paths = report.write(r, outcome)
    log.info("%s", report.format_summary(r, outcome))
    for name, path in paths.items():
        log.info("report %s: %s", name, path)
    folder = paths["chart"].parent
    parity.record(session, config, r, outcome, str(folder))
    ok = outcome.status != parity.BROKEN
    phases.State(session, config).mark(
        phases.VERIFY, phases.COMPLETED if ok else phases.FAILED, run_id=r.run_id, actor=actor, reason=reason,
        details={"status": outcome.status, "mode": r.mode, **{k: getattr(outcome.total, k) for k in RECORDED}})
    if not ok:
        raise ParityBroken(f"{report.format_summary(r, outcome)}; report in {folder}")
    return outcome.summary()
