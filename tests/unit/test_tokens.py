from itertools import pairwise

import pytest

from trade_migration.core import tokens
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, TokenRange


@pytest.mark.parametrize("ring", [[MIN_TOKEN], [0], [-5, 7, 2**62], [MIN_TOKEN, 0, MAX_TOKEN],
                                  [-(2**63) + 6148914691236517205 * k for k in range(3)]])
@pytest.mark.parametrize("splits", [1, 2, 7, 64, 1000])
def test_splits_cover_the_ring_exactly_and_respect_cluster_ranges(ring, splits):
    ranges = tokens.split_ring(ring, splits)
    tokens.check_coverage(ranges)
    assert ranges[0].start == MIN_TOKEN and ranges[-1].end == MAX_TOKEN
    own = tokens.cluster_ranges(ring)
    for r in ranges:  # a split never crosses a node's range boundary
        assert any(o.start <= r.start and r.end <= o.end for o in own)
    assert abs(len(ranges) - max(splits, len(own))) <= len(own)


def test_cluster_ranges_cut_the_wrapping_range_at_min():
    assert tokens.cluster_ranges([-10, 10]) == [TokenRange(MIN_TOKEN, -10), TokenRange(-10, 10),
                                                TokenRange(10, MAX_TOKEN)]
    assert tokens.cluster_ranges([MIN_TOKEN]) == [TokenRange(MIN_TOKEN, MAX_TOKEN)]


def test_check_coverage_finds_gaps_and_overlaps():
    with pytest.raises(ValueError, match="gap"):
        tokens.check_coverage([TokenRange(MIN_TOKEN, 0), TokenRange(1, MAX_TOKEN)])
    with pytest.raises(ValueError, match="overlap"):
        tokens.check_coverage([TokenRange(MIN_TOKEN, 5), TokenRange(0, MAX_TOKEN)])
    with pytest.raises(ValueError, match="not covered"):
        tokens.check_coverage([TokenRange(MIN_TOKEN, 5)])


def test_divide_is_exact_and_never_makes_empty_ranges():
    assert tokens.divide(TokenRange(0, 10), 3) == [TokenRange(0, 3), TokenRange(3, 6), TokenRange(6, 10)]
    assert tokens.divide(TokenRange(0, 2), 5) == [TokenRange(0, 1), TokenRange(1, 2)]


def test_batches_are_contiguous_groups_in_a_seeded_shuffled_order():
    ranges = tokens.split_ring([MIN_TOKEN], 16)
    a = tokens.batches(ranges, 4, seed="main")
    assert a == tokens.batches(list(reversed(ranges)), 4, seed="main")
    assert sorted(r for g in a for r in g) == ranges
    assert [len(g) for g in a] == [4, 4, 4, 4]
    for g in a:
        assert all(x.end == y.start for x, y in pairwise(g))
    assert [g[0] for g in a] != sorted(g[0] for g in a)   # shuffled
    assert tokens.batches([], 4, seed="x") == []


def test_default_splits_from_estimate():
    assert tokens.default_splits(None, 3) == tokens.DEFAULT_SPLITS
    assert tokens.default_splits(1_000_000, 3) == 40
    assert tokens.default_splits(10, 3) == 3
    assert tokens.default_splits(10**12, 3) == tokens.MAX_SPLITS


def test_split_ring_rejects_zero():
    with pytest.raises(ValueError):
        tokens.split_ring([0], 0)
