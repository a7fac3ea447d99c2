"""A sampled run's slice of history: a settled_at window holding about a share of the trades.

A share of token ranges would not do: the two rows of a trade in one settled_trades range live in
user_trades partitions anywhere on the ring, so each had to be read by key, and a key read costs
the node several times a scanned row. Every trade and every user_trades row carries settled_at,
so one window of it picks the same trades' rows out of both tables: the node filters each range
of both (it reads every row and sends only the window's), and the run compares digests as a full
run does, reading rows one by one only where they differ. The seed places the window; its ends
are quantiles of settlement times read at a few seeded places on the ring, so it holds about the
share asked for wherever it falls in the history.
"""
from __future__ import annotations

import random
from datetime import UTC, datetime

from cassandra.cluster import Session

from trade_migration.core import clock
from trade_migration.core.config import Config
from trade_migration.core.prepared import prepared
from trade_migration.core.reads import rows_of
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN
from trade_migration.statements.settled_trades import settled_times

PROBES = 64       # places on the ring settlement times are read from
PROBE_ROWS = 32   # trades read at each
# the ends of time as a window bounds them (epoch ms; what a Python datetime can hold)
MIN_MS = clock.millis(datetime(1, 1, 1, tzinfo=UTC))
MAX_MS = clock.millis(datetime(9999, 12, 31, tzinfo=UTC))


def sampled_times(session: Session, config: Config, seed: int) -> list[int]:
    """Settlement times (epoch ms, sorted) of up to PROBES x PROBE_ROWS trades at seeded tokens."""
    rnd = random.Random(seed)
    stmt = prepared(session, settled_times(config.keyspace), consistency=config.read_cl)
    params = [(rnd.randint(MIN_TOKEN, MAX_TOKEN - 1), PROBE_ROWS) for _ in range(PROBES)]
    return sorted(clock.millis(row[0]) for row in rows_of(session, stmt, params) if row[0] is not None)


def pick(times: list[int], share: float, seed: int) -> tuple[int, int]:
    """[from, to) holding about `share` of these sorted times, placed by the seed; open at either
    end of the history it touches, and the whole of time for a share of 1 or no times."""
    if not 0 < share <= 1:
        raise ValueError(f"sample_share must be in (0, 1], got {share}")
    n = len(times)
    if share == 1 or n == 0:
        return MIN_MS, MAX_MS
    width = max(1.0, share * n)   # the window holds times[first:last], as likely at either end
    position = random.Random(seed).uniform(0, n - width + 1)
    first, last = int(position), int(position + width)
    start = MIN_MS if first == 0 else times[first]
    end = MAX_MS if last >= n else times[last]
    return start, max(end, start + 1)   # many trades in one millisecond: at least that millisecond


def merge(windows: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Windows that overlap or touch made one, in time order: no row is checked twice."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def sample_windows(session: Session, config: Config, *, share: float, seed: int,
                   recent_from: datetime | None) -> tuple[tuple[int, int], ...]:
    """The sample's window and, unless recent_from is None, every trade settled since then; none
    (every row, unfiltered) when together they cover all of time."""
    picked = [pick(sampled_times(session, config, seed), share, seed)]
    if recent_from is not None:
        picked.append((clock.millis(recent_from), MAX_MS))
    windows = merge(picked)
    return () if windows == ((MIN_MS, MAX_MS),) else windows
