"""Phase 2: turn the settlement service's dual writes on (or off), and see them land.

Reading order: set_flag (compare-and-set of dual_write, with who and why; never retried: a lost
race needs a human) -> turning_on (off is a rollback: nothing to wait for) ->
wait_for_dual_writes (a rescheduling sensor: trades settled after the change, plus the services'
flag refresh bound, must show up in user_trades) -> record_start (the time from which every
settlement is dual-written: the backfill's upper bound).
"""
from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from airflow.sdk import Param, PokeReturnValue, get_current_context, task
from migration_common import actor, cassandra, phase_dag, text_params, who_and_why

from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN
from trade_migration.dual_write import evidence
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, PHASE_STATUS, Flags, check_writer_switch

log = logging.getLogger(__name__)
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
        p = text_params(ctx["params"])
        with cassandra() as (session, config):
            state = phases.State(session, config)
            state.require(phases.DUAL_WRITE)
            flags = Flags(session, config)
            check_writer_switch(p["value"], flags.all())
            flag = flags.set(DUAL_WRITE, p["value"], actor=actor(ctx), reason=p["reason"])
            if flag.value != NEW_ONLY:   # new_only keeps the phase (and its dual-write start) as it is
                state.mark(phases.DUAL_WRITE, PHASE_STATUS[(DUAL_WRITE, flag.value)], run_id=ctx["run_id"],
                           actor=actor(ctx), reason=p["reason"],
                           details={"flag_version": flag.version, "flag_changed_at": flag.changed_at})
        return {"value": flag.value, "version": flag.version, "changed_at": flag.changed_at.isoformat()}

    @task.short_circuit
    def turning_on(change: dict) -> bool:
        return change["value"] == "on"

    @task.sensor(poke_interval=POKE_INTERVAL_S, timeout=SENSOR_TIMEOUT, mode="reschedule")
    def wait_for_dual_writes(change: dict) -> PokeReturnValue:
        p = text_params(get_current_context()["params"])
        since = datetime.fromisoformat(change["changed_at"]) + timedelta(seconds=p["refresh_bound_s"])
        with cassandra() as (session, config):
            seen = evidence.check(session, config, since=since, want=p["min_trades"], scan_rows=p["scan_rows"],
                                     start_token=random.randint(MIN_TOKEN, MAX_TOKEN - 1))
        log.info("trades settled since %s: %s", since.isoformat(), seen.line())
        return PokeReturnValue(is_done=seen.done(p["min_trades"]),
                               xcom_value={"since": since.isoformat(), "confirmed": seen.confirmed})

    @task
    def record_start(change: dict, seen: dict) -> None:
        ctx = get_current_context()
        with cassandra() as (session, config):
            phases.State(session, config).mark(
                phases.DUAL_WRITE, phases.COMPLETED, run_id=ctx["run_id"], actor=actor(ctx),
                reason=text_params(ctx["params"])["reason"],
                details={"dual_write_started_at": seen["since"], "flag_changed_at": change["changed_at"],
                         "flag_version": change["version"], "confirmed_trades": seen["confirmed"]})
        log.info("dual writes confirmed; every trade settled after %s is in user_trades", seen["since"])

    change = set_flag()
    seen = wait_for_dual_writes(change)
    turning_on(change) >> seen
    record_start(change, seen)


user_trades_dual_write()
