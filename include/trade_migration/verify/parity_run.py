"""What one verification run checks, fixed when it starts, and the figures it keeps per range.

A Run is plain JSON, handed from the planning task to every mapped task, so all of them agree on
the ranges, the sample, and the moment that bounds the check: anything written after
`started_us` belongs to the next run. The seed and the sample's settled_at windows are recorded
with the run, so a sampled run can be reproduced.
"""
from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from functools import cached_property
from hashlib import blake2b

from trade_migration.core import clock
from trade_migration.core.tokens import TokenRange, user_trades_token
from trade_migration.verify.digests import BUCKETS, bucket

FULL, SAMPLED = "full", "sampled"
MODES = (FULL, SAMPLED)
MAX_RESOLVED = 1000   # orphans a run may delete; more, and it deletes none (verify/resolve.py)
RECENT_HOURS = 24.0   # a sampled run also checks every trade settled this recently (unless told otherwise)
MAX_RECENT_HOURS = 24.0 * 366
# How a range is looked at row by row: every row (in the run's windows); only rows in buckets whose
# digests differ.
ALL, CELLS = "all", "cells"


def derive_seed(run_id: str) -> int:
    """A seed from the run's id (a positive bigint, as parity_runs.seed stores it)."""
    return int.from_bytes(blake2b(run_id.encode(), digest_size=8).digest(), "big") >> 1


@dataclass(frozen=True)
class Run:
    run_id: str
    started_us: int                  # write times after this are out of scope
    mode: str
    seed: int
    sample_share: float
    ranges: tuple[TokenRange, ...]   # the whole ring, in token order
    # sampled mode: the settled_at windows [from, to) checked, epoch ms (verify/windows.py); none: every row
    windows: tuple[tuple[int, int], ...] = ()
    repair: bool = False             # heal, and rewrite missing and mismatched rows
    resolve_orphans: bool = False    # delete confirmed orphans (at most resolve_limit)
    resolve_limit: int = MAX_RESOLVED
    narrow: bool = True              # full mode: look rows up only where the digests differ
    report_cap: int = 10_000
    recheck_delay: float = 2.0
    dual_write_since_us: int | None = None
    new_only_since_us: int | None = None   # when the writer left settled_trades (dual_write new_only)
    recent_hours: float = RECENT_HOURS     # sampled mode: trades settled this recently, in every range (0: none)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0 <= self.recent_hours <= MAX_RECENT_HOURS:
            raise ValueError(f"recent_hours must be in [0, {MAX_RECENT_HOURS:g}], got {self.recent_hours}")

    @property
    def started_at(self) -> datetime:
        return clock.from_micros(self.started_us)

    @cached_property
    def recent_since(self) -> datetime:
        """Naive UTC, as the driver returns settled_at."""
        return clock.naive_utc(self.started_at - timedelta(hours=self.recent_hours))

    @cached_property
    def window_bounds(self) -> tuple[tuple[datetime, datetime], ...]:
        """The windows as the windowed scans bind them (naive UTC)."""
        return tuple((clock.naive_utc(clock.from_micros(a * 1000)), clock.naive_utc(clock.from_micros(b * 1000)))
                     for a, b in self.windows)

    def scans(self, rng: TokenRange) -> list[tuple]:
        """The parameters of one range's scans: the whole range, or (windowed statements) the range
        once per window."""
        if not self.windows:
            return [(rng.start, rng.end)]
        return [(rng.start, rng.end, a, b) for a, b in self.window_bounds]

    @cached_property
    def _ends(self) -> list[int]:
        return [r.end for r in self.ranges]

    def before_start(self, rows, decode, tally: Tally, *, counting: bool = True):
        """The decoded rows written before the run started; a later one is the next run's, counted late."""
        for row in rows:
            scanned = decode(row)
            if scanned.written > self.started_us:
                tally.late += int(counting)
                continue
            yield scanned

    def settled_in_new_only(self, written: int) -> bool:
        """Whether a user_trades row written then may have no settled trade: the writer had left
        settled_trades (a row written before that with no trade is an orphan)."""
        return self.new_only_since_us is not None and written >= self.new_only_since_us

    def range_index(self, token: int) -> int:
        return bisect.bisect_left(self._ends, token)

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["ranges"] = [[r.start, r.end] for r in self.ranges]
        data["windows"] = [list(w) for w in self.windows]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Run:
        return cls(**{**data, "ranges": tuple(TokenRange(int(a), int(b)) for a, b in data["ranges"]),
                      "windows": tuple((int(a), int(b)) for a, b in data["windows"])})


