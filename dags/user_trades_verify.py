"""Phase 5: verify user_trades against settled_trades, nightly at 02:00 UTC and after each backfill.

Reading order: plan (the guard; mode, sample, policy and start time fixed) -> heal (failed dual
writes finished, when the run repairs) -> survey (one mapped task per batch of token ranges:
counts, and in a full run digests) -> narrow (which ranges need a row-by-row look) -> inspect
(mapped: row parity in both directions, recheck, repair) -> resolve (confirmed orphans deleted,
when the run resolves them) -> conclude (the parity_runs row, the report, the phase record).
A broken result fails the run and calls the notifier named by TM_NOTIFIER (else TM_PARITY_NOTIFIER;
the log by default); so does a good one that healed, repaired or resolved anything. heal also
alerts when dual writes fail faster than TM_DUAL_WRITE_ALERT_PER_HOUR.

What a Param left empty means depends on the run's type (Param defaults apply to every run): the
nightly schedule runs TM_NIGHTLY_MODE (sampled unless set), heals and repairs unless
TM_NIGHTLY_REPAIR is off, and resolves orphans unless TM_NIGHTLY_RESOLVE_ORPHANS is off; any
other run (manual, after a backfill) checks everything and changes nothing.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowSkipException
from migration_alerts import range_label
from migration_common import (
    DEFAULT_ARGS,
    MAX_PARALLEL,
    POOL,
    actor,
    cassandra,
    every,
    phase_dag,
    run_by,
    text_params,
    unfinished_phase_teardown,
    who_and_why,
)

from trade_migration.core import alerts, notify
from trade_migration.core.settings import FETCH_SIZE, IN_FLIGHT
from trade_migration.state.phases import VERIFY
from trade_migration.verify import parity, phase, report
from trade_migration.verify.parity_run import MAX_RECENT_HOURS, MAX_RESOLVED, MODES, RECENT_HOURS, Run, Scope

log = logging.getLogger(__name__)
# The backfill's outlet (user_trades_backfill.BACKFILL_DONE). Importing it from that DAG file would
# make the DAG processor register the backfill DAG a second time, under this file; the DAG tests
# check that both name the same asset.
BACKFILL_DONE = Asset("cassandra://trading/user_trades/backfill")
# Only at 02:00: by default Airflow also runs the last 02:00 at once when the DAG is first unpaused
# within 2.4 hours after it.
NIGHTLY = CronTriggerTimetable("0 2 * * *", timezone="UTC", run_immediately=timedelta(0))


def notify_failure(context) -> None:
    """on_failure_callback of this DAG's tasks, instead of the generic one: the parity notice, with
    the run's figures when its report was written (a broken run), for any task that failed for good."""
    ti, error = context["ti"], context.get("exception")
    run_id = context["run_id"]
    notify.send(notify.failure_notice(
        dag_id=ti.dag_id, run_id=run_id, reason=alerts.error_text(error), failed_task=ti.task_id,
        report_folder=report.report_dir(run_id), range_label=range_label(ti, error)))


def _run_type(ctx) -> str:
    run_type = getattr(ctx["dag_run"], "run_type", "manual")
    return getattr(run_type, "value", run_type)


def _options(p: dict) -> parity.Options:
    return parity.Options(fetch_size=p["fetch_size"], max_in_flight=p["max_in_flight"])


