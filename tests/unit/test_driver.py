"""The `cassandra` package imported must be scylla-driver's, not cassandra-driver's."""
import re
from pathlib import Path

import cassandra
from cassandra.cluster import Cluster

PIN = re.search(r"^scylla-driver==(\S+)$", (Path(__file__).parents[2] / "requirements.txt").read_text(), re.M).group(1)


def test_cassandra_package_is_scylla_driver_at_the_pinned_version():
    assert cassandra.__version__ == PIN


def test_cluster_accepts_shard_aware_options():
    from cassandra.cluster import ShardAwareOptions
    from cassandra.shard_info import ShardingInfo  # noqa: F401 - exists only in scylla-driver

    cluster = Cluster(["127.0.0.1"], shard_aware_options=ShardAwareOptions(disable=True))
    assert cluster.shard_aware_options.disable is True
