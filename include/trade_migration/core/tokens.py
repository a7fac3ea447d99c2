"""The Murmur3 ring: splits aligned to the cluster's own token ranges, covering it exactly.

A range is (start, end]: a scan reads token(pk) > start AND token(pk) <= end. Murmur3 never
gives a key the minimum token, so (MIN, MAX] is the whole ring.
"""
from __future__ import annotations

import random
import struct
from itertools import pairwise
from typing import NamedTuple

from cassandra.metadata import Murmur3Token

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
ROWS_PER_SPLIT = 25_000       # default split size when the table's size estimate is known
DEFAULT_SPLITS = 64           # when it is not
MAX_SPLITS = 8192
# The narrowest range a timed-out range is re-split into: the finest plan's grain. A range that
# times out at this size fails instead (the page timeout, not the range, is the problem).
MIN_RESPLIT_WIDTH = (MAX_TOKEN - MIN_TOKEN) // MAX_SPLITS
_BIGINT, _INT = struct.Struct(">q"), struct.Struct(">i")


class TokenRange(NamedTuple):
    start: int  # exclusive
    end: int    # inclusive

    @property
    def width(self) -> int:
        return self.end - self.start

    @property
    def label(self) -> str:
        return f"({self.start}, {self.end}]"


def cluster_ranges(ring: list[int]) -> list[TokenRange]:
    """The ring's own ranges, with the wrapping range cut at MIN so all lie within (MIN, MAX]."""
    tokens = sorted(set(ring))
    bounds = [MIN_TOKEN] + [t for t in tokens if MIN_TOKEN < t < MAX_TOKEN] + [MAX_TOKEN]
    return [TokenRange(a, b) for a, b in pairwise(bounds) if b > a]


def divide(rng: TokenRange, pieces: int) -> list[TokenRange]:
    """Cut a range into `pieces` near-equal contiguous ranges (fewer if it is too narrow)."""
    pieces = max(1, min(pieces, rng.width))
    cuts = [rng.start + rng.width * k // pieces for k in range(pieces)] + [rng.end]
    return [TokenRange(a, b) for a, b in pairwise(cuts) if b > a]


def split_ring(ring: list[int], splits: int) -> list[TokenRange]:
    """About `splits` ranges, never crossing a cluster range, in token order, covering the ring."""
    if splits < 1:
        raise ValueError(f"splits must be at least 1, got {splits}")
    own = cluster_ranges(ring)
    total = MAX_TOKEN - MIN_TOKEN
    out: list[TokenRange] = []
    for rng in own:
        out += divide(rng, max(1, round(splits * rng.width / total)))
    return out


def default_splits(estimated_rows: int | None, cluster_range_count: int) -> int:
    if not estimated_rows:
        return max(DEFAULT_SPLITS, cluster_range_count)
    wanted = -(-estimated_rows // ROWS_PER_SPLIT)
    return max(cluster_range_count, min(MAX_SPLITS, wanted))


def batches(ranges: list[TokenRange], count: int, *, seed: str) -> list[list[TokenRange]]:
    """`count` groups of contiguous ranges, in a seeded shuffled order so that the tasks that
    start together work on different parts of the ring (and so on different nodes)."""
    ranges = sorted(ranges)
    count = max(1, min(count, len(ranges))) if ranges else 0
    groups = [ranges[len(ranges) * k // count: len(ranges) * (k + 1) // count] for k in range(count)]
    random.Random(seed).shuffle(groups)
    return groups


def check_coverage(ranges: list[TokenRange]) -> None:
    """Raise unless the ranges cover (MIN, MAX] exactly once."""
    expect = MIN_TOKEN
    for rng in sorted(ranges):
        if rng.start != expect:
            kind = "gap" if rng.start > expect else "overlap"
            raise ValueError(f"token {kind} at {expect} .. {rng.start}")
        expect = rng.end
    if expect != MAX_TOKEN:
        raise ValueError(f"ring not covered past {expect}")


def ring_tokens(session) -> list[int]:
    """The cluster's tokens from the driver's metadata."""
    token_map = session.cluster.metadata.token_map
    return [t.value for t in token_map.ring] if token_map else []


def settled_token(trade_id: int) -> int:
    """token(trade_id) of settled_trades (Murmur3 of the bigint), without asking the cluster."""
    return Murmur3Token.from_key(_BIGINT.pack(trade_id)).value


def user_trades_token(user_id: int, symbol_id: int) -> int:
    """token(user_id, symbol_id) of user_trades: Murmur3 of the composite partition key."""
    return Murmur3Token.from_key(b"\x00\x08" + _BIGINT.pack(user_id) + b"\x00\x00\x04"
                                 + _INT.pack(symbol_id) + b"\x00").value