@phase_dag(
    "user_trades_verify",
    doc=__doc__,
    schedule=AssetOrTimeSchedule(timetable=NIGHTLY, assets=[BACKFILL_DONE]),
    default_args={**DEFAULT_ARGS, "on_failure_callback": notify_failure},
    params={
        "mode": Param(None, type=["null", "string"], enum=[None, *MODES],
                      values_display={"null": "default: TM_NIGHTLY_MODE at night, full otherwise",
                                      **{m: m for m in MODES}},
                      description="full or sampled; empty: TM_NIGHTLY_MODE (sampled) for the nightly"
                                  " schedule, full otherwise."),
        "sample_share": Param(0.05, type="number", exclusiveMinimum=0, maximum=1,
                              description="Share of the trades a sampled run checks: those settled in a"
                                          " seeded window of history, in both tables."),
        "recent_hours": Param(RECENT_HOURS, type="number", minimum=0, maximum=MAX_RECENT_HOURS,
                              description="Sampled runs: also check every trade settled this many hours before"
                                          " the run; 0: the sample alone. The node reads every row of both"
                                          " tables to find them (README: Nightly parity)."),
        "seed": Param(None, type=["null", "integer"], minimum=0, maximum=2**63 - 1,
                      description="Seed of the sample; empty: derived from the run id. Recorded either way."),
        "repair": Param(None, type=["null", "boolean"],
                        description="Heal failed dual writes, then rewrite missing and mismatched rows from"
                                    " settled_trades. Empty: TM_NIGHTLY_REPAIR (on) for the nightly schedule,"
                                    " off otherwise."),
        "resolve_orphans": Param(None, type=["null", "boolean"],
                                 description="Delete the orphans the run confirms (rows no trade explains), each"
                                             " after a last look, audited. Empty: TM_NIGHTLY_RESOLVE_ORPHANS (on)"
                                             " for the nightly schedule, off otherwise."),
        "resolve_limit": Param(MAX_RESOLVED, type="integer", minimum=1, maximum=100_000,
                               description="More confirmed orphans than this and the run deletes none (a lost"
                                           " settled_trades looks like a table of orphans)."),
        "splits": Param(None, type=["null", "integer"], minimum=1, maximum=8192,
                        description="Token ranges (empty: from the table's size estimate)."),
        "parallelism": Param(4, type="integer", minimum=1, maximum=MAX_PARALLEL,
                             description="Mapped tasks per stage; also capped by the pool."),
        "report_cap": Param(10_000, type="integer", minimum=1, maximum=1_000_000,
                            description="Most differences (and rejects) listed in the report."),
        "recheck_delay_s": Param(2.0, type="number", minimum=0, maximum=600,
                                 description="Wait before a difference is looked at a second time."),
        "exhaustive": Param(False, type="boolean",
                            description="Full runs: look every row up instead of only where digests differ."),
        "fetch_size": Param(FETCH_SIZE, type="integer", minimum=10, maximum=10000),
        "max_in_flight": Param(IN_FLIGHT, type="integer", minimum=1, maximum=1024,
                               description="Lookups in flight per task."),
        **who_and_why(),
    },
)
def user_trades_verify():
    @task
    def plan() -> list[dict]:
        """Returns the survey's batches; the run itself goes to XCom key "run"."""
        ctx = get_current_context()
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            waiting = phase.nightly_waits(session, config, _run_type(ctx))
            if waiting:
                raise AirflowSkipException(waiting)
            run, batches = phase.start(
                session, config, mode=p["mode"], run_type=_run_type(ctx), parallelism=p["parallelism"],
                seed=p["seed"], sample_share=p["sample_share"], recent_hours=p["recent_hours"], splits=p["splits"],
                repair=p["repair"], resolve_orphans=p["resolve_orphans"], resolve_limit=p["resolve_limit"],
                exhaustive=p["exhaustive"],
                report_cap=p["report_cap"], recheck_delay_s=p["recheck_delay_s"],
                **run_by(ctx))
        ctx["ti"].xcom_push(key="run", value=run)
        return batches

    @task(pool=POOL)
    def heal(run: dict) -> dict | None:
        """The dual-write failure rate checked (an alert above the limit), then the healer's summary
        (None when the run does not repair)."""
        ctx = get_current_context()
        with cassandra() as (session, config):
            phase.check_dual_writes(session, config, dag_id=ctx["ti"].dag_id, run_id=ctx["run_id"])
            return parity.heal(session, config, Run.from_json(run))

    @task(pool=POOL, max_active_tis_per_dagrun=MAX_PARALLEL, map_index_template="{{ token_span }}")
    def survey(run: dict, batch: dict) -> dict:
        ctx = get_current_context()
        ctx["token_span"] = batch["label"]
        with cassandra() as (session, config):
            return parity.survey(session, config, Run.from_json(run), batch["ranges"], _options(ctx["params"]))

    @task
    def narrow(run: dict, surveys: list[dict]) -> list[dict]:
        """Returns the inspection's batches (none when the digests agree); the scope goes to key "scope"."""
        ctx = get_current_context()
        r = Run.from_json(run)
        scope = parity.narrow(r, every(surveys))
        log.info("%d ranges to read row by row", len(scope.indexes))
        ctx["ti"].xcom_push(key="scope", value=scope.to_json())
        return parity.batches(r, scope.indexes, ctx["params"]["parallelism"])

    @task(pool=POOL, max_active_tis_per_dagrun=MAX_PARALLEL, map_index_template="{{ token_span }}")
    def inspect(run: dict, scope: dict, batch: dict) -> dict:
        ctx = get_current_context()
        ctx["token_span"] = batch["label"]
        with cassandra() as (session, config):
            return parity.inspect(session, config, Run.from_json(run), Scope.from_json(scope), batch["ranges"],
                                  _options(ctx["params"]))

    # resolve and conclude run when nothing needed a row-by-row look, too; not after a skipped plan
    @task(pool=POOL, trigger_rule="none_failed_min_one_success")
    def resolve(run: dict, inspections: list[dict]) -> dict | None:
        """Deletes, audited, and outcome of each orphan (None when the run does not resolve them)."""
        with cassandra() as (session, config):
            return parity.resolve(session, config, Run.from_json(run), every(inspections),
                                  actor=actor(get_current_context()))

    @task(trigger_rule="none_failed_min_one_success")   # ParityBroken is Permanent: failed at once
    def conclude(run: dict, surveys: list[dict], inspections: list[dict], resolved: dict | None,
                 healing: dict | None) -> dict:
        ctx = get_current_context()
        with cassandra() as (session, config):
            return phase.finish(session, config, run, every(surveys), every(inspections), resolved, healing,
                                actor=actor(ctx), reason=text_params(ctx["params"])["reason"])

    planned = plan()
    healed = heal(planned["run"])
    surveyed = survey.partial(run=planned["run"]).expand(batch=planned)
    healed >> surveyed
    narrowed = narrow(planned["run"], surveyed)
    inspected = inspect.partial(run=planned["run"], scope=narrowed["scope"]).expand(batch=narrowed)
    resolved = resolve(planned["run"], inspected)
    conclude(planned["run"], surveyed, inspected, resolved, healed) >> unfinished_phase_teardown(VERIFY)


user_trades_verify()
