"""Phase 3: move the gateway's reads: settled_trades -> shadow -> user_trades (or back).

Reading order: route (order guard; a rollback to settled_trades goes straight to the switch) ->
latency_benchmark (p50/p99 of both paths, cold and warm, on a seeded sample of users; first, so
that cold is cold) -> shadow_compare (both paths for the same users; every difference reported);
both printed and kept in the audit log -> switch_read_path (compare-and-set of read_path;
user_trades needs a clean comparison unless an override_reason is given; never retried: a lost
race or a blocked switch needs a human).
"""
from __future__ import annotations

from airflow.sdk import Param, get_current_context, task
from migration_common import actor, cassandra, phase_dag, run_by, text_params, who_and_why

from trade_migration.read_path import phase
from trade_migration.read_path.paths import DEFAULT_LIMIT

SWITCH, TIMING = "switch_read_path", "latency_benchmark"


def _sample(ctx) -> dict:
    p = text_params(ctx["params"])
    return {"actor": actor(ctx), "reason": p["reason"], "sample_users": p["sample_users"],
            "page_size": p["page_size"], "seed": p["seed"]}


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
            compare_first = phase.start(session, config, get_current_context()["params"]["value"])
        return [TIMING, SWITCH] if compare_first else [SWITCH]

    @task
    def shadow_compare() -> dict:
        with cassandra() as (session, config):
            summary, text = phase.compare(session, config, **_sample(get_current_context()))
        print(text)
        return summary

    @task
    def latency_benchmark() -> dict:
        with cassandra() as (session, config):
            report, text = phase.benchmark(session, config, **_sample(get_current_context()))
        print(text)
        return report

    @task(retries=0, trigger_rule="none_failed_min_one_success")
    def switch_read_path() -> dict:
        ctx = get_current_context()
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            return phase.switch(session, config, p["value"], override_reason=p["override_reason"],
                                compared=ctx["ti"].xcom_pull(task_ids="shadow_compare"), **run_by(ctx))

    timing, switch = latency_benchmark(), switch_read_path()
    route() >> [timing, switch]
    timing >> shadow_compare() >> switch


user_trades_read_path()
