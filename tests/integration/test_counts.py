"""Range counts on the real node: a count that times out is counted again in pieces, not fatal.

The timeout is real: the local node is frozen (SIGSTOP) for a moment, so the first counts get no
answer within the client's timeout; their pieces, sent once the timeout fires, are answered after
the node is let go (SIGCONT).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
from conftest import REPO, load_trades

from trade_migration.core.errors import RangeTimeout
from trade_migration.core.tokens import MAX_TOKEN, MIN_RESPLIT_WIDTH, MIN_TOKEN, TokenRange, divide
from trade_migration.verify.counts import RECOUNT_PIECES, range_counts, settled_counts

RING = [TokenRange(MIN_TOKEN, MAX_TOKEN)]
TIMEOUT_S, FROZEN_S = 1.0, 1.3


def node_pid() -> int:
    path = REPO / ".local" / "cassandra" / "node1" / "pid"
    if not path.exists():
        pytest.fail(f"no {path}: these tests freeze the local node scripts/cassandra started (make db-up)")
    return int(path.read_text())


def frozen_for(seconds: float) -> threading.Timer:
    """The local node stopped now and let go after `seconds` (the timer, to cancel-and-resume in finally)."""
    pid = node_pid()
    os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    timer.start()
    return timer


def resume(timer: threading.Timer) -> None:
    timer.cancel()
    os.kill(node_pid(), signal.SIGCONT)


def test_a_count_that_times_out_is_the_sum_of_its_pieces(db, cfg, caplog):
    plan = load_trades(db, cfg, 3000, seed=41)
    ranges = divide(RING[0], 3)
    expected = range_counts(db, cfg, ranges)
    assert sum(s for s, _ in expected) == plan.trades and all(t == 0 for _, t in expected)

    caplog.set_level(logging.WARNING, logger="trade_migration.verify.counts")
    began = time.monotonic()
    timer = frozen_for(FROZEN_S)
    try:
        counted = range_counts(db, cfg, ranges, timeout=TIMEOUT_S)
    finally:
        resume(timer)
    took = time.monotonic() - began
    assert counted == expected
    # every first count timed out (both tables, three ranges) and was counted again in pieces once
    recounts = [r.getMessage() for r in caplog.records if "counting it again" in r.getMessage()]
    assert len(recounts) == 2 * len(ranges), recounts
    assert all(f"in {RECOUNT_PIECES} pieces" in m and "OperationTimedOut" in m for m in recounts)
    assert sorted({m.split(" timed out")[0].removeprefix("counting range ") for m in recounts}) == sorted(
        r.label for r in ranges)
    assert took >= FROZEN_S


def test_a_count_that_times_out_at_the_narrowest_range_fails_naming_it(db, cfg):
    narrow = TokenRange(0, MIN_RESPLIT_WIDTH)
    timer = frozen_for(FROZEN_S)
    try:
        with pytest.raises(RangeTimeout) as err:
            settled_counts(db, cfg, [narrow], timeout=0.2)
    finally:
        resume(timer)
    assert str(err.value).startswith(f"counting range {narrow.label} timed out at the minimum range size"
                                     " (1/8192 of the ring) (OperationTimedOut:")
