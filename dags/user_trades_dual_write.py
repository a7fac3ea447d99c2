"""Phase 2: turn the settlement service's dual writes on (or off), and see them land.

Reading order: set_flag (compare-and-set of dual_write, with who and why; never retried: a lost
race needs a human) -> turning_on (off is a rollback: nothing to wait for) ->
wait_for_dual_writes (a rescheduling sensor: trades settled after the change, plus the services'
flag refresh bound, must show up in user_trades) -> record_start (the time from which every
settlement is dual-written: the backfill's upper bound).
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, PokeReturnValue, get_current_context, task
from migration_common import cassandra, phase_dag, run_by, text_params, who_and_why

from trade_migration.dual_write import phase

POKE_INTERVAL_S = 5
SENSOR_TIMEOUT = timedelta(minutes=30)


@phase_dag(
    "user_trades_dual_write",
    doc=__doc__,
    params={
        "value": Param(type="string", enum=["on", "off", "new_only"],
                       description="on: the settlement service also writes user_trades. off: roll back."
                                   " new_only: it stops writing settled_trades (after reads moved; before cleanup)."),
        "refresh_bound_s": Param(30, type="integer", minimum=0, maximum=3600,
                                 description="How long the settlement services may take to re-read the flag."),
        "min_trades": Param(10, type="integer", minimum=1, maximum=10000,
                            description="Recent trades that must be found in user_trades."),
        "scan_rows": Param(100_000, type="integer", minimum=100, maximum=10_000_000,
                           description="settled_trades rows each poke may scan to find recent trades."),
        **who_and_why(required=True),
    },
)
def user_trades_dual_write():
    @task(retries=0)
    def set_flag() -> dict:
        ctx = get_current_context()
        with cassandra() as (session, config):
            return phase.set_flag(session, config, ctx["params"]["value"], **run_by(ctx))

    @task.short_circuit
    def turning_on(change: dict) -> bool:
        return phase.waits_for_dual_writes(change)

    @task.sensor(poke_interval=POKE_INTERVAL_S, timeout=SENSOR_TIMEOUT, mode="reschedule")
    def wait_for_dual_writes(change: dict) -> PokeReturnValue:
        p = text_params(get_current_context()["params"])
        with cassandra() as (session, config):
            done, seen = phase.look_for_dual_writes(session, config, change, refresh_bound_s=p["refresh_bound_s"],
                                                    min_trades=p["min_trades"], scan_rows=p["scan_rows"])
        return PokeReturnValue(is_done=done, xcom_value=seen)

    @task
    def record_start(change: dict, seen: dict) -> None:
        with cassandra() as (session, config):
            phase.finish(session, config, change, seen, **run_by(get_current_context()))

    change = set_flag()
    seen = wait_for_dual_writes(change)
    turning_on(change) >> seen
    record_start(change, seen)


user_trades_dual_write()
