"""How fast a backfill goes and when it ends, from the ledger's own timestamps.

Nothing is sampled over time: the rate is the rows read by the ranges of the current pass over
the time since that pass started (the first range started after the ledger last went quiet),
and the remaining work is estimated from the share of the ring still to read, so the page can
answer "when is it done?" from a single read of the ledger.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from trade_migration.core.clock import utc
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN
from trade_migration.state.ledger import DONE, RUNNING, RangeState, silent_for, stalled

RING = MAX_TOKEN - MIN_TOKEN
# A pause longer than this between two ranges' activity starts a new pass (a rerun next day).
PASS_GAP = timedelta(minutes=30)


def share_read(states: list[RangeState]) -> float:
    """Share of the ring read: done ranges whole, the others up to their checkpoint."""
    read = 0
    for s in states:
        if s.status == DONE:
            read += s.range_end - s.range_start
        elif s.checkpoint is not None:
            read += max(0, s.checkpoint - s.range_start)
    return min(1.0, read / RING)


def current_pass(states: list[RangeState]) -> list[RangeState]:
    """The ranges active in the latest pass: started no earlier than the last quiet gap."""
    # by start time alone: ranges started in the same millisecond must not be compared themselves
    started = sorted(((utc(s.started_at), s) for s in states if s.started_at is not None), key=lambda p: p[0])
    if not started:
        return []
    begin = 0
    latest_end = utc(started[0][1].updated_at or started[0][0])
    for i, (at, s) in enumerate(started):
        if at - latest_end > PASS_GAP:
            begin = i
        latest_end = max(latest_end, utc(s.updated_at or at))
    return [s for _, s in started[begin:]]


def rate_and_eta(states: list[RangeState], at: datetime) -> dict:
    """Rows/s of the current pass and, while ranges remain, the seconds left at that rate."""
    active = current_pass(states)
    share = share_read(states)
    out = {"rows_per_s": None, "eta_s": None, "share_read": round(share, 4), "pass_started_at": None}
    if not active:
        return out
    began = min(utc(s.started_at) for s in active)
    last = max(utc(s.updated_at or s.started_at) for s in active)
    if any(s.status == RUNNING for s in active):
        last = max(last, at)
    seconds = (last - began).total_seconds()
    rows = sum(s.rows_read for s in active)
    out["pass_started_at"] = began
    if seconds <= 0 or rows <= 0:
        return out
    rate = rows / seconds
    out["rows_per_s"] = round(rate, 1)
    total_rows = sum(s.rows_read for s in states)
    if 0 < share < 1 and any(s.status != DONE for s in states):
        out["eta_s"] = round(total_rows * (1 - share) / share / rate)
    return out


def stalled_ranges(states: list[RangeState], at: datetime, after_s: float) -> list[dict]:
    """Running ranges whose checkpoint has not moved for `after_s` seconds, longest silent first."""
    found = sorted(stalled(states, at=at, after_s=after_s), key=lambda s: -(silent_for(s, at) or 0))
    return [{"range": s.label, "silent_s": round(silent_for(s, at) or 0), "attempts": s.attempts,
             "checkpoint": s.checkpoint, "rows_read": s.rows_read} for s in found]