@dataclass(frozen=True)
class Scope:
    """Which rows the row-by-row check reads: forward by settled_trades range, reverse by
    user_trades range (range index -> ALL | CELLS)."""
    forward: dict[int, str] = field(default_factory=dict)
    reverse: dict[int, str] = field(default_factory=dict)
    dirty_source: frozenset[int] = frozenset()    # digest buckets of settled_trades tokens
    dirty_target: frozenset[int] = frozenset()    # digest buckets of user_trades tokens
    buckets: int = BUCKETS

    @property
    def indexes(self) -> list[int]:
        return sorted(self.forward.keys() | self.reverse.keys())

    def in_cell(self, source_tok: int, target_tok: int) -> bool:
        return (bucket(source_tok, self.buckets) in self.dirty_source
                and bucket(target_tok, self.buckets) in self.dirty_target)

    def forward_rows(self, how: str, source_tok: int, rows: tuple) -> tuple:
        """The expected rows of one trade that this run looks up."""
        if how != CELLS:
            return rows
        return tuple(r for r in rows if self.in_cell(source_tok, user_trades_token(r.user_id, r.symbol_id)))

    def covers(self, run: Run, source_tok: int, target_tok: int) -> bool:
        """Whether the forward check looks this expected row up (then it, not the reverse check,
        reports a difference in values, so nothing is counted twice)."""
        how = self.forward.get(run.range_index(source_tok))
        if how == ALL:
            return True
        return how == CELLS and self.in_cell(source_tok, target_tok)

    def to_json(self) -> dict:
        return {"forward": {str(k): v for k, v in self.forward.items()},
                "reverse": {str(k): v for k, v in self.reverse.items()},
                "dirty_source": sorted(self.dirty_source), "dirty_target": sorted(self.dirty_target),
                "buckets": self.buckets}

    @classmethod
    def from_json(cls, data: dict) -> Scope:
        return cls({int(k): v for k, v in data["forward"].items()},
                   {int(k): v for k, v in data["reverse"].items()},
                   frozenset(data["dirty_source"]), frozenset(data["dirty_target"]), data["buckets"])


@dataclass
class Tally:
    """One range's figures; a run's are the sums over its tasks."""
    settled: int = 0        # COUNT(*) of settled_trades in the range
    user_trades: int = 0    # COUNT(*) of user_trades in the range
    source_rows: int = 0    # settled_trades rows checked
    target_rows: int = 0    # user_trades rows checked
    late: int = 0           # rows written after the run started: the next run's
    rejected: int = 0       # settled trades that cannot be converted (not failures)
    missing: int = 0
    mismatched: int = 0
    orphans: int = 0
    new_only: int = 0       # user_trades rows with no settled trade, written in new_only mode (not orphans)
    repaired: int = 0       # missing and mismatched rows written back
    resolved: int = 0       # orphans deleted (or found gone) by the resolve

    def add(self, other: Tally) -> Tally:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def to_json(self) -> dict:
        return asdict(self)


def merge_tallies(parts: list[dict]) -> dict[int, Tally]:
    """{range index: Tally} summed over the tasks' JSON {str(index): fields}."""
    out: dict[int, Tally] = {}
    for part in parts:
        for key, values in part.items():
            out.setdefault(int(key), Tally()).add(Tally(**values))
    return out
