"""Phase 4: copy every settled trade into user_trades by token range (resumable, throttled).

Reading order: plan (ledger + batches) -> copy_ranges (one mapped task per batch, named by its
token span) -> summary (totals, slowest ranges, the Asset that schedules verification).
Clearing one failed mapped task resumes its ranges from their checkpoints.
"""
from __future__ import annotations

import logging

from airflow.sdk import Asset, Param, get_current_context, task
from migration_common import (
    ID_PATTERN,
    POOL,
    actor,
    cassandra,
    phase_dag,
    text_params,
    unfinished_phase_teardown,
    who_and_why,
)

from trade_migration.backfill import copier, plan, summary
from trade_migration.core.session import is_scylla
from trade_migration.state import phases
from trade_migration.state.ledger import Ledger

log = logging.getLogger(__name__)
BACKFILL_DONE = Asset("cassandra://trading/user_trades/backfill")
MAX_PARALLEL = 16


@phase_dag(
    "user_trades_backfill",
    doc=__doc__,
    params={
        "backfill_id": Param("main", type="string", pattern=ID_PATTERN,
                             description="Ledger name; reruns with the same id resume it."),
        "splits": Param(None, type=["null", "integer"], minimum=1, maximum=8192,
                        description="Token ranges for a new ledger (empty: from the size estimate)."),
        "parallelism": Param(4, type="integer", minimum=1, maximum=MAX_PARALLEL,
                             description="Mapped tasks (each a batch of ranges); also capped by the pool."),
        "ranges": Param([], type="array", items={"type": "string"},
                        description="Empty: every unfinished range. Or labels '(start, end]' / start tokens"
                                    " to rerun exactly those, finished or not."),
        "fetch_size": Param(1000, type="integer", minimum=10, maximum=10000),
        "max_in_flight": Param(128, type="integer", minimum=1, maximum=1024),
        "rows_per_second": Param(0, type="integer", minimum=0,
                                 description="Source rows/s for the whole run (0: unlimited)."),
        "page_timeout_s": Param(60.0, type="number", minimum=0.001, maximum=600),
        **who_and_why(),
    },
)
def user_trades_backfill():
    @task
    def plan_ranges() -> list[dict]:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            state = phases.State(session, config)
            state.require(phases.BACKFILL)
            ledger = Ledger(session, config, p["backfill_id"])
            states = plan.ensure_ledger(session, config, ledger, p["splits"])
            work = plan.select(states, ledger, p["ranges"])
            state.mark(phases.BACKFILL, phases.RUNNING, run_id=ctx["run_id"], actor=actor(ctx),
                       reason=p["reason"], details={"backfill_id": p["backfill_id"], "ranges": len(work)})
        if not work:
            log.info("backfill %s is complete: every range is done, nothing to write", p["backfill_id"])
        batches = plan.to_batches(work, p["parallelism"], seed=p["backfill_id"])
        log.info("%d ranges to copy in %d batches", len(work), len(batches))
        return batches

    @task(pool=POOL, max_active_tis_per_dagrun=MAX_PARALLEL, map_index_template="{{ token_span }}")
    def copy_ranges(batch: dict) -> dict:
        ctx = get_current_context()
        ctx["token_span"] = batch["label"]
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            options = copier.Options(
                fetch_size=p["fetch_size"], max_in_flight=p["max_in_flight"],
                rows_per_second=p["rows_per_second"] / p["parallelism"], page_timeout=p["page_timeout_s"],
                bypass_cache=is_scylla(session))
            return copier.run_batch(session, config, p["backfill_id"], plan.spans(batch), options)

    @task(outlets=[BACKFILL_DONE], trigger_rule="none_failed")
    def summarize() -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            report = summary.backfill_summary(Ledger(session, config, p["backfill_id"]).load())
            log.info("%s", summary.format_backfill(report))
            if not report["complete"]:
                raise RuntimeError(f"backfill {p['backfill_id']} is not complete: {report['by_status']}")
            phases.State(session, config).mark(phases.BACKFILL, phases.COMPLETED, run_id=ctx["run_id"],
                                               actor=actor(ctx), reason=p["reason"],
                                               details={k: report[k]
                                                        for k in ("rows_read", "rows_written", "rows_rejected")})
        return report

    copy_ranges.expand(batch=plan_ranges()) >> summarize() >> unfinished_phase_teardown(phases.BACKFILL)


user_trades_backfill()
