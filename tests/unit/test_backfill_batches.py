"""How the backfill cuts a page's rows into unlogged batches: one replica set per batch, bounded."""
from types import SimpleNamespace

import pytest

from trade_migration.backfill.copier import batches, replica_groups


class Ring:
    """Metadata stand-in: a partition's replicas are named by its routing key's first byte."""

    def __init__(self, owners: dict[int, tuple]):
        self.owners = owners

    def get_replicas(self, keyspace, key):
        return list(self.owners[key[0]])


def bound(key: int, n: int):
    return SimpleNamespace(keyspace="ks", routing_key=bytes([key]), n=n)


def test_a_replica_group_never_mixes_replica_sets_and_keeps_partitions_whole():
    ring = Ring({0: ("a", "b"), 1: ("b", "a"), 2: ("c", "a"), 3: ()})   # same set, other order: one group
    partitions = [[bound(k, i) for i in range(3)] for k in (0, 2, 1, 3, 2)]
    groups = replica_groups(ring, iter(partitions))
    assert [[p[0].routing_key[0] for p in g] for g in groups] == [[0, 1], [2, 2], [3]]
    for g in groups:
        assert len({frozenset(ring.get_replicas("ks", p[0].routing_key)) for p in g}) == 1


@pytest.mark.parametrize("sizes", [[1] * 25, [3, 40, 1, 1, 16, 2], [17], [16, 1], [5, 5, 5, 5], [120], []])
def test_batches_stay_within_rows_and_partitions_and_lose_nothing(sizes):
    partitions = [[(k, i) for i in range(n)] for k, n in enumerate(sizes)]
    out = batches(partitions, batch_rows=16, batch_partitions=10, partition_rows=50)
    assert sorted(row for b in out for row in b) == sorted(row for p in partitions for row in p)
    for b in out:
        keys = {k for k, _ in b}
        assert 1 <= len(b) <= (50 if len(keys) == 1 else 16) and len(keys) <= 10
        assert len(keys) == 1 or all(sizes[k] <= 16 for k in keys)   # a large partition is never shared
    # a partition is cut only where it is larger than a batch of its own
    for k, n in enumerate(sizes):
        assert sum(1 for b in out if any(key == k for key, _ in b)) == (-(-n // 50) if n > 16 else 1)
