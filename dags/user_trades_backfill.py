"""Phase 4: copy every settled trade into user_trades by token range (resumable, throttled).

Reading order: plan (ledger + batches) -> copy_ranges (one mapped task per batch, named by its
token span) -> summary (totals, slowest ranges, the Asset that schedules verification).
Clearing one failed mapped task resumes its ranges from their checkpoints.
"""
from __future__ import annotations

import logging

from airflow.sdk import Asset, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from migration_common import (
    ID_PATTERN,
    MAX_PARALLEL,
    POOL,
    backfill_tuning,
    cassandra,
    phase_dag,
    run_by,
    text_params,
    unfinished_phase_teardown,
    who_and_why,
)

from trade_migration.backfill import phase, plan
from trade_migration.backfill.ttl import REFUSE, TTL_POLICIES
from trade_migration.core.settings import FETCH_SIZE, IN_FLIGHT, PAGE_TIMEOUT_S
from trade_migration.state.phases import BACKFILL

log = logging.getLogger(__name__)
BACKFILL_DONE = Asset("cassandra://trading/user_trades/backfill")


@phase_dag(
    "user_trades_backfill",
    doc=__doc__,
    params={
        "backfill_id": Param("main", type="string", pattern=ID_PATTERN,
                             description="Ledger name; reruns with the same id resume it."),
        **backfill_tuning(),
        "ranges": Param(None, type=["null", "array"], items={"type": "string"},
                        description="Empty: every unfinished range. Or labels '(start, end]' / start tokens"
                                    " to rerun exactly those, finished or not (a label from before a re-split"
                                    " names all its pieces)."),
        "fetch_size": Param(FETCH_SIZE, type="integer", minimum=10, maximum=10000),
        "max_in_flight": Param(IN_FLIGHT, type="integer", minimum=1, maximum=1024),
        "page_timeout_s": Param(PAGE_TIMEOUT_S, type="number", minimum=0.001, maximum=600),
        "ttl_policy": Param(REFUSE, type="string", enum=list(TTL_POLICIES),
                            description="A settled_trades row with a TTL: 'refuse' fails the run (at once when the"
                                        " table has a default TTL) so a person decides; 'preserve' gives both of"
                                        " its user_trades rows the seconds it has left, so they expire with it."),
        **who_and_why(),
    },
)
def user_trades_backfill():
    @task
    def plan_ranges() -> list[dict]:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            work = phase.start(session, config, p["backfill_id"], splits=p["splits"], ranges=p["ranges"] or [],
                               ttl_policy=p["ttl_policy"], **run_by(ctx))
        batches = plan.to_batches(work, p["parallelism"], seed=p["backfill_id"])
        log.info("%d ranges to copy in %d batches", len(work), len(batches))
        return batches

    @task(pool=POOL, max_active_tis_per_dagrun=MAX_PARALLEL, map_index_template="{{ token_span }}")
    def copy_ranges(batch: dict) -> dict:
        ctx = get_current_context()
        ctx["token_span"] = batch["label"]
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            return phase.copy(session, config, p["backfill_id"], plan.spans(batch), fetch_size=p["fetch_size"],
                              max_in_flight=p["max_in_flight"], page_timeout=p["page_timeout_s"],
                              rows_per_second=p["rows_per_second"] / p["parallelism"], ttl_policy=p["ttl_policy"],
                              run_id=ctx["run_id"], dag_id=ctx["dag"].dag_id)

    @task(trigger_rule="none_failed")
    def summarize() -> dict:
        """Green once this run's ranges are done; a run of listed ranges reports what else is open."""
        ctx = get_current_context()
        p = ctx["params"]
        with cassandra() as (session, config):
            return phase.finish(session, config, p["backfill_id"], require_complete=not p["ranges"], **run_by(ctx))

    @task(outlets=[BACKFILL_DONE])
    def announce_complete(report: dict) -> None:
        """The Asset event that schedules verification, only for a complete ledger (skipped otherwise)."""
        if not report["complete"]:
            raise AirflowSkipException(report["still_open"])

    report = summarize()
    copy_ranges.expand(batch=plan_ranges()) >> report
    announce_complete(report) >> unfinished_phase_teardown(BACKFILL)


user_trades_backfill()
