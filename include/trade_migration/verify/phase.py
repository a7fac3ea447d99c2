"""Phase 5, verify: the run planned (its policy decided) and the phase started; at the end the
outcome reported, recorded (parity_runs, the phase), judged, and told.

A broken outcome is recorded first and raised after (ParityBroken), so the cleanup gate and
the status page see it even though the run fails (the DAG's failure callback sends the notice).
A run that ends well but healed, repaired or resolved anything sends its notice here.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from cassandra.cluster import Session

from trade_migration.core import alerts, metrics, notify
from trade_migration.core.clock import now
from trade_migration.core.config import Config
from trade_migration.core.errors import ParityBroken, PhaseOrderError
from trade_migration.core.settings import DUAL_WRITE_ALERT_PER_HOUR, DUAL_WRITE_ALERT_WINDOW_S
from trade_migration.dual_write.retries import RetryLog, recorded_since
from trade_migration.state import phases
from trade_migration.verify import parity, policy, report
from trade_migration.verify.parity_run import MAX_RESOLVED, RECENT_HOURS, Run

log = logging.getLogger(__name__)
# totals kept in the phase record
RECORDED = ("missing", "mismatched", "orphans", "rejected", "repaired", "resolved")


def nightly_waits(session: Session, config: Config, run_type: str) -> str | None:
    """What a nightly run waits for (the phases verify needs, not completed yet), or None.

    Such a run has nothing to check and ends skipped rather than failed: the schedule keeps running
    from the day the DAG is unpaused, and a failure every night until the backfill ends would page
    someone for nothing. A run someone started is refused instead (start: PhaseOrderError)."""
    if not policy.nightly(run_type):
        return None
    try:
        phases.State(session, config).require(phases.VERIFY)
    except PhaseOrderError as exc:
        return f"nightly verification skipped: {exc}"
    return None


def start(session: Session, config: Config, *, run_id: str, actor: str, reason: str, mode: str | None,
          run_type: str, parallelism: int, seed: int | None = None, sample_share: float = 0.05,
          recent_hours: float = RECENT_HOURS, splits: int | None = None, repair: bool | None = None,
          resolve_orphans: bool | None = None, resolve_limit: int = MAX_RESOLVED, exhaustive: bool = False,
          report_cap: int = 10_000, recheck_delay_s: float = 2.0) -> tuple[dict, list[dict]]:
    """The order guard, the run fixed (what is not given, by the policy for `run_type`: see
    verify/policy.py) and the phase running; (the run, the survey's batches)."""
    state = phases.State(session, config)
    state.require(phases.VERIFY)
    run = parity.plan_run(session, config, run_id=run_id, mode=mode or policy.default_mode(run_type), seed=seed,
                          sample_share=sample_share, recent_hours=recent_hours, splits=splits,
                          repair=policy.repairs(repair, run_type),
                          resolve_orphans=policy.resolves_orphans(resolve_orphans, run_type),
                          resolve_limit=resolve_limit, narrow=not exhaustive, report_cap=report_cap,
                          recheck_delay=recheck_delay_s)
    state.mark(phases.VERIFY, phases.RUNNING, run_id=run.run_id, actor=actor, reason=reason,
               details={"mode": run.mode, "seed": run.seed, "ranges": len(run.ranges), "repair": run.repair,
                        "resolve_orphans": run.resolve_orphans})
    log.info("%s run, seed %d: %d token ranges, %s; rows written after %s left to the next run; repair %s,"
             " resolve orphans %s", run.mode, run.seed, len(run.ranges), report.checked_rows(run), run.started_at,
             run.repair, run.resolve_orphans)
    return run.to_json(), parity.batches(run, parity.survey_indexes(run), parallelism)


def finish(session: Session, config: Config, run: dict, surveys: list[dict], inspections: list[dict],
           resolved: dict | None = None, healing: dict | None = None, *, actor: str, reason: str) -> dict:
    """Conclude, write the report, record the parity run and the phase (completed, or failed when
    broken), tell the notifier of what was fixed; the outcome's summary, or ParityBroken naming
    the report."""
    r = Run.from_json(run)
    outcome = parity.conclude(r, list(surveys), list(inspections or []), resolved, healing)
    paths = report.write(r, outcome)
    log.info("%s", report.format_summary(r, outcome))
    for name, path in paths.items():
        log.info("report %s: %s", name, path)
    log.info("report in the Airflow UI: <Airflow URL>%s%s", report.SERVED_AT,
             report.report_href(r.run_id, "summary.html"))
    folder = paths["chart"].parent
    parity.record(session, config, r, outcome, str(folder))
    send_metrics(outcome)
    ok = outcome.status != parity.BROKEN
    phases.State(session, config).mark(
        phases.VERIFY, phases.COMPLETED if ok else phases.FAILED, run_id=r.run_id, actor=actor, reason=reason,
        details={"status": outcome.status, "mode": r.mode, "healed": outcome.healed["healed"],
                 **{k: getattr(outcome.total, k) for k in RECORDED}})
    if not ok:
        raise ParityBroken(f"{report.format_summary(r, outcome)}; report in {folder}")
    summary = outcome.summary()
    if outcome.fixed_anything():
        notify.send(notify.fixes_notice(run_id=r.run_id, summary=summary, report_folder=folder))
    return summary


def send_metrics(outcome: parity.Outcome) -> None:
    """The run's figures as gauges trade_migration.verify.<figure>, and verify.runs.<status> += 1."""
    t = outcome.total
    metrics.gauges("verify", {"missing": t.missing, "mismatched": t.mismatched, "orphans": t.orphans,
                              "rejected": t.rejected, "repaired": t.repaired, "resolved": t.resolved,
                              "healed": outcome.healed["healed"], "rows_checked": outcome.rows_checked,
                              "duration_s": round(outcome.duration_s, 3)})
    metrics.incr(f"verify.runs.{outcome.status}")


def check_dual_writes(session: Session, config: Config, *, dag_id: str | None, run_id: str,
                      env: Mapping[str, str] | None = None) -> dict:
    """Before anything is healed: the failed dual writes recorded in the last
    TM_DUAL_WRITE_ALERT_WINDOW_S (and not healed yet) as a rate per hour; above
    TM_DUAL_WRITE_ALERT_PER_HOUR the notifier hears of it. The figures (also the gauges
    trade_migration.dual_write.retries_pending and .failures_per_hour)."""
    window, limit = int(DUAL_WRITE_ALERT_WINDOW_S.get(env)), float(DUAL_WRITE_ALERT_PER_HOUR.get(env))
    records = RetryLog(session, config).pending()
    recorded = recorded_since(records, now() - timedelta(seconds=window))
    per_hour = recorded * 3600 / window
    metrics.gauges("dual_write", {"retries_pending": len(records), "failures_per_hour": round(per_hour, 3)})
    alerted = per_hour > limit
    if alerted:
        notify.send(alerts.dual_write_failures(recorded=recorded, window_s=window, per_hour=per_hour, limit=limit,
                                               dag_id=dag_id, run_id=run_id))
    return {"pending": len(records), "recorded": recorded, "per_hour": per_hour, "alerted": alerted}
