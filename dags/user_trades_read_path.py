"""Phase 3: move the gateway's reads: settled_trades -> shadow -> user_trades (or back).

Reading order: route (order guard; a rollback to settled_trades goes straight to the switch) ->
latency_benchmark (p50/p99 of both paths, cold and warm, on a seeded sample of users; first, so
that cold is cold) -> shadow_compare (both paths for the same users; every difference reported);
both printed and kept in the audit log -> switch_read_path (compare-and-set of read_path;
user_trades needs a clean comparison unless an override_reason is given; never retried: a lost
race or a blocked switch needs a human).
"""
from __future__ import annotations

import logging

from airflow.sdk import Param, get_current_context, task
from migration_common import actor, cassandra, phase_dag, text_params, who_and_why

from trade_migration.read_path import latency, shadow
from trade_migration.read_path.paths import DEFAULT_LIMIT, ReadPaths, sample_pairs
from trade_migration.state import phases
from trade_migration.state.flags import PHASE_STATUS, READ_PATH, Flags

log = logging.getLogger(__name__)
SWITCH, TIMING = "switch_read_path", "latency_benchmark"


@phase_dag(
    "user_trades_read_path",
    doc=__doc__,
    params={
        "value": Param(type="string", enum=["settled_trades", "shadow", "user_trades"],
                       description="Where the gateway reads users' trade history from."),
        "sample_users": Param(200, type="integer", minimum=1, maximum=10000,
                              description="Users (x symbol) to compare and to time."),
        "page_size": Param(DEFAULT_LIMIT, type="integer", minimum=1, maximum=1000,
                           description="Rows per history page, as the gateway asks."),
        "seed": Param(42, type="integer", description="Seed of the user sample (same seed, same users)."),
        "override_reason": Param(None, type=["null", "string"], maxLength=2000,
                                 description="Switch to user_trades despite differences; why. Audited."),
        **who_and_why(required=True),
    },
)
def user_trades_read_path():
    @task.branch(retries=0)
    def route() -> list[str]:
        with cassandra() as (session, config):
            phases.State(session, config).require(phases.READ_PATH)
        rollback = get_current_context()["params"]["value"] == "settled_trades"
        return [SWITCH] if rollback else [TIMING, SWITCH]

    @task
    def shadow_compare() -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            paths = ReadPaths(session, config)
            pairs = sample_pairs(session, config, p["sample_users"], seed=p["seed"], symbols=paths.symbol_ids)
            report = shadow.shadow_compare(paths, pairs, limit=p["page_size"])
            summary = report.summary()
            phases.State(session, config).audit(phases.READ_PATH, "shadow_compare", actor=actor(ctx),
                                                reason=p["reason"], details={"seed": p["seed"], **summary})
        print(report.text())
        return summary

    @task
    def latency_benchmark() -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            paths = ReadPaths(session, config)
            pairs = sample_pairs(session, config, p["sample_users"], seed=p["seed"], symbols=paths.symbol_ids)
            report = latency.benchmark(paths, pairs, limit=p["page_size"])
            phases.State(session, config).audit(phases.READ_PATH, "latency_benchmark", actor=actor(ctx),
                                                reason=p["reason"], details=report)
        print(latency.format_benchmark(report))
        return report

    @task(retries=0, trigger_rule="none_failed_min_one_success")
    def switch_read_path() -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        value, override = p["value"], p["override_reason"].strip()
        with cassandra() as (session, config):
            state = phases.State(session, config)
            if value == "user_trades":
                shadow.require_clean(ctx["ti"].xcom_pull(task_ids="shadow_compare"), override_reason=override)
                if override:
                    state.audit(phases.READ_PATH, "shadow_override", actor=actor(ctx), reason=override)
            flag = Flags(session, config).set(READ_PATH, value, actor=actor(ctx), reason=p["reason"])
            state.mark(phases.READ_PATH, PHASE_STATUS[(READ_PATH, value)], run_id=ctx["run_id"],
                       actor=actor(ctx), reason=p["reason"], details={"read_path": value, "flag_version": flag.version})
        return {"read_path": flag.value, "version": flag.version}

    timing, switch = latency_benchmark(), switch_read_path()
    route() >> [timing, switch]
    timing >> shadow_compare() >> switch


user_trades_read_path()
