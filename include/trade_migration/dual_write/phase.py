"""Phase 2, dual_write: set the flag, see dual writes land, record from when every trade is in both.

The phase's rules live here: the order guard; new_only (the writer leaving settled_trades) only
after reads moved and leaving the phase record as it is; what each flag value means for the
phase; and the services' refresh bound, after which a trade settled is surely dual-written.
"""
from __future__ import annotations

import logging
import random
from datetime import datetime

from cassandra.cluster import Session

from trade_migration.core.config import Config
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN
from trade_migration.dual_write import evidence
from trade_migration.state import phases
from trade_migration.state.flags import DUAL_WRITE, NEW_ONLY, PHASE_STATUS, Flags, check_writer_switch, in_effect_from

log = logging.getLogger(__name__)


def set_flag(session: Session, config: Config, value: str, *, run_id: str, actor: str, reason: str) -> dict:
    """Compare-and-set dual_write to `value` and record what it means for the phase; the flag as stored."""
    state = phases.State(session, config)
    state.require(phases.DUAL_WRITE)
    flags = Flags(session, config)
    check_writer_switch(value, flags.all())
    flag = flags.set(DUAL_WRITE, value, actor=actor, reason=reason)
    if flag.value != NEW_ONLY:   # new_only keeps the phase (and its dual-write start) as it is
        state.mark(phases.DUAL_WRITE, PHASE_STATUS[(DUAL_WRITE, flag.value)], run_id=run_id, actor=actor,
                   reason=reason, details={"flag_version": flag.version, "flag_changed_at": flag.changed_at})
    return {"value": flag.value, "version": flag.version, "changed_at": flag.changed_at.isoformat()}


def waits_for_dual_writes(change: dict) -> bool:
    """Only turning dual writes on has something to wait for; off is a rollback, new_only comes later."""
    return change["value"] == "on"


def look_for_dual_writes(session: Session, config: Config, change: dict, *, refresh_bound_s: float,
                         min_trades: int, scan_rows: int) -> tuple[bool, dict]:
    """One look (a sensor's poke): are `min_trades` trades settled after the change plus the
    refresh bound in user_trades? (done, {"since", "confirmed"})."""
    since = in_effect_from(datetime.fromisoformat(change["changed_at"]), refresh_bound_s)
    seen = evidence.check(session, config, since=since, want=min_trades, scan_rows=scan_rows,
                          start_token=random.randint(MIN_TOKEN, MAX_TOKEN - 1))
    log.info("trades settled since %s: %s", since.isoformat(), seen.line())
    return seen.done(min_trades), {"since": since.isoformat(), "confirmed": seen.confirmed}


def finish(session: Session, config: Config, change: dict, seen: dict, *, run_id: str, actor: str,
           reason: str) -> None:
    """Record phase 2 completed, with the time from which every settlement is dual-written
    (the backfill's upper bound)."""
    phases.State(session, config).mark(
        phases.DUAL_WRITE, phases.COMPLETED, run_id=run_id, actor=actor, reason=reason,
        details={"dual_write_started_at": seen["since"], "flag_changed_at": change["changed_at"],
                 "flag_version": change["version"], "confirmed_trades": seen["confirmed"]})
    log.info("dual writes confirmed; every trade settled after %s is in user_trades", seen["since"])
